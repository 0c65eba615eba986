// What every dcn plugin shares, in three layers:
//  * PluginBase: the IPluginV3 capability plumbing, identity (version "1", namespace ""),
//    the error recorder of the attached execution context, the field list, the format rule
//    (linear FP32 or FP16, every input and the output of one type, except inputs the
//    contract fixes to FP32 -- the RoI pools' rois: the one isFloat32Input hook) and the
//    serialized fields.
//  * Plugin<Op, Traits>: the IPluginV3 life cycle -- attributes parsed and validated once,
//    clone, configurePlugin (validate at the profile's max shapes), onShapeChange (validate
//    and cache shapes and dims), attachToContext, and enqueue re-validating the shapes it
//    gets when they differ from the cached ones. An op derives and adds only its shape
//    validation, output shapes, workspace (if any) and launch.
//  * Creator<Op>: the IPluginCreatorV3One of an op (one parse path for build and runtime).
// An op's Traits: Attrs, Dims (dcn_math.h), kName, kFields, kNbFields, parse(layer, fc)
// (parseFields with the op's table), kMinInputs, kMaxInputs, kInputNames ("data, rois[,
// offset]"), kInputs / kRanks (name and rank of each input), kFloat32Input (the input that
// is FP32 whatever the node's type, -1: none) and kFloat32Why (why, in its type error),
// kTypeErrorsByName (type errors say "rois", else "input 1"), attrs(fields) and
// validateAttrs(layer, attrs).
#pragma once

#include "dcn_math.h"
#include "plugin_common.h"

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <array>
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
    // Inputs that are FP32 whatever the node's type (contract: the RoI pools' rois).
    virtual bool isFloat32Input(int32_t /*index*/) const noexcept
    {
        return false;
    }
    // Type errors name input i so ("rois"); nullptr: "input i".
    virtual char const* typeName(int32_t /*index*/) const noexcept
    {
        return nullptr;
    }
    // Why an isFloat32Input input is FP32, in its type error: "(...)".
    virtual char const* float32Why() const noexcept
    {
        return "also in an FP16 layer";
    }
    // Throws "<who>: <name> has rank <got>, expected <expected>" unless they agree.
    void checkRank(char const* name, int32_t got, int32_t expected) const;
    // Throws "<who>: <name> has shape [...] and a null device pointer, expected its data" (an empty
    // tensor, which no kernel reads, may come without memory).
    void checkData(char const* name, nvinfer1::Dims const& dims, void const* data) const;
    // Reports "<who>: <what> failed with cudaErrorX (text) [enqueue]"; returns the status.
    int32_t cudaFailed(char const* what, cudaError_t e) const noexcept;

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

// Throws PluginError(error) unless it is empty (a common-header validate_* result).
void throwIfError(std::string const& error);

// Optional input i as the common header sees it: absent when not given, or (emptyIsAbsent)
// given as empty (rank 0, isEmptyInput).
ShapeRef inputShape(nvinfer1::Dims const* dims, int32_t nbInputs, int32_t i, bool emptyIsAbsent) noexcept;

// Calls f(T{}) with T = float or __half, the type of input 0 (named `name` in the error).
template <class F>
decltype(auto) dispatchType(std::string const& who, char const* name, nvinfer1::DataType t, F&& f)
{
    switch (t)
    {
    case nvinfer1::DataType::kFLOAT: return f(float{});
    case nvinfer1::DataType::kHALF: return f(__half{});
    default: break;
    }
    throw PluginError(who + ": " + name + " has type " + dataTypeName(t) + ", expected FP32 or FP16");
}

// The IPluginV3 life cycle of op `Op` (which derives from Plugin<Op, Traits>).
template <class Op, class Traits>
class Plugin : public PluginBase
{
public:
    using Attrs = typename Traits::Attrs;
    using Dims = typename Traits::Dims;
    static constexpr int32_t kMaxIn = Traits::kMaxInputs;
    using Shapes = std::array<nvinfer1::Dims, kMaxIn>;

    // fields: parsed by Traits::parse; validated here (throws PluginError).
    Plugin(std::string layerName, std::vector<FieldValue> fields)
        : PluginBase(Traits::kName, Traits::kFields, Traits::kNbFields, std::move(layerName), std::move(fields))
    {
        mAttrs = Traits::attrs(mFields);
        throwIfError(Traits::validateAttrs(mLayerName, mAttrs));
    }

    // IPluginV3: a copy with the shapes seen so far (and the op's runtime state, copyTo).
    nvinfer1::IPluginV3* clone() noexcept override
    {
        DCN_TRT_TRY
        {
            Op* p = new Op(mLayerName, mFields);
            Plugin& q = *p;
            q.setRecorder(recorder());
            q.mNbInputs = mNbInputs;
            q.mDims = mDims;
            q.mDimsValid = mDimsValid;
            for (int32_t i = 0; i < kMaxIn; ++i)
            {
                q.mShapes[i] = mShapes[i];
            }
            copyTo(*p);
            return p;
        }
        DCN_TRT_CATCH(recorder(), who(), "clone", return nullptr)
    }

    // IPluginV3OneBuild: validate at the profile's largest shapes (when all are known).
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept override
    {
        DCN_TRT_TRY
        {
            setInputCount(nbInputs, nbOutputs);
            Shapes const maxDims = maxDimsOf(in, nbInputs);
            for (int32_t i = 0; i < nbInputs; ++i)
            {
                for (int32_t k = 0; k < maxDims[i].nbDims; ++k)
                {
                    if (maxDims[i].d[k] < 0)
                    {
                        logMessage(nvinfer1::ILogger::Severity::kVERBOSE,
                            who() + ": configurePlugin without max shape of input " + std::to_string(i) + " "
                                + dimsToString(maxDims[i]) + ", shapes checked at onShapeChange");
                        return 0;
                    }
                }
            }
            (void) validate(maxDims.data(), nbInputs);
            return 0;
        }
        DCN_TRT_CATCH(recorder(), who(), "configurePlugin", return -1)
    }
    // Input ranks (Traits::kRanks, but what rankIgnored lets pass), then outputShape.
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/, nvinfer1::DimsExprs* outputs,
        int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override
    {
        DCN_TRT_TRY
        {
            checkInputCount(nbInputs, nbOutputs);
            for (int32_t i = 0; i < nbInputs; ++i)
            {
                if (!rankIgnored(i, inputs[i].nbDims))
                {
                    checkRank(Traits::kInputs[i], inputs[i].nbDims, Traits::kRanks[i]);
                }
            }
            outputs[0] = outputShape(inputs, exprBuilder);
            return 0;
        }
        DCN_TRT_CATCH(recorder(), who(), "getOutputShapes", return -1)
    }
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
        nvinfer1::DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept override
    {
        return 0;
    }

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept override
    {
        DCN_TRT_TRY
        {
            setInputCount(nbInputs, nbOutputs);
            setShapes(dimsOf(in, nbInputs).data(), nbInputs);
            return 0;
        }
        DCN_TRT_CATCH(recorder(), who(), "onShapeChange", return -1)
    }

    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override
    {
        DCN_TRT_TRY
        {
            auto* p = static_cast<Op*>(clone());
            if (p == nullptr)
            {
                return nullptr;
            }
            Plugin& q = *p;
            q.setRecorder(context != nullptr ? context->getErrorRecorder() : nullptr);
            q.attached(context);
            return p;
        }
        DCN_TRT_CATCH(recorder(), who(), "attachToContext", return nullptr)
    }

    // enqueue gets no input count: it is the one onShapeChange saw. Shapes are those of the
    // last onShapeChange; should they differ, these are validated. An empty output: nothing
    // to do; else launch().
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override
    {
        DCN_TRT_TRY
        {
            if (mNbInputs < Traits::kMinInputs)
            {
                throw PluginError(who() + ": enqueue before onShapeChange, expected onShapeChange first");
            }
            checkReady();
            bool same = mDimsValid;
            for (int32_t i = 0; same && i < mNbInputs; ++i)
            {
                same = sameDims(inputDesc[i].dims, mShapes[i]);
            }
            if (!same)
            {
                setShapes(dimsOf(inputDesc, mNbInputs).data(), mNbInputs);
            }
            if (volume(outputDesc[0].dims) == 0)
            {
                return 0; // empty batch, no RoIs or an empty output: nothing to do
            }
            return launch(mDims, inputDesc, inputs, outputs[0], workspace, stream);
        }
        DCN_TRT_CATCH(recorder(), who(), "enqueue", return -1)
    }

protected:
    int32_t minInputs() const noexcept override
    {
        return Traits::kMinInputs;
    }
    int32_t maxInputs() const noexcept override
    {
        return Traits::kMaxInputs;
    }
    char const* inputNames() const noexcept override
    {
        return Traits::kInputNames;
    }
    bool isFloat32Input(int32_t index) const noexcept override
    {
        return index == Traits::kFloat32Input;
    }
    char const* typeName(int32_t index) const noexcept override
    {
        return Traits::kTypeErrorsByName && index >= 0 && index < kMaxIn ? Traits::kInputs[index] : nullptr;
    }
    char const* float32Why() const noexcept override
    {
        return Traits::kFloat32Why;
    }

    // An input whose rank getOutputShapes does not check (an empty optional input, say).
    virtual bool rankIgnored(int32_t /*index*/, int32_t /*rank*/) const
    {
        return false;
    }
    // The output's shape expression (input ranks checked).
    virtual nvinfer1::DimsExprs outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const = 0;
    // The op's shape validation (dims of the nbInputs inputs, none -1, count checked); throws.
    virtual Dims validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const = 0;
    // The op's kernels for validated dims d (inputDesc: the current shapes and types).
    virtual int32_t launch(Dims const& d, nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
        void* output, void* workspace, cudaStream_t stream)
        = 0;
    // Runtime state beyond the shapes that a clone takes over (e.g. a cuBLAS handle).
    virtual void copyTo(Op& /*clone*/) const {}
    // Called on the clone attachToContext returns, recorder already set.
    virtual void attached(nvinfer1::IPluginResourceContext* /*context*/) {}
    // Throws unless enqueue may run (after the input count check, before the shape refresh).
    virtual void checkReady() const {}

    // Input count checked, then validateShapes.
    Dims validate(nvinfer1::Dims const* dims, int32_t nbInputs) const
    {
        checkInputCount(nbInputs, 1);
        return validateShapes(dims, nbInputs);
    }
    int32_t nbInputs() const noexcept
    {
        return mNbInputs;
    }
    // The dims of the first n tensors (onShapeChange, enqueue) / their profile maxima (build).
    static Shapes dimsOf(nvinfer1::PluginTensorDesc const* in, int32_t n) noexcept
    {
        Shapes s{};
        for (int32_t i = 0; i < n && i < kMaxIn; ++i)
        {
            s[i] = in[i].dims;
        }
        return s;
    }
    static Shapes maxDimsOf(nvinfer1::DynamicPluginTensorDesc const* in, int32_t n) noexcept
    {
        Shapes s{};
        for (int32_t i = 0; i < n && i < kMaxIn; ++i)
        {
            s[i] = in[i].max;
        }
        return s;
    }

    Attrs mAttrs;

private:
    // The input count checked and kept: enqueue gets none.
    void setInputCount(int32_t nbInputs, int32_t nbOutputs)
    {
        checkInputCount(nbInputs, nbOutputs);
        mNbInputs = nbInputs;
    }
    // validate() and remember the shapes and dims for enqueue.
    void setShapes(nvinfer1::Dims const* dims, int32_t nbInputs)
    {
        mDimsValid = false;
        mDims = validate(dims, nbInputs);
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            mShapes[i] = dims[i];
        }
        mDimsValid = true;
    }

    int32_t mNbInputs{0}; // seen by configurePlugin / onShapeChange (enqueue gets none)
    Dims mDims{};
    nvinfer1::Dims mShapes[kMaxIn]{};
    bool mDimsValid{false};
};

// The IPluginCreatorV3One of op `Op` (Op::Traits): name, version "1", namespace "", fields.
template <class Op>
class Creator final : public nvinfer1::IPluginCreatorV3One
{
    using Traits = typename Op::Traits;

public:
    Creator()
        : mNames(Traits::kFields, Traits::kNbFields)
    {
    }
    char const* getPluginName() const noexcept override
    {
        return Traits::kName;
    }
    char const* getPluginVersion() const noexcept override
    {
        return kPluginVersion;
    }
    char const* getPluginNamespace() const noexcept override
    {
        return kPluginNamespace;
    }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override
    {
        return mNames.collection();
    }
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /*phase*/) noexcept override
    {
        std::string const layer = name != nullptr ? name : "";
        DCN_TRT_TRY
        {
            // One parse path for the build phase (ONNX parser / user fields) and the runtime
            // phase (the fields getFieldsToSerialize() wrote).
            return new Op(layer, Traits::parse(layer, fc));
        }
        DCN_TRT_CATCH(nullptr, describe(Traits::kName, layer), "createPlugin", return nullptr)
    }

private:
    FieldNames mNames;
};

} // namespace trt
} // namespace dcn
