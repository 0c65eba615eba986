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
    // "<OpType> v1: strides=[1, 1] pads=[0, 0, 0, 0] ..." (engine inspector, timing cache id)
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
        auto label = [&](int32_t i) {
            char const* name = typeName(i);
            return name != nullptr ? std::string(name) : "input " + std::to_string(i);
        };
        nvinfer1::DataType const t = inputTypes[0];
        if (t != nvinfer1::DataType::kFLOAT && t != nvinfer1::DataType::kHALF)
        {
            throw PluginError(mWho + ": " + label(0) + " has type " + dataTypeName(t) + ", expected FP32 or FP16");
        }
        for (int32_t i = 1; i < nbInputs; ++i)
        {
            if (isFloat32Input(i))
            {
                if (inputTypes[i] != nvinfer1::DataType::kFLOAT)
                {
                    throw PluginError(mWho + ": " + label(i) + " has type " + dataTypeName(inputTypes[i])
                        + ", expected FP32 (" + float32Why() + ")");
                }
                continue;
            }
            if (inputTypes[i] != t)
            {
                throw PluginError(mWho + ": " + label(i) + " has type " + dataTypeName(inputTypes[i]) + ", expected "
                    + dataTypeName(t) + " like " + label(0) + " (all inputs of one type)");
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

void PluginBase::checkRank(char const* name, int32_t got, int32_t expected) const
{
    if (got != expected)
    {
        throw PluginError(
            mWho + ": " + name + " has rank " + std::to_string(got) + ", expected " + std::to_string(expected));
    }
}

void PluginBase::checkData(char const* name, nvinfer1::Dims const& dims, void const* data) const
{
    if (data == nullptr && volume(dims) > 0)
    {
        throw PluginError(
            mWho + ": " + name + " has shape " + dimsToString(dims) + " and a null device pointer, expected its data");
    }
}

int32_t PluginBase::cudaFailed(char const* what, cudaError_t e) const noexcept
{
    reportError(mRecorder,
        mWho + ": " + what + " failed with " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ") [enqueue]",
        nvinfer1::ErrorCode::kFAILED_EXECUTION);
    return static_cast<int32_t>(e);
}

void throwIfError(std::string const& error)
{
    if (!error.empty())
    {
        throw PluginError(error);
    }
}

ShapeRef inputShape(nvinfer1::Dims const* dims, int32_t nbInputs, int32_t i, bool emptyIsAbsent) noexcept
{
    return i < nbInputs && !(emptyIsAbsent && isEmptyInput(dims[i])) ? ShapeRef(dims[i].d, dims[i].nbDims)
                                                                     : ShapeRef();
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
