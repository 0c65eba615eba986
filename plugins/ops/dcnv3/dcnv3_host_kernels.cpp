// dcnv3_host_kernels.cpp: dcn::DCNv3 / dcn::DCNv4 on the host, with C linkage for tests/test_dcnv3_host.py (ctypes;
// part of libdcn_host_tests). What runs is the plugins' own code: the header's validation and element
// function (dcnv3_math.h) and the CUDA kernel's per-thread body (dcnv3_launch.h: dcn_thread) called for
// every (block, thread) of the grid the launcher would start, in int32 or int64 indexing, with the
// launcher's channels per thread or a forced one. Test code: loops, nothing else.
//
// dtype: 0 = float64, 1 = float32, 2 = float16 (dcn::Half bits); inputs and output in that storage type.
// op: 3 = DCNv3 (offset, mask), 4 = DCNv4 (offset_mask in `offset`, mask unused).
// mode: 0 = the element function per output value; 1 = the kernel's thread bodies (vec: 0 = the
// launcher's choice for these pointers, else 1, 2, 4 or 8; index_mode 0 = the launcher's, 1 = int32,
// 2 = int64; max_blocks > 0 caps the grid, exercising the grid-stride loop).
// stats (mode 1): [blocks, channels per thread, int32 indexing, outputs left unwritten].
// Returns 0, or 1 with the header's message in msg.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "dcnv3_launch.h"
#include "dcnv3_math.h"

#define DCN_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

namespace launch = dcn::launch;

int report(const std::string& e, char* msg, size_t msg_size) {
    if (msg && msg_size) {
        const size_t n = e.size() < msg_size - 1 ? e.size() : msg_size - 1;
        std::memcpy(msg, e.data(), n);
        msg[n] = '\0';
    }
    return e.empty() ? 0 : 1;
}

template <class T> T sentinel() { return dcn::store<T>(std::numeric_limits<float>::quiet_NaN()); }
template <> dcn::Half sentinel<dcn::Half>() { return dcn::Half::from_bits(0x7e01u); }
template <class T> bool is_sentinel(const T& v) {
    T s = sentinel<T>();
    return std::memcmp(&s, &v, sizeof(T)) == 0;
}

template <class T, int V, class I>
void emulate(const T* X, const T* off, const T* mask, const dcn::DcnDims& d, T* Y, int64_t max_blocks,
             int64_t* stats) {
    const int64_t total = launch::dcn_total(d, V);
    int64_t blocks = launch::blocks_for(total);
    if (max_blocks > 0 && blocks > max_blocks) blocks = max_blocks;
    const I nthreads = static_cast<I>(blocks * launch::kThreads);
    for (int64_t b = 0; b < blocks; ++b)
        for (int t = 0; t < launch::kThreads; ++t)
            launch::dcn_thread<T, V, I>(static_cast<I>(b * launch::kThreads + t), nthreads, X, off, mask, d, Y);
    stats[0] = blocks;
}

template <class T, int V>
void emulate_v(const T* X, const T* off, const T* mask, const dcn::DcnDims& d, T* Y, int index_mode,
               int64_t max_blocks, int64_t* stats) {
    const int64_t total = launch::dcn_total(d, V);
    int64_t blocks = launch::blocks_for(total);
    if (max_blocks > 0 && blocks > max_blocks) blocks = max_blocks;
    const bool i32 = index_mode == 1 || (index_mode == 0 && launch::fits_int32(total, blocks));
    stats[1] = V;
    stats[2] = i32;
    if (i32)
        emulate<T, V, int32_t>(X, off, mask, d, Y, max_blocks, stats);
    else
        emulate<T, V, int64_t>(X, off, mask, d, Y, max_blocks, stats);
}

template <class T>
void run(int mode, int vec, int index_mode, int64_t max_blocks, const T* X, const T* off, const T* mask,
         const dcn::DcnDims& d, T* Y, int64_t* stats) {
    using Acc = typename dcn::AccOf<T>::type;
    const int64_t n_out = d.N * d.outH * d.outW * d.C;
    if (mode == 0) {
        for (int64_t pos = 0; pos < d.N * d.outH * d.outW; ++pos)
            for (int64_t c = 0; c < d.C; ++c)
                Y[pos * d.C + c] = dcn::store<T>(dcn::dcn_element<Acc>(X, off, mask, d, pos, c));
        return;
    }
    for (int64_t i = 0; i < n_out; ++i) Y[i] = sentinel<T>();
    const int V = vec > 0 ? vec : launch::dcn_vector_width(d.groupChannels, X, Y, static_cast<int64_t>(sizeof(T)));
    switch (V) {
    case 8: emulate_v<T, 8>(X, off, mask, d, Y, index_mode, max_blocks, stats); break;
    case 4: emulate_v<T, 4>(X, off, mask, d, Y, index_mode, max_blocks, stats); break;
    case 2: emulate_v<T, 2>(X, off, mask, d, Y, index_mode, max_blocks, stats); break;
    default: emulate_v<T, 1>(X, off, mask, d, Y, index_mode, max_blocks, stats); break;
    }
    int64_t unwritten = 0;
    for (int64_t i = 0; i < n_out; ++i) unwritten += is_sentinel(Y[i]);
    stats[3] = unwritten;
}

}  // namespace

DCN_EXPORT int dcn_host_dcn(int op, int dtype, int mode, int vec, int index_mode, int64_t max_blocks, const void* X,
                            const int64_t* xs, int64_t x_rank, const void* off, const int64_t* os, int64_t o_rank,
                            const void* mask, const int64_t* ms, int64_t m_rank, const int64_t* kernel_shape,
                            const int64_t* strides, const int64_t* pads, const int64_t* dilations, int64_t group,
                            int64_t group_channels, double offset_scale, int64_t remove_center, const char* node,
                            void* out, int64_t* stats, char* msg, size_t msg_size) {
    dcn::DcnAttrs a;
    a.kernel_shape.assign(kernel_shape, kernel_shape + 2);
    a.strides.assign(strides, strides + 2);
    a.pads.assign(pads, pads + 4);
    a.dilations.assign(dilations, dilations + 2);
    a.group = group;
    a.group_channels = group_channels;
    a.offset_scale = offset_scale;
    a.remove_center = remove_center;
    dcn::DcnDims d{};
    const std::string name = node ? node : "";
    const std::string e = op == 4 ? dcn::validate_dcnv4(name, a, {xs, x_rank}, {os, o_rank}, &d)
                                  : dcn::validate_dcnv3(name, a, {xs, x_rank}, {os, o_rank}, {ms, m_rank}, &d);
    if (!e.empty() || out == nullptr) return report(e, msg, msg_size);
    if (op == 4) mask = off;
    int64_t local[4] = {0, 0, 0, 0};
    int64_t* st = stats ? stats : local;
    if (dtype == 0)
        run<double>(mode, vec, index_mode, max_blocks, static_cast<const double*>(X), static_cast<const double*>(off),
                    static_cast<const double*>(mask), d, static_cast<double*>(out), st);
    else if (dtype == 1)
        run<float>(mode, vec, index_mode, max_blocks, static_cast<const float*>(X), static_cast<const float*>(off),
                   static_cast<const float*>(mask), d, static_cast<float*>(out), st);
    else
        run<dcn::Half>(mode, vec, index_mode, max_blocks, static_cast<const dcn::Half*>(X),
                       static_cast<const dcn::Half*>(off), static_cast<const dcn::Half*>(mask), d,
                       static_cast<dcn::Half*>(out), st);
    return report("", msg, msg_size);
}

// The header's limits, for tests/test_dcnv3_fuzz.py (== exporter/ops/dcnv3/spec.py LIMITS).
DCN_EXPORT void dcn_host_dcn_limits(int64_t* out) {
    out[0] = dcn::kMaxDcnKernel;
    out[1] = dcn::kMaxConvStride;
    out[2] = dcn::kMaxConvPad;
    out[3] = dcn::kMaxConvDilation;
}
