// harness_side.h: TensorRT's side of the plugin interface, played by the host harness (test code;
// trt_host_harness.cpp explains the whole): dimension expressions that carry a value, an
// IExprBuilder over them, an error recorder, one IPluginResourceContext per execution context,
// plugin handles with their capability interfaces, tensor descriptions from flat arrays, and the
// C API's string helpers.
#pragma once

#include "NvInferRuntime.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dcn_harness {

using namespace nvinfer1;

// Copies s into buf (NUL-terminated, truncated to n); returns s's length.
int copyOut(std::string const& s, char* buf, size_t n);
// s as a JSON string literal.
std::string jsonString(char const* s);
// The creator of getCreators() named `name`, or null.
IPluginCreatorV3One* findCreator(char const* name);

// Expressions that carry a value: constant, or symbolic (a runtime dimension) with the
// value it would have, so a test can evaluate TensorRT-side shape formulas.
class Dim : public IDimensionExpr
{
public:
    Dim(bool constant, int64_t value)
    {
        mCore.constant = constant;
        mCore.value = value;
        mImpl = &mCore;
    }
    ~Dim() noexcept override = default;
    int64_t value() const
    {
        return mCore.value;
    }

private:
    struct Core : public apiv::VDimensionExpr
    {
        bool constant{false};
        int64_t value{0};
        bool isConstant() const override
        {
            return constant;
        }
        int64_t getConstantValue() const override
        {
            return constant ? value : INT64_MIN;
        }
        bool isSizeTensor() const override
        {
            return false;
        }
    } mCore;
};
inline int64_t floorDiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
class Builder : public IExprBuilder
{
public:
    Builder()
    {
        mImpl = &mCore;
        mCore.owner = this;
    }
    ~Builder() noexcept override = default;
    Dim const* make(bool constant, int64_t v)
    {
        mDims.emplace_back(new Dim(constant, v));
        return mDims.back().get();
    }
    std::string error;

private:
    struct Core : public apiv::VExprBuilder
    {
        Builder* owner{nullptr};
        IDimensionExpr const* constant(int64_t value) override
        {
            return owner->make(true, value);
        }
        IDimensionExpr const* operation(
            DimensionOperation op, IDimensionExpr const& first, IDimensionExpr const& second) override
        {
            int64_t const a = static_cast<Dim const&>(first).value();
            int64_t const b = static_cast<Dim const&>(second).value();
            bool const c = first.isConstant() && second.isConstant();
            int64_t v = 0;
            switch (op)
            {
            case DimensionOperation::kSUM: v = a + b; break;
            case DimensionOperation::kPROD: v = a * b; break;
            case DimensionOperation::kMAX: v = a > b ? a : b; break;
            case DimensionOperation::kMIN: v = a < b ? a : b; break;
            case DimensionOperation::kSUB: v = a - b; break;
            case DimensionOperation::kEQUAL: v = a == b; break;
            case DimensionOperation::kLESS: v = a < b; break;
            case DimensionOperation::kFLOOR_DIV:
                if (b == 0)
                {
                    owner->error += "floor division by zero; ";
                    return owner->make(c, 0);
                }
                v = floorDiv(a, b);
                break;
            case DimensionOperation::kCEIL_DIV:
                if (b == 0)
                {
                    owner->error += "ceil division by zero; ";
                    return owner->make(c, 0);
                }
                v = -floorDiv(-a, b);
                break;
            }
            return owner->make(c, v);
        }
        IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override
        {
            owner->error += "declareSizeTensor called; ";
            return nullptr;
        }
    } mCore;
    std::vector<std::unique_ptr<Dim>> mDims;
};

class Recorder : public IErrorRecorder
{
public:
    int32_t getNbErrors() const noexcept override
    {
        return static_cast<int32_t>(mErrors.size());
    }
    ErrorCode getErrorCode(int32_t i) const noexcept override
    {
        return mErrors.at(static_cast<size_t>(i)).first;
    }
    ErrorDesc getErrorDesc(int32_t i) const noexcept override
    {
        return mErrors.at(static_cast<size_t>(i)).second.c_str();
    }
    bool hasOverflowed() const noexcept override
    {
        return false;
    }
    void clear() noexcept override
    {
        mErrors.clear();
    }
    bool reportError(ErrorCode val, ErrorDesc desc) noexcept override
    {
        mErrors.emplace_back(val, desc ? desc : "");
        return false;
    }
    RefCount incRefCount() noexcept override
    {
        return ++mRefs;
    }
    RefCount decRefCount() noexcept override
    {
        return --mRefs;
    }
    std::vector<std::pair<ErrorCode, std::string>> mErrors;
    RefCount mRefs{0};
};

class ResourceContext : public IPluginResourceContext
{
public:
    explicit ResourceContext(IErrorRecorder* r)
        : mRecorder(r)
    {
    }
    IGpuAllocator* getGpuAllocator() const noexcept override
    {
        return nullptr;
    }
    IErrorRecorder* getErrorRecorder() const noexcept override
    {
        return mRecorder;
    }

private:
    IErrorRecorder* mRecorder;
};

extern Recorder gRecorder;

// One IPluginResourceContext per execution context id (TensorRT has one per context);
// they live as long as the process, so their addresses (the plugins' resource keys) stay distinct.
ResourceContext* resourceContext(int32_t id);

struct Handle
{
    IPluginV3* plugin{nullptr};
    IPluginV3OneCore* core{nullptr};
    IPluginV3OneBuild* build{nullptr};
    IPluginV3OneRuntime* runtime{nullptr};
};

// A handle with the plugin's core, build and runtime interfaces (null for a null plugin).
Handle* wrap(IPluginV3* p);
Dims makeDims(int32_t rank, int64_t const* d);
// Tensor descriptions from flat arrays: ranks[i], dims[i*8 + k], types[i] (DataType), format linear.
std::vector<DynamicPluginTensorDesc> dynDescs(int32_t n, int32_t const* ranks, int64_t const* dims, int32_t const* types);

} // namespace dcn_harness
