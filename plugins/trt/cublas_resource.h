// One cuBLAS handle per execution context, shared by every dcn plugin attached to it.
//
// attachToContext() acquires the handle of its IPluginResourceContext (one per execution
// context) and the current device under the key "dcn.cublas.<context>.<device>":
// through TensorRT's plugin resource registry (IPluginRegistry::acquirePluginResource /
// releasePluginResource, reference counted; the registry clones the resource once, and
// the clone creates the handle), or, in a library built without libnvinfer
// (DCN_TRT_NO_NVINFER) or when there is no registry, through a process-local registry
// with the same semantics. So the handle is created outside enqueue (enqueue allocates
// nothing and creates nothing: safe under CUDA graph capture), once per context rather
// than once per layer, and two contexts never share one (each enqueue sets stream and
// workspace on it). TensorRT's own DCN plugin shares its handle per context the same way,
// keyed by the resource context pointer, through a process-wide map rather than the
// registry (NVIDIA/TensorRT plugin/common/plugin.cpp, createPluginCublasWrapper, and
// plugin/modulatedDeformConvPlugin/modulatedDeformConvPlugin.cpp attachToContext, at
// a892d22267d9cd2dedc1a0893e6892ac901f6d3d).
#pragma once

#include "trt_compat.h"

#include <cublas_v2.h>

#include <cstdint>
#include <string>

namespace dcn {
namespace trt {

class CublasResource;

class SharedCublas
{
public:
    SharedCublas() = default;
    ~SharedCublas();
    SharedCublas(SharedCublas const&) = delete;
    SharedCublas& operator=(SharedCublas const&) = delete;

    // Acquires the context's handle (created on first use). Never throws; on failure
    // handle() is null and status() says why.
    void acquire(nvinfer1::IPluginResourceContext const* context) noexcept;
    // Acquires the handle `other` holds (a clone of an attached plugin), if any.
    void share(SharedCublas const& other) noexcept;
    // Gives the handle back (the last user of a context destroys it).
    void reset() noexcept;

    bool acquired() const noexcept
    {
        return mResource != nullptr;
    }
    cublasHandle_t handle() const noexcept;
    // cublasCreate's status (CUBLAS_STATUS_NOT_INITIALIZED before acquire()).
    cublasStatus_t status() const noexcept;
    std::string const& key() const noexcept
    {
        return mKey;
    }

private:
    void acquireKey() noexcept; // mKey from mRegistry (or the process-local registry)

    std::string mKey;
    CublasResource* mResource{nullptr};
    nvinfer1::IPluginRegistry* mRegistry{nullptr}; // where it was acquired; null: the process-local registry
};

// Number of cuBLAS resources alive in this process (registered clones; tests).
int64_t liveCublasResources() noexcept;

} // namespace trt
} // namespace dcn
