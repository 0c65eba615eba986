#include "plugin_common.h"

#include "dcn_math.h"

#include <atomic>
#include <cstdio>
#include <sstream>

namespace dcn {
namespace trt {

namespace {
std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};

char const* severityName(nvinfer1::ILogger::Severity s) noexcept
{
    switch (s)
    {
    case nvinfer1::ILogger::Severity::kINTERNAL_ERROR: return "INTERNAL_ERROR";
    case nvinfer1::ILogger::Severity::kERROR: return "ERROR";
    case nvinfer1::ILogger::Severity::kWARNING: return "WARNING";
    case nvinfer1::ILogger::Severity::kINFO: return "INFO";
    case nvinfer1::ILogger::Severity::kVERBOSE: return "VERBOSE";
    }
    return "?";
}
} // namespace

std::string describe(char const* opType, std::string const& layerName)
{
    return std::string(opType) + " '" + layerName + "'";
}

void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    gLoggerFinder.store(finder);
}

void logMessage(nvinfer1::ILogger::Severity severity, std::string const& msg) noexcept
{
    try
    {
        nvinfer1::ILogger* logger = nullptr;
        if (nvinfer1::ILoggerFinder* finder = gLoggerFinder.load())
        {
            logger = finder->findLogger();
        }
#if !(defined(DCN_TRT_NO_NVINFER) && DCN_TRT_NO_NVINFER)
        if (logger == nullptr)
        {
            logger = getLogger(); // libnvinfer: the logger of the current builder / runtime
        }
#endif
        std::string const line = "[dcn] " + msg;
        if (logger != nullptr)
        {
            logger->log(severity, line.c_str());
        }
        else if (severity <= nvinfer1::ILogger::Severity::kWARNING)
        {
            std::fprintf(stderr, "[%s] %s\n", severityName(severity), line.c_str());
        }
    }
    catch (...)
    {
        // Logging must never throw out of a plugin entry point.
    }
}

void reportError(nvinfer1::IErrorRecorder* recorder, std::string const& msg, nvinfer1::ErrorCode code) noexcept
{
    try
    {
        if (recorder != nullptr)
        {
            recorder->reportError(code, msg.c_str());
        }
    }
    catch (...)
    {
    }
    logMessage(nvinfer1::ILogger::Severity::kERROR, msg);
}

nvinfer1::PluginFieldType trtFieldType(FieldKind kind) noexcept
{
    return kind == FieldKind::kFLOAT ? nvinfer1::PluginFieldType::kFLOAT32 : nvinfer1::PluginFieldType::kINT32;
}

char const* pluginFieldTypeName(nvinfer1::PluginFieldType t) noexcept
{
    using T = nvinfer1::PluginFieldType;
    switch (t)
    {
    case T::kFLOAT16: return "kFLOAT16";
    case T::kFLOAT32: return "kFLOAT32";
    case T::kFLOAT64: return "kFLOAT64";
    case T::kINT8: return "kINT8";
    case T::kINT16: return "kINT16";
    case T::kINT32: return "kINT32";
    case T::kCHAR: return "kCHAR";
    case T::kDIMS: return "kDIMS";
    case T::kUNKNOWN: return "kUNKNOWN";
    case T::kBF16: return "kBF16";
    case T::kINT64: return "kINT64";
    case T::kFP8: return "kFP8";
    default: break;
    }
    return "an unknown PluginFieldType";
}

char const* dataTypeName(nvinfer1::DataType t) noexcept
{
    using D = nvinfer1::DataType;
    switch (t)
    {
    case D::kFLOAT: return "FP32";
    case D::kHALF: return "FP16";
    case D::kINT8: return "INT8";
    case D::kINT32: return "INT32";
    case D::kBOOL: return "BOOL";
    case D::kUINT8: return "UINT8";
    case D::kFP8: return "FP8";
    case D::kBF16: return "BF16";
    case D::kINT64: return "INT64";
    default: break;
    }
    return "an unsupported type";
}

std::string dimsToString(nvinfer1::Dims const& d)
{
    std::ostringstream s;
    s << '[';
    for (int32_t i = 0; i < d.nbDims; ++i)
    {
        s << (i ? "," : "") << d.d[i];
    }
    s << ']';
    return s.str();
}

bool sameDims(nvinfer1::Dims const& a, nvinfer1::Dims const& b) noexcept
{
    if (a.nbDims != b.nbDims)
    {
        return false;
    }
    for (int32_t i = 0; i < a.nbDims; ++i)
    {
        if (a.d[i] != b.d[i])
        {
            return false;
        }
    }
    return true;
}

int64_t volume(nvinfer1::Dims const& d) noexcept
{
    int64_t v = 1;
    for (int32_t i = 0; i < d.nbDims; ++i)
    {
        v *= d.d[i];
    }
    return v;
}

bool isEmptyInput(nvinfer1::Dims const& d) noexcept
{
    return d.nbDims <= 0;
}

namespace {
std::string kindPhrase(FieldKind k)
{
    // "an INT (kINT32)", "an INTS (kINT32)", "a FLOAT (kFLOAT32)"
    return std::string(k == FieldKind::kFLOAT ? "a " : "an ") + fieldKindName(k) + " (" + fieldTrtTypeName(k) + ")";
}
} // namespace

std::vector<FieldValue> parseFields(char const* opType, std::string const& layerName, FieldSpec const* specs,
    int32_t nbSpecs, nvinfer1::PluginFieldCollection const* fc)
{
    std::string const who = describe(opType, layerName);
    std::vector<FieldValue> values(static_cast<size_t>(nbSpecs));
    if (fc != nullptr && fc->nbFields > 0 && fc->fields == nullptr)
    {
        throw PluginError(who + ": plugin field collection has " + std::to_string(fc->nbFields)
            + " fields and a null field array, expected an array of " + std::to_string(fc->nbFields));
    }
    std::vector<bool> seen(static_cast<size_t>(nbSpecs), false);
    int32_t const nb = fc == nullptr ? 0 : fc->nbFields;
    for (int32_t f = 0; f < nb; ++f)
    {
        nvinfer1::PluginField const& field = fc->fields[f];
        if (field.name == nullptr)
        {
            throw PluginError(who + ": plugin field #" + std::to_string(f) + " has no name, expected one of the "
                + opType + " attributes");
        }
        std::string const name(field.name);
        int32_t idx = -1;
        for (int32_t s = 0; s < nbSpecs; ++s)
        {
            if (name == specs[s].name)
            {
                idx = s;
                break;
            }
        }
        if (idx < 0)
        {
            std::string expected;
            for (int32_t s = 0; s < nbSpecs; ++s)
            {
                expected += std::string(s ? ", " : "") + specs[s].name;
            }
            logMessage(nvinfer1::ILogger::Severity::kWARNING,
                who + ": ignoring unknown attribute " + name + ", expected one of " + expected);
            continue;
        }
        FieldSpec const& spec = specs[idx];
        if (seen[static_cast<size_t>(idx)])
        {
            throw PluginError(who + ": attribute " + name + " given twice, expected it once");
        }
        seen[static_cast<size_t>(idx)] = true;
        if (field.type != trtFieldType(spec.kind))
        {
            throw PluginError(::dcn::attribute_type_message(opType, layerName, spec.name,
                (kindPhrase(spec.kind) + "; got " + pluginFieldTypeName(field.type)).c_str()));
        }
        bool const scalar = spec.kind != FieldKind::kINTS;
        if (field.length < 0 || (scalar && field.length != 1) || (field.length > 0 && field.data == nullptr))
        {
            throw PluginError(who + ": attribute " + name + " has " + std::to_string(field.length) + " value"
                + (field.length == 1 ? "" : "s") + (field.data == nullptr ? " and no data" : "") + ", expected "
                + (scalar ? std::string("1") : std::to_string(spec.length)));
        }
        FieldValue& v = values[static_cast<size_t>(idx)];
        v.present = true;
        if (spec.kind == FieldKind::kFLOAT)
        {
            v.f = *static_cast<float const*>(field.data);
        }
        else
        {
            int32_t const* p = static_cast<int32_t const*>(field.data);
            v.ints.assign(p, p + field.length);
        }
    }
    for (int32_t s = 0; s < nbSpecs; ++s)
    {
        FieldSpec const& spec = specs[s];
        FieldValue& v = values[static_cast<size_t>(s)];
        if (v.present)
        {
            continue;
        }
        if (spec.required)
        {
            throw PluginError(
                ::dcn::missing_attribute_message(opType, layerName, spec.name, kindPhrase(spec.kind).c_str()));
        }
        if (spec.hasDefault)
        {
            v.present = true;
            if (spec.kind == FieldKind::kFLOAT)
            {
                v.f = static_cast<float>(spec.defaults[0]);
            }
            else
            {
                for (int32_t k = 0; k < spec.length; ++k)
                {
                    v.ints.push_back(static_cast<int32_t>(spec.defaults[k]));
                }
            }
        }
    }
    return values;
}

FieldNames::FieldNames(FieldSpec const* specs, int32_t nbSpecs)
{
    mFields.reserve(static_cast<size_t>(nbSpecs));
    for (int32_t s = 0; s < nbSpecs; ++s)
    {
        mFields.emplace_back(specs[s].name, nullptr, trtFieldType(specs[s].kind), specs[s].length);
    }
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
}

void FieldWriter::write(FieldSpec const* specs, int32_t nbSpecs, std::vector<FieldValue> const& values)
{
    mValues = values;
    mFields.clear();
    mFields.reserve(static_cast<size_t>(nbSpecs));
    for (int32_t s = 0; s < nbSpecs; ++s)
    {
        FieldValue const& v = mValues[static_cast<size_t>(s)];
        if (!v.present)
        {
            continue; // optional without default and not given (kernel_shape): leave it out
        }
        if (specs[s].kind == FieldKind::kFLOAT)
        {
            mFields.emplace_back(specs[s].name, &v.f, nvinfer1::PluginFieldType::kFLOAT32, 1);
        }
        else
        {
            mFields.emplace_back(specs[s].name, v.ints.data(), nvinfer1::PluginFieldType::kINT32,
                static_cast<int32_t>(v.ints.size()));
        }
    }
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
}

} // namespace trt
} // namespace dcn
