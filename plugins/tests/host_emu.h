// host_emu.h: what the host emulations of the CUDA launches share (plugins/tests/host_*.cpp):
// the C export macro, one-line error reporting, NaN sentinels for "never written", the
// launcher's grid run thread by thread, and its int32 / int64 choice.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "dcn_launch.h"
#include "dcn_math.h"

#define DCN_EMU_EXPORT extern "C" __attribute__((visibility("default")))

namespace dcn_emu {

namespace launch = dcn::launch;

inline int emu_report(const std::string& e, char* msg, size_t msg_size) {
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

}  // namespace dcn_emu
