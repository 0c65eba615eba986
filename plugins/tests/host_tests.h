// host_tests.h: what the host test sources of libdcn_host_tests share (test code; each op's
// plugins/ops/<op>/<op>_host_*.cpp and plugins/tests/host_math.cpp, loaded by pytest with ctypes):
// the C entry points' message convention and optional shapes; for the emulated CUDA launches
// (<op>_host_kernels.cpp), running a launch's per-thread body for every (block, thread) of the
// grid the launcher would start (launch rule: plugins/cuda/dcn_launch.h), the launcher's
// int32 / int64 choice and NaN sentinels that show unwritten outputs.
//
// index_mode: 0 = as the launcher (int32 when it fits), 1 = int32, 2 = int64. max_blocks > 0
// caps the grid (exercises the grid-stride loop). Entry points return 0 when fine, 1 with a
// message in msg otherwise.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "dcn_launch.h"  // plugins/cuda
#include "dcn_math.h"    // plugins/common

#define DCN_EXPORT extern "C" __attribute__((visibility("default")))

namespace dcn_host {

namespace launch = dcn::launch;

// Copies e into msg (NUL-terminated, truncated to msg_size); 0 when e is empty, else 1.
inline int report(const std::string& e, char* msg, size_t msg_size) {
    if (msg && msg_size) {
        const size_t n = e.size() < msg_size - 1 ? e.size() : msg_size - 1;
        std::memcpy(msg, e.data(), n);
        msg[n] = '\0';
    }
    return e.empty() ? 0 : 1;
}

template <class T> T sentinel() { return dcn::store<T>(std::numeric_limits<double>::quiet_NaN()); }
template <> inline dcn::Half sentinel<dcn::Half>() { return dcn::Half::from_bits(0x7e00u); }

template <class T> bool is_sentinel(const T& v) {
    using Acc = typename dcn::AccOf<T>::type;
    return std::isnan(dcn::load<Acc>(v));
}

// Runs body(tid, nthreads) for every thread of the grid the launcher would start for
// `total` items: blocks_for(total) blocks (capped by max_blocks) of kThreads threads.
// Returns the number of blocks.
template <class I, class Body> int64_t emulate_grid(int64_t total, int64_t max_blocks, Body&& body) {
    int64_t blocks = launch::blocks_for(total);
    if (max_blocks > 0 && blocks > max_blocks) blocks = max_blocks;
    const I nthreads = static_cast<I>(blocks * launch::kThreads);
    for (int64_t b = 0; b < blocks; ++b)
        for (int t = 0; t < launch::kThreads; ++t) body(static_cast<I>(b * launch::kThreads + t), nthreads);
    return blocks;
}

// The launcher's choice: int32 indexing when the grid-stride loop stays in int32.
inline bool use_int32(int index_mode, int64_t total, int64_t max_blocks) {
    if (index_mode == 1) return true;
    if (index_mode == 2) return false;
    int64_t blocks = launch::blocks_for(total);
    if (max_blocks > 0 && blocks > max_blocks) blocks = max_blocks;
    return launch::fits_int32(total, blocks);
}

// The shape of an optional tensor: absent (rank -1) when the tensor pointer is null.
inline dcn::ShapeRef opt_shape(const void* p, const int64_t* dims, int64_t rank) {
    return p ? dcn::ShapeRef(dims, rank) : dcn::ShapeRef();
}

}  // namespace dcn_host
