// harness_nvinfer.cpp: the harness's libnvinfer stand-in (harness_nvinfer.h): the logger, the
// registry and the two C functions the plugins call, getLogger() and getPluginRegistry().
#include "harness_nvinfer.h"

namespace dcn_harness {

KeepLogger gLogger;
bool gUseRegistry = true;

Registry& registry()
{
    static Registry* r = new Registry; // never destroyed: plugin clones may release at exit
    return *r;
}

} // namespace dcn_harness

extern "C" nvinfer1::ILogger* getLogger() noexcept
{
    return &dcn_harness::gLogger;
}
extern "C" nvinfer1::IPluginRegistry* getPluginRegistry() noexcept
{
    return dcn_harness::gUseRegistry ? &dcn_harness::registry() : nullptr;
}
