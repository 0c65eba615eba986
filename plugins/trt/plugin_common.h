// Shared plumbing of the dcn TensorRT plugins: logging, error reporting, the one
// field parse path (build and deserialization) and the field writer for
// getFieldsToSerialize(). TensorRT API only through trt_compat.h.
#pragma once

#include "dcn_fields.h"
#include "trt_compat.h"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace dcn {
namespace trt {

// An error the plugin reports (message already names op type, layer and the thing).
class PluginError : public std::runtime_error
{
public:
    explicit PluginError(std::string const& msg)
        : std::runtime_error(msg)
    {
    }
};

// "<OpType> 'layer name'"
std::string describe(char const* opType, std::string const& layerName);

// Logging: through the ILoggerFinder TensorRT handed to setLoggerFinder(), else
// TensorRT's getLogger() (when linked: not with DCN_TRT_NO_NVINFER), else stderr.
void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;
void logMessage(nvinfer1::ILogger::Severity severity, std::string const& msg) noexcept;

// Reports an error through the error recorder when there is one (runtime: attachToContext),
// and always logs it (build phase has no recorder in the plugin).
void reportError(nvinfer1::IErrorRecorder* recorder, std::string const& msg,
    nvinfer1::ErrorCode code = nvinfer1::ErrorCode::kINTERNAL_ERROR) noexcept;

// ---- fields ------------------------------------------------------------------------

// One parsed field: ints for INT / INTS (as many as given; list lengths are checked by
// the common header's validate_*_attrs), f for FLOAT. `present`: given or defaulted.
struct FieldValue
{
    bool present{false};
    std::vector<int32_t> ints;
    float f{0.F};
};

// Parses a PluginFieldCollection against a spec table. The only parse path: used by
// createPlugin() in the build phase (fields from the ONNX parser or the user) and in the
// runtime phase (fields from getFieldsToSerialize()). Checks each field's type
// (kINT32 / kFLOAT32), that INT / FLOAT fields hold one value, duplicates and required
// fields (messages from the common header); fills defaults; warns about unknown names.
// Value checks (list lengths, ranges) are the common header's validate_*_attrs.
// Throws PluginError naming op, layer, field, got, expected.
std::vector<FieldValue> parseFields(char const* opType, std::string const& layerName, FieldSpec const* specs,
    int32_t nbSpecs, nvinfer1::PluginFieldCollection const* fc);

// getFieldNames(): name, type and length of every field of a spec table (data null).
class FieldNames
{
public:
    FieldNames(FieldSpec const* specs, int32_t nbSpecs);
    nvinfer1::PluginFieldCollection const* collection() const noexcept
    {
        return &mCollection;
    }

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

// getFieldsToSerialize(): the same fields with the plugin's values (an optional field
// without default that was not given, kernel_shape, is left out). The collection points
// into this object.
class FieldWriter
{
public:
    void write(FieldSpec const* specs, int32_t nbSpecs, std::vector<FieldValue> const& values);
    nvinfer1::PluginFieldCollection const* collection() const noexcept
    {
        return &mCollection;
    }

private:
    std::vector<FieldValue> mValues;
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

nvinfer1::PluginFieldType trtFieldType(FieldKind kind) noexcept;
char const* pluginFieldTypeName(nvinfer1::PluginFieldType t) noexcept;
char const* dataTypeName(nvinfer1::DataType t) noexcept;

// "[2,3,-1,5]"
std::string dimsToString(nvinfer1::Dims const& d);

bool sameDims(nvinfer1::Dims const& a, nvinfer1::Dims const& b) noexcept;

// Element count of a fully known Dims (no -1); 0 for an empty tensor.
int64_t volume(nvinfer1::Dims const& d) noexcept;

// An optional input given as empty: rank 0 (or no dims at all). TensorRT's ONNX parser
// adds a null tensor for an input named "" (onnx/onnx-tensorrt, ModelImporter.cpp and
// addPluginWithCreator in onnxOpImporters.cpp); such an input is treated as absent.
bool isEmptyInput(nvinfer1::Dims const& d) noexcept;

} // namespace trt
} // namespace dcn

// Wraps a plugin entry point: converts any exception into a reported error and then runs
// `onError`. `who` is describe(op, layer); `where` the entry point. A PluginError already
// names op and layer; anything else (bad_alloc, ...) gets `who` put in front.
#define DCN_TRT_TRY try
#define DCN_TRT_CATCH(recorder, who, where, onError)                                                                   \
    catch (::dcn::trt::PluginError const& e)                                                                           \
    {                                                                                                                  \
        ::dcn::trt::reportError((recorder), std::string(e.what()) + " [" + (where) + "]");                           \
        onError;                                                                                                       \
    }                                                                                                                  \
    catch (std::exception const& e)                                                                                    \
    {                                                                                                                  \
        ::dcn::trt::reportError((recorder), std::string(who) + ": " + (where) + " failed: " + e.what());             \
        onError;                                                                                                       \
    }                                                                                                                  \
    catch (...)                                                                                                        \
    {                                                                                                                  \
        ::dcn::trt::reportError((recorder), std::string(who) + ": " + (where) + " failed: unknown exception");       \
        onError;                                                                                                       \
    }
