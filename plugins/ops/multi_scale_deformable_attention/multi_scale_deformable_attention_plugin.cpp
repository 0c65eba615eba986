#include "multi_scale_deformable_attention_plugin.h"

#include "multi_scale_deformable_attention_kernels.h"

namespace dcn {
namespace trt {

namespace {
bool isIndexType(nvinfer1::DataType t)
{
    return t == nvinfer1::DataType::kINT32 || t == nvinfer1::DataType::kINT64;
}
} // namespace

char const* const MsdaTraits::kName = kMultiScaleDeformableAttentionName;
FieldSpec const* const MsdaTraits::kFields = kMultiScaleDeformableAttentionFields;

std::vector<FieldValue> MsdaTraits::parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc)
{
    return parseFields(kMultiScaleDeformableAttentionName, layer, kMultiScaleDeformableAttentionFields,
        kMS_NUM_FIELDS, fc);
}

MsdaAttrs MsdaTraits::attrs(std::vector<FieldValue> const& f)
{
    MsdaAttrs a;
    a.im2col_step = f[kMS_IM2COL_STEP].ints.at(0);
    return a;
}

bool MsdaPlugin::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (pos < 0 || pos >= nbInputs + nbOutputs || inOut[pos].desc.format != nvinfer1::TensorFormat::kLINEAR)
    {
        return false;
    }
    nvinfer1::DataType const t = inOut[pos].desc.type;
    switch (pos)
    {
    case 0: return t == nvinfer1::DataType::kFLOAT || t == nvinfer1::DataType::kHALF;
    case 1: return isIndexType(t);
    case 2: return t == inOut[1].desc.type;
    case 3: return t == nvinfer1::DataType::kFLOAT;
    default: return t == inOut[0].desc.type; // attention_weights, Y
    }
}

int32_t MsdaPlugin::getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
    nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    DCN_TRT_TRY
    {
        checkInputCount(nbInputs, nbOutputs);
        nvinfer1::DataType const t = inputTypes[0];
        auto fail = [&](int32_t i, std::string const& expected) {
            throw PluginError(who() + ": " + MsdaTraits::kInputs[i] + " has type " + dataTypeName(inputTypes[i])
                + ", expected " + expected);
        };
        if (t != nvinfer1::DataType::kFLOAT && t != nvinfer1::DataType::kHALF)
        {
            fail(0, "FP32 or FP16");
        }
        if (!isIndexType(inputTypes[1]))
        {
            fail(1, "INT32 or INT64");
        }
        if (inputTypes[2] != inputTypes[1])
        {
            fail(2, std::string(dataTypeName(inputTypes[1])) + " like spatial_shapes");
        }
        if (inputTypes[3] != nvinfer1::DataType::kFLOAT)
        {
            fail(3, std::string("FP32 (") + MsdaTraits::kFloat32Why + ")");
        }
        if (inputTypes[4] != t)
        {
            fail(4, std::string(dataTypeName(t)) + " like value");
        }
        outputTypes[0] = t;
        return 0;
    }
    DCN_TRT_CATCH(recorder(), who(), "getOutputDataTypes", return -1)
}

MsdaDims MsdaPlugin::validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const
{
    auto ref = [&](int32_t i) { return inputShape(dims, nbInputs, i, false); };
    MsdaDims d{};
    throwIfError(validate_msda(mLayerName, ref(0), ref(1), ref(2), ref(3), ref(4), &d));
    return d;
}

nvinfer1::DimsExprs MsdaPlugin::outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const
{
    nvinfer1::DimsExprs y{};
    y.nbDims = 3;
    y.d[0] = inputs[0].d[0]; // N
    y.d[1] = inputs[3].d[1]; // Lq
    y.d[2] = eb.operation(nvinfer1::DimensionOperation::kPROD, *inputs[0].d[2], *inputs[0].d[3]); // M*D
    return y;
}

int32_t MsdaPlugin::launch(MsdaDims const& d, nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
    void* output, void* /*workspace*/, cudaStream_t stream)
{
    for (int32_t i = 0; i < 5; ++i)
    {
        if (volume(inputDesc[i].dims) > 0) // an empty input (L = 0, S = 0) may come without memory (checkData too)
        {
            checkData(MsdaTraits::kInputs[i], inputDesc[i].dims, inputs[i]);
        }
    }
    if (!isIndexType(inputDesc[1].type) || inputDesc[2].type != inputDesc[1].type)
    {
        throw PluginError(who() + ": spatial_shapes / level_start_index have types " + dataTypeName(inputDesc[1].type)
            + " / " + dataTypeName(inputDesc[2].type) + ", expected INT32 or INT64, one type");
    }
    if (inputDesc[3].type != nvinfer1::DataType::kFLOAT)
    {
        throw PluginError(who() + ": sampling_locations has type " + dataTypeName(inputDesc[3].type) + ", expected FP32");
    }
    int const indexBytes = inputDesc[1].type == nvinfer1::DataType::kINT32 ? 4 : 8;
    float const* loc = static_cast<float const*>(inputs[3]);
    cudaError_t const e = dispatchType(who(), "value", inputDesc[0].type, [&](auto t) {
        using T = decltype(t);
        return cuda::multi_scale_deformable_attention<T>(static_cast<T const*>(inputs[0]), inputs[1], inputs[2],
            indexBytes, loc, static_cast<T const*>(inputs[4]), d, static_cast<T*>(output), stream);
    });
    return e != cudaSuccess ? cudaFailed("multi-scale deformable attention kernel launch", e) : 0;
}

nvinfer1::IPluginCreatorInterface* multi_scale_deformable_attention_creator()
{
    static MsdaCreator creator;
    return &creator;
}

} // namespace trt
} // namespace dcn
