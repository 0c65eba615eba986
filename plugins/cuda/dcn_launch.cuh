// The one launch rule of every dcn kernel (CUDA sources only): a 1-D grid-stride grid of
// launch::kThreads threads a block (launch::blocks_for), with 32-bit indices when the whole
// loop fits them (launch::fits_int32), else 64-bit. Nothing launched for no items. Every launch,
// grid-stride or not, goes through launch_kernel (its status is the launch's own).
#pragma once

#include <cuda_runtime.h>  // cudaLaunchKernelEx (the C++ template)

#include "dcn_launch.h"

namespace dcn {
namespace cuda {

// This thread's first index and the grid's thread count (the grid-stride step).
template <class I>
__device__ __forceinline__ void thread_range(I& tid, I& nthreads) {
    tid = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x);
    nthreads = static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x);
}

// Every dcn launch: kernel<<<grid, block, shared, stream>>>(args...) through cudaLaunchKernelEx,
// whose return is this launch's own status (or a sticky error of the context). A <<<>>> launch
// followed by cudaGetLastError() would also return, and clear, an older error that other code on
// this thread left unread, and fail a healthy enqueue with it.
template <class... P, class... A>
cudaError_t launch_kernel(void (*kernel)(P...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream,
                          const A&... args) {
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = shared;
    config.stream = stream;
    return cudaLaunchKernelEx(&config, kernel, args...);
}

// k32 (the kernel instantiated with int32_t indices) or k64 over `total` items, on `stream`,
// with `args`; k32 only when the grid-stride loop fits int32 and `narrow_ok` (what else the
// kernel indexes with I fits too). The launch status (launch_kernel), cudaSuccess when
// total <= 0.
template <class... P, class... A>
cudaError_t launch_grid_stride_when(bool narrow_ok, int64_t total, cudaStream_t stream, void (*k32)(P...),
                                    void (*k64)(P...), const A&... args) {
    if (total <= 0) return cudaSuccess;
    const int64_t blocks = launch::blocks_for(total);
    const dim3 grid(static_cast<unsigned>(blocks)), block(launch::kThreads);
    return launch_kernel(narrow_ok && launch::fits_int32(total, blocks) ? k32 : k64, grid, block, 0, stream, args...);
}

template <class... P, class... A>
cudaError_t launch_grid_stride(int64_t total, cudaStream_t stream, void (*k32)(P...), void (*k64)(P...),
                               const A&... args) {
    return launch_grid_stride_when(true, total, stream, k32, k64, args...);
}

}  // namespace cuda
}  // namespace dcn
