// Every TensorRT 10 / 11 difference the plugin sources care about, in one place.
//
// The plugins use only the IPluginV3 API (NvInferRuntime.h, NvInferPluginBase.h),
// which is the same in TensorRT 10.x and 11.x. What differs:
//  * TensorRT 11 hands plugins no cuBLAS / cuDNN handle (IPluginV2Ext::attachToContext
//    always gets nullptr; IPluginResourceContext has none): a plugin that uses cuBLAS
//    creates its cuBLAS handle itself on every TensorRT version, one per execution context
//    (cublas_resource.h).
//  * TensorRT 11 has no BuilderFlag::kFP16 and every network is strongly typed: the
//    plugin never sees a precision flag, only the tensor types TensorRT proposes in
//    supportsFormatCombination (FP32 or FP16, linear). Nothing to do in C++; the
//    builder side (trt_runtime/build.py) chooses the path.
//  * TensorRT 11 makes ILogger / IProfiler versioned interfaces (v_1_0::ILogger): the
//    plugins only call ILogger::log through a pointer, which is source compatible.
//  * Plugin-library entry points: TensorRT 10 and 11 look for getCreators() (an array of
//    IPluginCreatorInterface, which is how IPluginCreatorV3One creators travel) and
//    setLoggerFinder(). The older getPluginCreators() returns IPluginCreator (IPluginV2)
//    creators only, so this library does not export it: handing V3 creators through it
//    would be read as the wrong interface.
//  * NvInferPlugin.h is never included (kernel-lens ships a stub of it).
#pragma once

#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#include <cstdint>

#if !defined(NV_TENSORRT_MAJOR)
#error "dcn TensorRT plugins: NvInferVersion.h does not define NV_TENSORRT_MAJOR"
#endif

#if NV_TENSORRT_MAJOR < 10
#error "dcn TensorRT plugins need TensorRT >= 10.0 (IPluginV3 with IPluginV3OneBuild/Runtime)"
#endif

#define DCN_TRT_VERSION (NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH)

#if defined(_WIN32)
#define DCN_TRT_API extern "C" __declspec(dllexport)
#else
#define DCN_TRT_API extern "C" __attribute__((visibility("default")))
#endif

namespace dcn {
namespace trt {

// The build-phase interface we implement. IPluginV3OneBuildV2 (aliasing) is not needed.
using PluginBuildBase = nvinfer1::IPluginV3OneBuild;
using PluginCoreBase = nvinfer1::IPluginV3OneCore;
using PluginRuntimeBase = nvinfer1::IPluginV3OneRuntime;

inline constexpr int32_t kCompiledTrtMajor = NV_TENSORRT_MAJOR;
inline constexpr int32_t kCompiledTrtMinor = NV_TENSORRT_MINOR;

} // namespace trt
} // namespace dcn
