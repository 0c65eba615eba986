#include "dcnv3_plugin.h"

#include "dcnv3_kernels.h"

namespace dcn {
namespace trt {

char const* const DCNv3Traits::kName = kDCNv3Name;
FieldSpec const* const DCNv3Traits::kFields = kDCNv3Fields;

std::vector<FieldValue> DCNv3Traits::parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc)
{
    return parseFields(kDCNv3Name, layer, kDCNv3Fields, kAG_NUM_FIELDS, fc);
}

AggregateDims DCNv3Plugin::validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const
{
    auto ref = [&](int32_t i) { return inputShape(dims, nbInputs, i, false); };
    AggregateDims d{};
    throwIfError(validate_dcnv3(mLayerName, mAttrs, ref(0), ref(1), ref(2), &d));
    return d;
}

nvinfer1::DimsExprs DCNv3Plugin::outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const
{
    return aggregateOutputShape(mAttrs, inputs[0], eb);
}

int32_t DCNv3Plugin::launch(AggregateDims const& d, nvinfer1::PluginTensorDesc const* inputDesc,
    void const* const* inputs, void* output, void* /*workspace*/, cudaStream_t stream)
{
    for (int32_t i = 0; i < 3; ++i)
    {
        checkData(Traits::kInputs[i], inputDesc[i].dims, inputs[i]);
    }
    cudaError_t const e = dispatchType(who(), "X", inputDesc[0].type, [&](auto t) {
        using T = decltype(t);
        return cuda::dcnv3<T>(static_cast<T const*>(inputs[0]), static_cast<T const*>(inputs[1]),
            static_cast<T const*>(inputs[2]), d, static_cast<T*>(output), stream);
    });
    return e != cudaSuccess ? cudaFailed("DCNv3 kernel launch", e) : 0;
}

nvinfer1::IPluginCreatorInterface* dcnv3_creator()
{
    static DCNv3Creator creator;
    return &creator;
}

} // namespace trt
} // namespace dcn
