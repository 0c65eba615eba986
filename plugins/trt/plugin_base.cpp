#include "plugin_base.h"

#include "dcn_math.h"

namespace dcn {
namespace trt {

PluginBase::PluginBase(char const* opType, FieldSpec const* specs, int32_t nbSpecs, std::string layerName,
    std::vector<FieldValue> fields)
    : mOpType(opType)
    , mSpecs(specs)
    , mNbSpecs(nbSpecs)
    , mLayerName(std::move(layerName))
    , mWho(describe(opType, mLayerName))
    , mFields(std::move(fields))
{
    // "DeformConv2d v1: strides=[1, 1] pads=[0, 0, 0, 0] ..." (engine inspector, timing cache id)
    mMetadata = std::string(opType) + " v" + kPluginVersion + ":";
    for (int32_t s = 0; s < mNbSpecs; ++s)
    {
        FieldValue const& v = mFields[static_cast<size_t>(s)];
        if (!v.present)
        {
            continue;
        }
        mMetadata += std::string(" ") + mSpecs[s].name + "=";
        if (mSpecs[s].kind == FieldKind::kFLOAT)
        {
            mMetadata += ::dcn::float_str(static_cast<double>(v.f));
        }
        else if (mSpecs[s].kind == FieldKind::kINT)
        {
            mMetadata += std::to_string(v.ints.empty() ? 0 : v.ints[0]);
        }
        else
        {
            std::vector<int64_t> w(v.ints.begin(), v.ints.end());
            mMetadata += ::dcn::ints_str(w);
        }
    }
}

nvinfer1::IPluginCapability* PluginBase::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<PluginCoreBase*>(this);
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<PluginBuildBase*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<PluginRuntimeBase*>(this);
    }
    return nullptr;
}

void PluginBase::checkInputCount(int32_t nbInputs, int32_t nbOutputs) const
{
    if (nbInputs < minInputs() || nbInputs > maxInputs())
    {
        throw PluginError(mWho + ": got " + std::to_string(nbInputs) + " inputs, expected "
            + std::to_string(minInputs()) + " to " + std::to_string(maxInputs()) + " (" + inputNames() + ")");
    }
    if (nbOutputs != 1)
    {
        throw PluginError(mWho + ": got " + std::to_string(nbOutputs) + " outputs, expected 1 (Y)");
    }
}

int32_t PluginBase::getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
    nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    DCN_TRT_TRY
    {
        checkInputCount(nbInputs, nbOutputs);
        nvinfer1::DataType const t = inputTypes[0];
        if (t != nvinfer1::DataType::kFLOAT && t != nvinfer1::DataType::kHALF)
        {
            throw PluginError(mWho + ": input 0 has type " + dataTypeName(t) + ", expected FP32 or FP16");
        }
        for (int32_t i = 1; i < nbInputs; ++i)
        {
            if (isFloat32Input(i))
            {
                if (inputTypes[i] != nvinfer1::DataType::kFLOAT)
                {
                    throw PluginError(mWho + ": input " + std::to_string(i) + " has type "
                        + dataTypeName(inputTypes[i]) + ", expected FP32 (also in an FP16 layer)");
                }
                continue;
            }
            if (inputTypes[i] != t)
            {
                throw PluginError(mWho + ": input " + std::to_string(i) + " has type " + dataTypeName(inputTypes[i])
                    + ", expected " + dataTypeName(t) + " like input 0 (all inputs of one type)");
            }
        }
        outputTypes[0] = t;
        return 0;
    }
    DCN_TRT_CATCH(mRecorder, mWho, "getOutputDataTypes", return -1)
}

bool PluginBase::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (pos < 0 || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    nvinfer1::PluginTensorDesc const& d = inOut[pos].desc;
    if (d.format != nvinfer1::TensorFormat::kLINEAR)
    {
        return false;
    }
    if (pos == 0)
    {
        return d.type == nvinfer1::DataType::kFLOAT || d.type == nvinfer1::DataType::kHALF;
    }
    if (pos < nbInputs && isFloat32Input(pos))
    {
        return d.type == nvinfer1::DataType::kFLOAT;
    }
    return d.type == inOut[0].desc.type;
}

nvinfer1::PluginFieldCollection const* PluginBase::getFieldsToSerialize() noexcept
{
    DCN_TRT_TRY
    {
        mWriter.write(mSpecs, mNbSpecs, mFields);
        return mWriter.collection();
    }
    DCN_TRT_CATCH(mRecorder, mWho, "getFieldsToSerialize", return nullptr)
}

int64_t elementSize(nvinfer1::DataType t) noexcept
{
    switch (t)
    {
    case nvinfer1::DataType::kFLOAT: return 4;
    case nvinfer1::DataType::kHALF: return 2;
    default: break;
    }
    return 0;
}

} // namespace trt
} // namespace dcn
