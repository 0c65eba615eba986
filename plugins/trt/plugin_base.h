// What both dcn plugins share: the IPluginV3 capability plumbing, identity (version "1",
// namespace ""), the error recorder of the attached execution context, the field list,
// the format rule (linear FP32 or FP16, every input and the output of one type, except
// inputs the contract fixes to FP32 -- DeformPSROIPool's rois) and
// the serialized fields. Each op derives and adds shapes, validation and enqueue.
#pragma once

#include "plugin_common.h"

#include <string>
#include <vector>

namespace dcn {
namespace trt {

class PluginBase : public nvinfer1::IPluginV3,
                   public PluginCoreBase,
                   public PluginBuildBase,
                   public PluginRuntimeBase
{
public:
    PluginBase(char const* opType, FieldSpec const* specs, int32_t nbSpecs, std::string layerName,
        std::vector<FieldValue> fields);
    ~PluginBase() override = default;

    PluginBase(PluginBase const&) = delete;
    PluginBase& operator=(PluginBase const&) = delete;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override
    {
        return mOpType;
    }
    char const* getPluginVersion() const noexcept override
    {
        return kPluginVersion;
    }
    char const* getPluginNamespace() const noexcept override
    {
        return kPluginNamespace;
    }

    // IPluginV3OneBuild (shared parts)
    int32_t getNbOutputs() const noexcept override
    {
        return 1;
    }
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    char const* getTimingCacheID() noexcept override
    {
        return mMetadata.c_str();
    }
    char const* getMetadataString() noexcept override
    {
        return mMetadata.c_str();
    }

    // IPluginV3OneRuntime (shared parts)
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

protected:
    // Number of inputs allowed: [minInputs, maxInputs]; names for messages.
    void checkInputCount(int32_t nbInputs, int32_t nbOutputs) const;
    std::string const& who() const noexcept
    {
        return mWho;
    }
    // The recorder of the execution context this clone is attached to (runtime), else null.
    nvinfer1::IErrorRecorder* recorder() const noexcept
    {
        return mRecorder;
    }
    void setRecorder(nvinfer1::IErrorRecorder* r) noexcept
    {
        mRecorder = r;
    }
    virtual int32_t minInputs() const noexcept = 0;
    virtual int32_t maxInputs() const noexcept = 0;
    virtual char const* inputNames() const noexcept = 0; // e.g. "X, W, offset[, B[, mask]]"
    // Inputs that are FP32 whatever the node's type (contract: DeformPSROIPool's rois).
    virtual bool isFloat32Input(int32_t /*index*/) const noexcept
    {
        return false;
    }

    char const* mOpType;
    FieldSpec const* mSpecs;
    int32_t mNbSpecs;
    std::string mLayerName;
    std::string mWho;
    std::vector<FieldValue> mFields;
    std::string mMetadata;

private:
    FieldWriter mWriter;
    nvinfer1::IErrorRecorder* mRecorder{nullptr};
};

// Size in bytes of one element of a supported data type (FP32 / FP16); 0 otherwise.
int64_t elementSize(nvinfer1::DataType t) noexcept;

} // namespace trt
} // namespace dcn
