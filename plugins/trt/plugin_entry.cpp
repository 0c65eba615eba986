// Entry points of libdcn_trt_plugins.so.
//
// Two ways in, both supported by one library:
//  1. TensorRT's plugin-library loading: IPluginRegistry::loadLibrary (Python
//     registry.load_library, trtexec --dynamicPlugins, engines that serialize the library
//     with --setPluginsToSerialize) calls setLoggerFinder() and getCreators() and registers
//     what getCreators() returns.
//  2. A plain dlopen (ctypes.CDLL, Polygraphy --plugins, trtexec --staticPlugins): the
//     static initializer below registers both creators with TensorRT's global registry
//     (getPluginRegistry()), as REGISTER_TENSORRT_PLUGIN would. Set
//     DCN_TRT_PLUGINS_NO_AUTO_REGISTER=1 to turn this off.
// loadLibrary refuses a library whose creators are already registered, and it dlopens the
// library first (running 2.), so getCreators() takes the creators that 2. registered out
// of the global registry again before handing them to TensorRT.
//
// Built with -DDCN_TRT_LINK_NVINFER=OFF (DCN_TRT_NO_NVINFER=1) the library does not link
// libnvinfer, like TensorRT's own version-compatible plugin library (NVIDIA/TensorRT
// plugin/CMakeLists.txt, tensorrt_vc_plugins, and plugin/vc/vfcCommon.cpp at
// a892d22267d9cd2dedc1a0893e6892ac901f6d3d): only way 1. registers it (no static
// registration, no getPluginRegistry()), logging goes through setLoggerFinder(), and
// the library can be serialized into a version-compatible engine
// (IBuilderConfig::setPluginsToSerialize, trtexec --setPluginsToSerialize) and loaded by
// the lean runtime.
#include "deform_conv2d_plugin.h"
#include "deform_psroi_pool_plugin.h"
#include "deform_roi_pool_plugin.h"
#include "multi_scale_deformable_attention_plugin.h"
#include "plugin_common.h"

#include <cstdlib>
#include <mutex>

namespace {

using dcn::trt::DeformConv2dCreator;
using dcn::trt::DeformPSROIPoolCreator;
using dcn::trt::DeformRoIPoolCreator;
using dcn::trt::MsdaCreator;

constexpr int32_t kNbCreators = 4;

nvinfer1::IPluginCreatorInterface* const* creators()
{
    static DeformConv2dCreator conv;
    static DeformPSROIPoolCreator pool;
    static DeformRoIPoolCreator roiPool;
    static MsdaCreator msda;
    static nvinfer1::IPluginCreatorInterface* const list[kNbCreators] = {&conv, &pool, &roiPool, &msda};
    return list;
}

std::mutex gMutex;
bool gAutoRegistered[kNbCreators] = {};

#if defined(DCN_TRT_NO_NVINFER) && DCN_TRT_NO_NVINFER
nvinfer1::IPluginRegistry* globalRegistry() noexcept
{
    return nullptr; // no libnvinfer: registered only through getCreators()
}
#else
nvinfer1::IPluginRegistry* globalRegistry() noexcept
{
    return getPluginRegistry();
}
#endif

void autoRegister() noexcept
{
    try
    {
        char const* off = std::getenv("DCN_TRT_PLUGINS_NO_AUTO_REGISTER");
        if (off != nullptr && off[0] != '\0' && off[0] != '0')
        {
            return;
        }
        nvinfer1::IPluginRegistry* registry = globalRegistry();
        if (registry == nullptr)
        {
            return;
        }
        std::lock_guard<std::mutex> lock(gMutex);
        for (int32_t i = 0; i < kNbCreators; ++i)
        {
            nvinfer1::IPluginCreatorInterface* c = creators()[i];
            gAutoRegistered[i] = registry->registerCreator(*c, dcn::kPluginNamespace);
            if (!gAutoRegistered[i])
            {
                auto* v3 = static_cast<nvinfer1::IPluginCreatorV3One*>(c);
                dcn::trt::logMessage(nvinfer1::ILogger::Severity::kWARNING,
                    std::string("libdcn_trt_plugins: a plugin creator ") + v3->getPluginName() + " version "
                        + v3->getPluginVersion() + " namespace \"\" is registered already, expected none; "
                        + "keeping the registered one");
            }
        }
    }
    catch (...)
    {
    }
}

struct AutoRegister
{
    AutoRegister()
    {
        autoRegister();
    }
};
AutoRegister const gAutoRegister;

} // namespace

DCN_TRT_API void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    dcn::trt::setLoggerFinder(finder);
}

DCN_TRT_API nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    try
    {
        std::lock_guard<std::mutex> lock(gMutex);
        nvinfer1::IPluginRegistry* registry = globalRegistry();
        for (int32_t i = 0; i < kNbCreators; ++i)
        {
            if (gAutoRegistered[i] && registry != nullptr)
            {
                registry->deregisterCreator(*creators()[i]);
            }
            gAutoRegistered[i] = false;
        }
        nbCreators = kNbCreators;
        return creators();
    }
    catch (...)
    {
        nbCreators = 0;
        return nullptr;
    }
}
