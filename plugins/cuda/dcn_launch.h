// dcn_launch.h: the launch geometry every dcn CUDA kernel shares, as __host__ __device__ code:
// threads per block, the grid cap and the int32 / int64 index choice.
//
// Each op's __global__ kernels (plugins/ops/<op>/<op>_kernels.cu) are one-line wrappers that call
// the op's *_thread functions (plugins/ops/<op>/<op>_launch.h) with (blockIdx.x * blockDim.x +
// threadIdx.x, gridDim.x * blockDim.x); the host test library (plugins/ops/<op>/<op>_host_kernels.cpp)
// calls the very same functions for every (block, thread) of the same grid, so the kernels'
// indexing and arithmetic are tested on the host. The math itself is the op's <op>_math.h on
// plugins/common/dcn_math.h (never copied). No TensorRT, no CUDA runtime API: this header
// compiles with g++ and nvcc.
#pragma once

#include "dcn_math.h"          // plugins/common
#include "dcn_vector_check.h"  // plugins/common: note_vector_access (the host branches of vector loads / stores)

#include <cstdint>
#include <cstring>

namespace dcn {
namespace launch {

// Threads per block and the grid cap of every dcn kernel (grid-stride loops beyond it).
// kMinBlocksPerSM goes to __launch_bounds__: it caps registers at 64 per thread (65536 /
// (256 * 4)), which keeps ptxas for sm_120/121 from choosing 40 registers and spilling
// in the PS-RoI kernel (seen with nvcc 13.0 without it).
constexpr int kThreads = 256;
constexpr int kMinBlocksPerSM = 4;
constexpr int64_t kMaxBlocks = int64_t(1) << 20;

DCN_HD int64_t blocks_for(int64_t total) {
    const int64_t b = (total + kThreads - 1) / kThreads;
    return b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b);
}

// True when a grid-stride loop over `total` items with `blocks` blocks never leaves
// int32 (idx + stride <= INT32_MAX), so the kernel may index with int32_t.
DCN_HD bool fits_int32(int64_t total, int64_t blocks) {
    return total + blocks * int64_t(kThreads) <= int64_t(INT32_MAX);
}

// V channels of T, aligned to their size: one vector load / store on the device.
template <class T, int V> struct alignas(sizeof(T) * V) VecOf {
    T v[V];
};

// V values from / to V consecutive elements aligned to V elements: one vector access on the device
// (the compiler's single load / store of VecOf), element by element on the host, which notes the
// access's alignment (dcn_vector_check.h: the host tests count misaligned vectors).
template <int V, class Acc, class T> DCN_HD void load_vec(const T* src, Acc* out) {
    VecOf<T, V> r;
#if defined(__CUDA_ARCH__)
    r = *reinterpret_cast<const VecOf<T, V>*>(src);  // aligned: the caller's vector width
#else
    if (sizeof(T) <= 4) note_vector_access(src, sizeof r);  // (float64: host tests only)
    std::memcpy(&r, src, sizeof r);
#endif
    for (int v = 0; v < V; ++v) out[v] = load<Acc>(r.v[v]);
}

template <int V, class T, class Acc> DCN_HD void store_vec(T* dst, const Acc* in) {
    VecOf<T, V> r;
    for (int v = 0; v < V; ++v) r.v[v] = store<T>(in[v]);
#if defined(__CUDA_ARCH__)
    *reinterpret_cast<VecOf<T, V>*>(dst) = r;
#else
    if (sizeof(T) <= 4) note_vector_access(dst, sizeof r);
    std::memcpy(dst, &r, sizeof r);
#endif
}

}  // namespace launch
}  // namespace dcn
