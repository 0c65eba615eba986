#include "dcnv4_plugin.h"

namespace dcn {
namespace trt {

char const* const DCNv4Traits::kName = kDCNv4Name;
FieldSpec const* const DCNv4Traits::kFields = kDCNv4Fields;

std::vector<FieldValue> DCNv4Traits::parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc)
{
    return parseFields(kDCNv4Name, layer, kDCNv4Fields, kDN_NUM_FIELDS, fc);
}

DcnDims DCNv4Plugin::validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const
{
    auto ref = [&](int32_t i) { return inputShape(dims, nbInputs, i, false); };
    DcnDims d{};
    throwIfError(validate_dcnv4(mLayerName, mAttrs, ref(0), ref(1), &d));
    return d;
}

nvinfer1::DimsExprs DCNv4Plugin::outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const
{
    return dcnOutputShape(mAttrs, inputs[0], eb);
}

int32_t DCNv4Plugin::launch(DcnDims const& d, nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
    void* output, void* /*workspace*/, cudaStream_t stream)
{
    for (int32_t i = 0; i < 2; ++i)
    {
        checkData(Traits::kInputs[i], inputDesc[i].dims, inputs[i]);
    }
    cudaError_t const e = dcnLaunch(who(), d, inputDesc[0].type, inputs[0], inputs[1], inputs[1], output, stream);
    return e != cudaSuccess ? cudaFailed("DCNv4 kernel launch", e) : 0;
}

nvinfer1::IPluginCreatorInterface* dcnv4_creator()
{
    static DCNv4Creator creator;
    return &creator;
}

} // namespace trt
} // namespace dcn
