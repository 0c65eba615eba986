#include "deform_roi_pool_plugin.h"

#include "deform_roi_pool_kernels.h"
#include "plugin_ops.h"  // plugins/trt

namespace dcn {
namespace trt {

char const* const DeformRoIPoolTraits::kName = kDeformRoIPoolName;
FieldSpec const* const DeformRoIPoolTraits::kFields = kDeformRoIPoolFields;

std::vector<FieldValue> DeformRoIPoolTraits::parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc)
{
    return parseFields(kDeformRoIPoolName, layer, kDeformRoIPoolFields, kRP_NUM_FIELDS, fc);
}

DeformRoIPoolAttrs DeformRoIPoolTraits::attrs(std::vector<FieldValue> const& f)
{
    DeformRoIPoolAttrs a;
    a.pooled_height = f[kRP_POOLED_HEIGHT].ints.at(0);
    a.pooled_width = f[kRP_POOLED_WIDTH].ints.at(0);
    a.spatial_scale = static_cast<double>(f[kRP_SPATIAL_SCALE].f);
    a.sampling_ratio = f[kRP_SAMPLING_RATIO].ints.at(0);
    a.gamma = static_cast<double>(f[kRP_GAMMA].f);
    return a;
}

DeformRoIPoolDims DeformRoIPoolPlugin::validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const
{
    // offset: absent when not given or empty (rank 0: an ONNX input named "", as the other ops' optional inputs)
    auto ref = [&](int32_t i) { return inputShape(dims, nbInputs, i, i == 2); };
    DeformRoIPoolDims d{};
    throwIfError(validate_deform_roi_pool(mLayerName, mAttrs, ref(0), ref(1), ref(2), &d));
    return d;
}

bool DeformRoIPoolPlugin::rankIgnored(int32_t index, int32_t rank) const
{
    return index == 2 && rank <= 0; // offset: may be empty
}

nvinfer1::DimsExprs DeformRoIPoolPlugin::outputShape(
    nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const
{
    nvinfer1::DimsExprs y{};
    y.nbDims = 4;
    y.d[0] = inputs[1].d[0]; // R: the RoI count, dynamic
    y.d[1] = inputs[0].d[1]; // C: data's channels
    y.d[2] = eb.constant(mAttrs.pooled_height);
    y.d[3] = eb.constant(mAttrs.pooled_width);
    return y;
}

int32_t DeformRoIPoolPlugin::launch(DeformRoIPoolDims const& d, nvinfer1::PluginTensorDesc const* inputDesc,
    void const* const* inputs, void* output, void* /*workspace*/, cudaStream_t stream)
{
    void const* offset = d.has_offset ? inputs[2] : nullptr; // has_offset: given and not empty
    if (inputDesc[1].type != nvinfer1::DataType::kFLOAT)
    {
        throw PluginError(who() + ": rois has type " + dataTypeName(inputDesc[1].type) + ", expected FP32");
    }
    for (int32_t i = 0; i < (d.has_offset ? 3 : 2); ++i)
    {
        checkData(Traits::kInputs[i], inputDesc[i].dims, inputs[i]);
    }
    float const* rois = static_cast<float const*>(inputs[1]);
    cudaError_t const e = dispatchType(who(), "data", inputDesc[0].type, [&](auto t) {
        using T = decltype(t);
        return cuda::deform_roi_pool<T>(
            static_cast<T const*>(inputs[0]), rois, static_cast<T const*>(offset), d, static_cast<T*>(output), stream);
    });
    return e != cudaSuccess ? cudaFailed("deformable RoI pooling kernel launch", e) : 0;
}

nvinfer1::IPluginCreatorInterface* deform_roi_pool_creator()
{
    static DeformRoIPoolCreator creator;
    return &creator;
}

} // namespace trt
} // namespace dcn
