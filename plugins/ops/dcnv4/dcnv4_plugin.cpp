#include "dcnv4_plugin.h"

#include "dcnv4_kernels.h"

namespace dcn {
namespace trt {

char const* const DCNv4Traits::kName = kDCNv4Name;
FieldSpec const* const DCNv4Traits::kFields = kDCNv4Fields;

std::vector<FieldValue> DCNv4Traits::parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc)
{
    return parseFields(kDCNv4Name, layer, kDCNv4Fields, kAG_NUM_FIELDS, fc);
}

AggregateDims DCNv4Plugin::validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const
{
    auto ref = [&](int32_t i) { return inputShape(dims, nbInputs, i, false); };
    AggregateDims d{};
    throwIfError(validate_dcnv4(mLayerName, mAttrs, ref(0), ref(1), &d));
    return d;
}

nvinfer1::DimsExprs DCNv4Plugin::outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const
{
    return aggregateOutputShape(mAttrs, inputs[0], eb);
}

int32_t DCNv4Plugin::launch(AggregateDims const& d, nvinfer1::PluginTensorDesc const* inputDesc,
    void const* const* inputs, void* output, void* /*workspace*/, cudaStream_t stream)
{
    for (int32_t i = 0; i < 2; ++i)
    {
        checkData(Traits::kInputs[i], inputDesc[i].dims, inputs[i]);
    }
    cudaError_t const e = dispatchType(who(), "X", inputDesc[0].type, [&](auto t) {
        using T = decltype(t);
        return cuda::dcnv4<T>(
            static_cast<T const*>(inputs[0]), static_cast<T const*>(inputs[1]), d, static_cast<T*>(output), stream);
    });
    return e != cudaSuccess ? cudaFailed("DCNv4 kernel launch", e) : 0;
}

nvinfer1::IPluginCreatorInterface* dcnv4_creator()
{
    static DCNv4Creator creator;
    return &creator;
}

} // namespace trt
} // namespace dcn
