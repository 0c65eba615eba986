#include "dcnv3_plugin.h"

#include "dcnv3_kernels.h"

namespace dcn {
namespace trt {

char const* const DCNv3Traits::kName = kDCNv3Name;
FieldSpec const* const DCNv3Traits::kFields = kDCNv3Fields;

DcnAttrs dcnAttrs(std::vector<FieldValue> const& f)
{
    auto ints = [&](int32_t i) { return std::vector<int64_t>(f[i].ints.begin(), f[i].ints.end()); };
    DcnAttrs a;
    a.kernel_shape = ints(kDN_KERNEL_SHAPE);
    a.strides = ints(kDN_STRIDES);
    a.pads = ints(kDN_PADS);
    a.dilations = ints(kDN_DILATIONS);
    a.group = f[kDN_GROUP].ints.at(0);
    a.group_channels = f[kDN_GROUP_CHANNELS].ints.at(0);
    a.offset_scale = static_cast<double>(f[kDN_OFFSET_SCALE].f);
    a.remove_center = f[kDN_REMOVE_CENTER].ints.at(0);
    return a;
}

nvinfer1::DimsExprs dcnOutputShape(DcnAttrs const& a, nvinfer1::DimsExprs const& x, nvinfer1::IExprBuilder& eb)
{
    using Op = nvinfer1::DimensionOperation;
    auto out = [&](nvinfer1::IDimensionExpr const* size, int64_t padBegin, int64_t padEnd, int64_t dilation,
                   int64_t kernel, int64_t stride) {
        int64_t const c = padBegin + padEnd - (dilation * (kernel - 1) + 1); // attributes validated: no overflow
        auto const* num = c >= 0 ? eb.operation(Op::kSUM, *size, *eb.constant(c))
                                 : eb.operation(Op::kSUB, *size, *eb.constant(-c));
        return eb.operation(Op::kSUM, *eb.operation(Op::kFLOOR_DIV, *num, *eb.constant(stride)), *eb.constant(1));
    };
    nvinfer1::DimsExprs y{};
    y.nbDims = 4;
    y.d[0] = x.d[0];
    y.d[1] = out(x.d[1], a.pads[0], a.pads[2], a.dilations[0], a.kernel_shape[0], a.strides[0]);
    y.d[2] = out(x.d[2], a.pads[1], a.pads[3], a.dilations[1], a.kernel_shape[1], a.strides[1]);
    y.d[3] = x.d[3];
    return y;
}

cudaError_t dcnLaunch(std::string const& who, DcnDims const& d, nvinfer1::DataType type, void const* x,
    void const* offset, void const* mask, void* y, cudaStream_t stream)
{
    return dispatchType(who, "X", type, [&](auto t) {
        using T = decltype(t);
        return cuda::dcn_sample<T>(static_cast<T const*>(x), static_cast<T const*>(offset),
            static_cast<T const*>(mask), d, static_cast<T*>(y), stream);
    });
}

std::vector<FieldValue> DCNv3Traits::parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc)
{
    return parseFields(kDCNv3Name, layer, kDCNv3Fields, kDN_NUM_FIELDS, fc);
}

DcnDims DCNv3Plugin::validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const
{
    auto ref = [&](int32_t i) { return inputShape(dims, nbInputs, i, false); };
    DcnDims d{};
    throwIfError(validate_dcnv3(mLayerName, mAttrs, ref(0), ref(1), ref(2), &d));
    return d;
}

nvinfer1::DimsExprs DCNv3Plugin::outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const
{
    return dcnOutputShape(mAttrs, inputs[0], eb);
}

int32_t DCNv3Plugin::launch(DcnDims const& d, nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
    void* output, void* /*workspace*/, cudaStream_t stream)
{
    for (int32_t i = 0; i < 3; ++i)
    {
        checkData(Traits::kInputs[i], inputDesc[i].dims, inputs[i]);
    }
    cudaError_t const e = dcnLaunch(who(), d, inputDesc[0].type, inputs[0], inputs[1], inputs[2], output, stream);
    return e != cudaSuccess ? cudaFailed("DCNv3 kernel launch", e) : 0;
}

nvinfer1::IPluginCreatorInterface* dcnv3_creator()
{
    static DCNv3Creator creator;
    return &creator;
}

} // namespace trt
} // namespace dcn
