// harness_nvinfer.h: the host harness's stand-in for what the plugins take from libnvinfer (test
// code, part of libdcn_trt_host_harness; trt_host_harness.cpp explains the whole): getLogger() (a
// logger that keeps the messages) and getPluginRegistry() (a registry that records creator
// registrations and implements the plugin resource calls with TensorRT's documented semantics;
// dcn_harness_use_registry(0) makes it null).
#pragma once

#include "NvInferRuntime.h"

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace dcn_harness {

using namespace nvinfer1;

struct KeepLogger : public ILogger
{
    std::string text;
    void log(Severity severity, char const* msg) noexcept override
    {
        char const* s = severity == Severity::kINTERNAL_ERROR ? "INTERNAL_ERROR"
            : severity == Severity::kERROR                    ? "ERROR"
            : severity == Severity::kWARNING                  ? "WARNING"
            : severity == Severity::kINFO                     ? "INFO"
                                                              : "VERBOSE";
        text += std::string(s) + ": " + msg + "\n";
    }
};
extern KeepLogger gLogger;

// What the plugins use of TensorRT's registry: creator registration (counted) and plugin
// resources (IPluginRegistry::acquirePluginResource: the first acquire of a key registers
// resource->clone(), later ones count; releasePluginResource: the last release calls
// release() and deletes the clone). Everything else answers "nothing".
class Registry : public IPluginRegistry
{
public:
    std::mutex mutex;
    std::map<std::string, std::pair<IPluginResource*, int32_t>> resources;
    int32_t registered{0};
    int32_t deregistered{0};
    int32_t acquires{0};
    int32_t releases{0};

#if NV_TENSORRT_MAJOR < 11 // the IPluginV2 creator calls TensorRT 10 still declares (deprecated)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    bool registerCreator(IPluginCreator&, AsciiChar const* const) noexcept override
    {
        return false;
    }
    IPluginCreator* const* getPluginCreatorList(int32_t* const n) const noexcept override
    {
        *n = 0;
        return nullptr;
    }
    IPluginCreator* getPluginCreator(AsciiChar const* const, AsciiChar const* const, AsciiChar const* const) noexcept override
    {
        return nullptr;
    }
    bool deregisterCreator(IPluginCreator const&) noexcept override
    {
        return false;
    }
#pragma GCC diagnostic pop
#endif
    void setErrorRecorder(IErrorRecorder* const) noexcept override {}
    IErrorRecorder* getErrorRecorder() const noexcept override
    {
        return nullptr;
    }
    bool isParentSearchEnabled() const override
    {
        return false;
    }
    void setParentSearchEnabled(bool const) override {}
    PluginLibraryHandle loadLibrary(AsciiChar const*) noexcept override
    {
        return nullptr;
    }
    void deregisterLibrary(PluginLibraryHandle) noexcept override {}
    bool registerCreator(IPluginCreatorInterface&, AsciiChar const* const) noexcept override
    {
        std::lock_guard<std::mutex> lock(mutex);
        ++registered;
        return true;
    }
    IPluginCreatorInterface* const* getAllCreators(int32_t* const n) const noexcept override
    {
        *n = 0;
        return nullptr;
    }
    IPluginCreatorInterface* getCreator(AsciiChar const* const, AsciiChar const* const, AsciiChar const* const) noexcept override
    {
        return nullptr;
    }
    bool deregisterCreator(IPluginCreatorInterface const&) noexcept override
    {
        std::lock_guard<std::mutex> lock(mutex);
        ++deregistered;
        return true;
    }
    IPluginResource* acquirePluginResource(AsciiChar const* key, IPluginResource* resource) noexcept override
    {
        std::lock_guard<std::mutex> lock(mutex);
        ++acquires;
        if (key == nullptr || resource == nullptr)
        {
            return nullptr;
        }
        auto it = resources.find(key);
        if (it != resources.end())
        {
            ++it->second.second;
            return it->second.first;
        }
        IPluginResource* r = resource->clone();
        if (r != nullptr)
        {
            resources.emplace(key, std::make_pair(r, 1));
        }
        return r;
    }
    int32_t releasePluginResource(AsciiChar const* key) noexcept override
    {
        IPluginResource* dead = nullptr;
        {
            std::lock_guard<std::mutex> lock(mutex);
            ++releases;
            auto it = key ? resources.find(key) : resources.end();
            if (it == resources.end())
            {
                return -1;
            }
            if (--it->second.second > 0)
            {
                return 0;
            }
            dead = it->second.first;
            resources.erase(it);
        }
        int32_t const rc = dead->release();
        delete dead;
        return rc;
    }
    IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const n) noexcept override
    {
        *n = 0;
        return nullptr;
    }
};

extern bool gUseRegistry;
Registry& registry();

} // namespace dcn_harness
