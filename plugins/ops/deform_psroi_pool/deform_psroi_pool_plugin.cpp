#include "deform_psroi_pool_plugin.h"

#include "deform_psroi_pool_kernels.h"
#include "plugin_ops.h"  // plugins/trt

namespace dcn {
namespace trt {

char const* const DeformPSROIPoolTraits::kName = kDeformPSROIPoolName;
FieldSpec const* const DeformPSROIPoolTraits::kFields = kDeformPSROIPoolFields;

std::vector<FieldValue> DeformPSROIPoolTraits::parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc)
{
    return parseFields(kDeformPSROIPoolName, layer, kDeformPSROIPoolFields, kPS_NUM_FIELDS, fc);
}

DeformPSROIPoolAttrs DeformPSROIPoolTraits::attrs(std::vector<FieldValue> const& f)
{
    DeformPSROIPoolAttrs a;
    a.spatial_scale = static_cast<double>(f[kPS_SPATIAL_SCALE].f);
    a.output_dim = f[kPS_OUTPUT_DIM].ints.at(0);
    a.group_size = f[kPS_GROUP_SIZE].ints.at(0);
    a.pooled_size = f[kPS_POOLED_SIZE].ints.at(0);
    a.part_size = f[kPS_PART_SIZE].ints.at(0);
    a.sample_per_part = f[kPS_SAMPLE_PER_PART].ints.at(0);
    a.trans_std = static_cast<double>(f[kPS_TRANS_STD].f);
    a.no_trans = f[kPS_NO_TRANS].ints.at(0);
    return a;
}

DeformPSROIPoolDims DeformPSROIPoolPlugin::validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const
{
    // trans: absent when not given or empty (rank 0); ignored with no_trans = 1 (the header)
    auto ref = [&](int32_t i) { return inputShape(dims, nbInputs, i, i == 2); };
    DeformPSROIPoolDims d{};
    throwIfError(validate_deform_psroi_pool(mLayerName, mAttrs, ref(0), ref(1), ref(2), &d));
    return d;
}

bool DeformPSROIPoolPlugin::rankIgnored(int32_t index, int32_t rank) const
{
    // trans: any rank with no_trans = 1 (ignored), or empty (rank 0, absent)
    return index == 2 && (mAttrs.no_trans != 0 || rank <= 0);
}

nvinfer1::DimsExprs DeformPSROIPoolPlugin::outputShape(
    nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const
{
    nvinfer1::DimsExprs y{};
    y.nbDims = 4;
    y.d[0] = inputs[1].d[0]; // R: the RoI count, dynamic
    y.d[1] = eb.constant(mAttrs.output_dim);
    y.d[2] = eb.constant(mAttrs.pooled_size);
    y.d[3] = eb.constant(mAttrs.pooled_size);
    return y;
}

int32_t DeformPSROIPoolPlugin::launch(DeformPSROIPoolDims const& d, nvinfer1::PluginTensorDesc const* inputDesc,
    void const* const* inputs, void* output, void* /*workspace*/, cudaStream_t stream)
{
    void const* trans = d.no_trans ? nullptr : inputs[2]; // no_trans: set when trans is absent, empty or ignored
    int32_t const nbUsed = d.no_trans ? 2 : 3;
    for (int32_t i = 0; i < nbUsed; ++i)
    {
        checkData(Traits::kInputs[i], inputDesc[i].dims, inputs[i]);
    }
    cudaError_t const e = dispatchType(who(), "data", inputDesc[0].type, [&](auto t) {
        using T = decltype(t);
        return cuda::deform_psroi_pool<T>(static_cast<T const*>(inputs[0]), static_cast<float const*>(inputs[1]),
            static_cast<T const*>(trans), d, static_cast<T*>(output), stream);
    });
    return e != cudaSuccess ? cudaFailed("deformable PS-RoI pooling kernel launch", e) : 0;
}

nvinfer1::IPluginCreatorInterface* deform_psroi_pool_creator()
{
    static DeformPSROIPoolCreator creator;
    return &creator;
}

} // namespace trt
} // namespace dcn
