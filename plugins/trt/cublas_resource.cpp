#include "cublas_resource.h"

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <utility>

namespace dcn {
namespace trt {

namespace {
std::atomic<int64_t> gLive{0};
} // namespace

// The shared object. The prototype handed to acquire is never initialised; the registry's
// clone() creates the handle on the calling thread's current device.
class CublasResource final : public nvinfer1::IPluginResource
{
public:
    ~CublasResource() noexcept override
    {
        (void) release();
    }

    int32_t release() noexcept override
    {
        if (mHandle != nullptr)
        {
            cublasDestroy(mHandle); // status ignored: the CUDA context may already be gone at exit
            mHandle = nullptr;
        }
        if (mCounted)
        {
            --gLive;
            mCounted = false;
        }
        return 0;
    }

    nvinfer1::IPluginResource* clone() noexcept override
    {
        try
        {
            auto* r = new CublasResource;
            r->create();
            return r;
        }
        catch (...)
        {
            return nullptr;
        }
    }

    cublasHandle_t handle() const noexcept
    {
        return mHandle;
    }
    cublasStatus_t status() const noexcept
    {
        return mStatus;
    }

private:
    void create() noexcept
    {
        mCounted = true;
        ++gLive;
        mStatus = cublasCreate(&mHandle);
        if (mStatus == CUBLAS_STATUS_SUCCESS)
        {
            // FP32: no TF32; FP16: tensor cores with FP32 accumulation (CUBLAS_COMPUTE_32F at the call),
            // and no reduction in the output type: without the flag a split-K FP16 GEMM may add its
            // partial sums in half (cublas_api.h, CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)
            mStatus = cublasSetMathMode(mHandle, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                                                           CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
        }
        if (mStatus != CUBLAS_STATUS_SUCCESS && mHandle != nullptr)
        {
            cublasDestroy(mHandle);
        }
        if (mStatus != CUBLAS_STATUS_SUCCESS)
        {
            mHandle = nullptr;
        }
    }

    cublasHandle_t mHandle{nullptr};
    cublasStatus_t mStatus{CUBLAS_STATUS_NOT_INITIALIZED};
    bool mCounted{false};
};

namespace {

// IPluginRegistry::acquirePluginResource / releasePluginResource semantics, in-process:
// the first acquire of a key registers resource->clone(), later ones count; the last
// release calls release() and deletes it.
class LocalRegistry
{
public:
    nvinfer1::IPluginResource* acquire(std::string const& key, nvinfer1::IPluginResource* proto)
    {
        std::lock_guard<std::mutex> lock(mMutex);
        auto it = mEntries.find(key);
        if (it != mEntries.end())
        {
            ++it->second.second;
            return it->second.first;
        }
        nvinfer1::IPluginResource* r = proto->clone();
        if (r != nullptr)
        {
            mEntries.emplace(key, std::make_pair(r, int64_t{1}));
        }
        return r;
    }
    void release(std::string const& key)
    {
        nvinfer1::IPluginResource* dead = nullptr;
        {
            std::lock_guard<std::mutex> lock(mMutex);
            auto it = mEntries.find(key);
            if (it == mEntries.end() || --it->second.second > 0)
            {
                return;
            }
            dead = it->second.first;
            mEntries.erase(it);
        }
        dead->release();
        delete dead;
    }

private:
    std::mutex mMutex;
    std::map<std::string, std::pair<nvinfer1::IPluginResource*, int64_t>> mEntries;
};

LocalRegistry& localRegistry()
{
    static LocalRegistry* r = new LocalRegistry; // never destroyed: plugins may outlive static destructors
    return *r;
}

nvinfer1::IPluginRegistry* trtRegistry() noexcept
{
#if defined(DCN_TRT_NO_NVINFER) && DCN_TRT_NO_NVINFER
    return nullptr; // no libnvinfer to ask (version-compatible / lean runtime build)
#else
    return getPluginRegistry();
#endif
}

} // namespace

SharedCublas::~SharedCublas()
{
    reset();
}

void SharedCublas::acquire(nvinfer1::IPluginResourceContext const* context) noexcept
{
    reset();
    try
    {
        int device = -1;
        if (cudaGetDevice(&device) != cudaSuccess)
        {
            (void) cudaGetLastError(); // no device: clone() reports it through cublasCreate's status
            device = -1;
        }
        char buf[64];
        std::snprintf(buf, sizeof buf, "dcn.cublas.%p.%d", static_cast<void const*>(context), device);
        mKey = buf;
        mRegistry = trtRegistry();
        acquireKey();
    }
    catch (...)
    {
        mResource = nullptr;
    }
}

void SharedCublas::share(SharedCublas const& other) noexcept
{
    reset();
    if (other.mResource == nullptr)
    {
        return;
    }
    try
    {
        mKey = other.mKey;
        mRegistry = other.mRegistry;
        acquireKey();
    }
    catch (...)
    {
        mResource = nullptr;
    }
}

void SharedCublas::acquireKey() noexcept
{
    try
    {
        CublasResource proto;
        nvinfer1::IPluginResource* r = mRegistry != nullptr ? mRegistry->acquirePluginResource(mKey.c_str(), &proto)
                                                            : localRegistry().acquire(mKey, &proto);
        // The key names our library's resource type only, so the registered object is ours.
        mResource = static_cast<CublasResource*>(r);
    }
    catch (...)
    {
        mResource = nullptr;
    }
}

void SharedCublas::reset() noexcept
{
    if (mResource == nullptr)
    {
        return;
    }
    mResource = nullptr;
    try
    {
        if (mRegistry != nullptr)
        {
            (void) mRegistry->releasePluginResource(mKey.c_str());
        }
        else
        {
            localRegistry().release(mKey);
        }
    }
    catch (...)
    {
    }
}

cublasHandle_t SharedCublas::handle() const noexcept
{
    return mResource != nullptr ? mResource->handle() : nullptr;
}

cublasStatus_t SharedCublas::status() const noexcept
{
    return mResource != nullptr ? mResource->status() : CUBLAS_STATUS_NOT_INITIALIZED;
}

int64_t liveCublasResources() noexcept
{
    return gLive.load();
}

} // namespace trt
} // namespace dcn
