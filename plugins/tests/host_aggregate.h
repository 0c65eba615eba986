// host_aggregate.h: the host tests the channels-last deformable aggregation ops share (test code; their
// plugins/ops/<op>/<op>_host_kernels.cpp, loaded by the ops' host tests with ctypes): the element
// function per output value (dcn_aggregate.h) or the CUDA kernel's per-thread body
// (dcn_aggregate_launch.h: aggregate_thread) for every (block, thread) of the grid the launcher would
// start (host_tests.h), in int32 or int64 indexing, with the launcher's channels per thread or a forced
// one. Loops only; names no op.
//
// dtype: 0 = float64, 1 = float32, 2 = float16 (dcn::Half bits); inputs and output in that storage type.
// mode: 0 = the element function per output value; 1 = the kernel's thread bodies (vec: 0 = the
// launcher's choice for these pointers, else 1, 2, 4 or 8; index_mode 0 = the launcher's, 1 = int32,
// 2 = int64; max_blocks > 0 caps the grid, exercising the grid-stride loop).
// stats (mode 1): [blocks, channels per thread, int32 indexing, outputs left unwritten].
#pragma once

#include <cstdint>
#include <string>

#include "dcn_aggregate_launch.h"  // plugins/cuda
#include "host_tests.h"

namespace dcn_host {

// The attributes as the entry points get them.
inline dcn::AggregateAttrs aggregate_attrs(const int64_t* kernel_shape, const int64_t* strides, const int64_t* pads,
                                           const int64_t* dilations, int64_t group, int64_t group_channels,
                                           double offset_scale, int64_t remove_center) {
    dcn::AggregateAttrs a;
    a.kernel_shape.assign(kernel_shape, kernel_shape + 2);
    a.strides.assign(strides, strides + 2);
    a.pads.assign(pads, pads + 4);
    a.dilations.assign(dilations, dilations + 2);
    a.group = group;
    a.group_channels = group_channels;
    a.offset_scale = offset_scale;
    a.remove_center = remove_center;
    return a;
}

template <class T>
void aggregate_emulated(int vec, int index_mode, int64_t max_blocks, const T* X, const T* off, const T* mask,
                        const dcn::AggregateDims& d, T* Y, int64_t* stats) {
    const int V = vec > 0 ? vec
                          : launch::aggregate_vector_width(d.groupChannels, X, Y, static_cast<int64_t>(sizeof(T)));
    launch::with_vector_width(V, [&](auto v) {
        constexpr int W = decltype(v)::value;
        const int64_t total = launch::aggregate_total(d, W);
        const bool i32 = use_int32(index_mode, total, max_blocks);
        stats[1] = W;
        stats[2] = i32;
        if (i32)
            stats[0] = emulate_grid<int32_t>(total, max_blocks, [&](int32_t tid, int32_t nt) {
                launch::aggregate_thread<T, W, int32_t>(tid, nt, X, off, mask, d, Y);
            });
        else
            stats[0] = emulate_grid<int64_t>(total, max_blocks, [&](int64_t tid, int64_t nt) {
                launch::aggregate_thread<T, W, int64_t>(tid, nt, X, off, mask, d, Y);
            });
        return 0;
    });
}

template <class T>
void aggregate_run(int mode, int vec, int index_mode, int64_t max_blocks, const void* Xv, const void* offv,
                   const void* maskv, const dcn::AggregateDims& d, void* Yv, int64_t* stats) {
    using Acc = typename dcn::AccOf<T>::type;
    const T *X = static_cast<const T*>(Xv), *off = static_cast<const T*>(offv), *mask = static_cast<const T*>(maskv);
    T* Y = static_cast<T*>(Yv);
    const int64_t n_out = d.N * d.outH * d.outW * d.C;
    if (mode == 0) {
        for (int64_t pos = 0; pos < d.N * d.outH * d.outW; ++pos)
            for (int64_t c = 0; c < d.C; ++c)
                Y[pos * d.C + c] = dcn::store<T>(dcn::aggregate_element<Acc>(X, off, mask, d, pos, c));
        return;
    }
    for (int64_t i = 0; i < n_out; ++i) Y[i] = sentinel<T>();
    aggregate_emulated<T>(vec, index_mode, max_blocks, X, off, mask, d, Y, stats);
    int64_t unwritten = 0;
    for (int64_t i = 0; i < n_out; ++i) unwritten += is_sentinel(Y[i]) ? 1 : 0;
    stats[3] = unwritten;
}

// Runs the validated op (e: validate_<op>'s message) in `dtype`; 0, or 1 with the message in msg.
inline int aggregate_entry(const std::string& e, int dtype, int mode, int vec, int index_mode, int64_t max_blocks,
                           const void* X, const void* off, const void* mask, const dcn::AggregateDims& d, void* out,
                           int64_t* stats, char* msg, size_t msg_size) {
    if (!e.empty() || out == nullptr) return report(e, msg, msg_size);
    int64_t local[4] = {0, 0, 0, 0};
    int64_t* st = stats ? stats : local;
    switch (dtype) {
    case 0: aggregate_run<double>(mode, vec, index_mode, max_blocks, X, off, mask, d, out, st); break;
    case 1: aggregate_run<float>(mode, vec, index_mode, max_blocks, X, off, mask, d, out, st); break;
    case 2: aggregate_run<dcn::Half>(mode, vec, index_mode, max_blocks, X, off, mask, d, out, st); break;
    default: return report("dtype code " + std::to_string(dtype) + ", expected 0, 1 or 2", msg, msg_size);
    }
    return report("", msg, msg_size);
}

// The header's limits: kernel_shape, strides, pads, dilations (== the ops' LIMITS).
inline void aggregate_limits(int64_t* out) {
    out[0] = dcn::kMaxAggregateKernel;
    out[1] = dcn::kMaxAggregateStride;
    out[2] = dcn::kMaxAggregatePad;
    out[3] = dcn::kMaxAggregateDilation;
}

}  // namespace dcn_host
