// deform_roi_pool_host_kernels.cpp: dcn::DeformRoIPool's CUDA launch in the TensorRT plugin,
// emulated on the host, with C linkage for tests/test_host_kernels.py (ctypes; part of
// libdcn_host_tests): the launcher's plan and index choice and the kernel's item mapping and
// per-thread body (deform_roi_pool_launch.h) for every (block, thread) of the launcher's grid
// (plugins/tests/host_tests.h), and the math (deform_roi_pool_math.h); nothing copied.
//
// dtype codes: 0 = float64, 1 = float32, 2 = float16 storage (dcn::Half bits). Outputs are in
// the storage type, as on the GPU. index_mode: 0 = as the launcher (int32 when it fits, else
// int64 with K = 1), 1 = int32 (the plan's K), 2 = int64 (K = 1, the launcher's wide kernel).
// max_blocks > 0 caps the grid (exercises the grid-stride loop); target > 0 replaces
// launch::kRoIPoolTargetItems (the plan's K: 8, 4, 2 or 1). Entry points return 0 when fine, 1
// with a message in msg otherwise (contract validation message from the header).
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "deform_roi_pool_launch.h"
#include "host_tests.h"  // plugins/tests

namespace {

using dcn::DeformRoIPoolDims;
using namespace dcn_host;

constexpr int64_t kGuard = 64;  // sentinel values each side of the output: writes out of place show

template <class T> bool same_value(const T& a, const T& b) {
    using Acc = typename dcn::AccOf<T>::type;
    const Acc x = dcn::load<Acc>(a), y = dcn::load<Acc>(b);
    return std::memcmp(&a, &b, sizeof(T)) == 0 || (x != x && y != y);  // the same bits, or both NaN
}

template <class T, class I, class TR>
int64_t run_grid(int K, int64_t total, int64_t max_blocks, const T* data, const TR* rois, const T* offset,
                 const DeformRoIPoolDims& d, const launch::RoIPoolPlan& pl, T* Y) {
    return emulate_grid<I>(total, max_blocks, [&](I tid, I nt) {
        switch (K) {
            case 8: launch::deform_roi_pool_thread<T, I, 8>(tid, nt, data, rois, offset, d, pl, Y); break;
            case 4: launch::deform_roi_pool_thread<T, I, 4>(tid, nt, data, rois, offset, d, pl, Y); break;
            case 2: launch::deform_roi_pool_thread<T, I, 2>(tid, nt, data, rois, offset, d, pl, Y); break;
            default: launch::deform_roi_pool_thread<T, I, 1>(tid, nt, data, rois, offset, d, pl, Y); break;
        }
    });
}

// stats: blocks, index bits, outputs unwritten, writes outside Y, K, items, outputs whose bits
// differ from deform_roi_pool_element's (NaN = NaN).
template <class T>
void roi_pool(const DeformRoIPoolDims& d, int index_mode, int64_t max_blocks, int64_t target, const void* datav,
              const void* roisv, const void* offsetv, void* Yv, int64_t* stats) {
    using Acc = typename dcn::AccOf<T>::type;
    using TR = typename std::conditional<std::is_same<T, double>::value, double, float>::type;  // rois: float32
    const T* data = static_cast<const T*>(datav);
    const TR* rois = static_cast<const TR*>(roisv);
    const T* offset = d.has_offset ? static_cast<const T*>(offsetv) : nullptr;
    const int64_t n = d.R * d.C * d.pooled_height * d.pooled_width;
    std::vector<T> buf(static_cast<size_t>(n + 2 * kGuard), sentinel<T>());
    T* Y = buf.data() + kGuard;
    bool narrow = false;
    launch::RoIPoolPlan pl = launch::roi_pool_launch_plan(d, &narrow, target > 0 ? target : launch::kRoIPoolTargetItems,
                                                          max_blocks);
    if (index_mode == 1) {
        narrow = true;
        pl = launch::roi_pool_plan(d, target > 0 ? target : launch::kRoIPoolTargetItems);
    } else if (index_mode == 2) {
        narrow = false;
        pl = launch::roi_pool_plan(d, 0, 1);
    }
    int64_t blocks = 0;
    if (pl.total > 0)
        blocks = narrow ? run_grid<T, int32_t>(pl.K, pl.total, max_blocks, data, rois, offset, d, pl, Y)
                        : run_grid<T, int64_t>(pl.K, pl.total, max_blocks, data, rois, offset, d, pl, Y);
    int64_t unwritten = 0, outside = 0, differ = 0;
    for (int64_t g = 0; g < kGuard; ++g) outside += (is_sentinel(buf[g]) ? 0 : 1) + (is_sentinel(Y[n + g]) ? 0 : 1);
    const int64_t PH = d.pooled_height, PW = d.pooled_width;
    for (int64_t q = 0; q < n; ++q) {
        unwritten += is_sentinel(Y[q]) ? 1 : 0;
        const int64_t pw = q % PW, ph = (q / PW) % PH, c = (q / (PW * PH)) % d.C, r = q / (PW * PH * d.C);
        const T want = dcn::store<T>(dcn::deform_roi_pool_element<Acc>(data, rois, offset, d, r, c, ph, pw));
        differ += same_value(Y[q], want) ? 0 : 1;
    }
    std::memcpy(Yv, Y, static_cast<size_t>(n) * sizeof(T));
    if (stats) {
        const int64_t s[7] = {blocks, narrow ? 32 : 64, unwritten, outside, pl.K, pl.total, differ};
        std::memcpy(stats, s, sizeof s);
    }
}

}  // namespace

// Y [R, C, pooled_height, pooled_width] in the storage type; offset NULL = absent. Batch indices
// are not validated (the kernel writes 0 for a RoI whose rois[r, 0] is not one).
DCN_EXPORT int dcn_emu_deform_roi_pool(int dtype, int index_mode, int64_t max_blocks, int64_t target,
                                       const void* data, const int64_t* data_shape, const void* rois,
                                       const int64_t* rois_shape, const void* offset, const int64_t* offset_shape,
                                       int64_t pooled_height, int64_t pooled_width, double spatial_scale,
                                       int64_t sampling_ratio, double gamma, void* Y, int64_t* stats, char* msg,
                                       size_t msg_size) {
    dcn::DeformRoIPoolAttrs a;
    a.pooled_height = pooled_height;
    a.pooled_width = pooled_width;
    a.spatial_scale = spatial_scale;
    a.sampling_ratio = sampling_ratio;
    a.gamma = gamma;
    DeformRoIPoolDims d{};
    const std::string e = dcn::validate_deform_roi_pool("emu", a, dcn::ShapeRef(data_shape, 4),
                                                        dcn::ShapeRef(rois_shape, 2), opt_shape(offset, offset_shape, 4),
                                                        &d);
    if (!e.empty()) return report(e, msg, msg_size);
    switch (dtype) {
        case 0: roi_pool<double>(d, index_mode, max_blocks, target, data, rois, offset, Y, stats); break;
        case 1: roi_pool<float>(d, index_mode, max_blocks, target, data, rois, offset, Y, stats); break;
        case 2: roi_pool<dcn::Half>(d, index_mode, max_blocks, target, data, rois, offset, Y, stats); break;
        default: return report("dtype code " + std::to_string(dtype) + ", expected 0, 1 or 2", msg, msg_size);
    }
    return 0;
}

// out[5*item ...] = r, cb, bin, ph, pw (launch::roi_pool_item, int64).
DCN_EXPORT void dcn_emu_roi_pool_items(int64_t bins, int64_t nCb, int64_t pooled_width, int64_t total, int64_t* out) {
    for (int64_t item = 0; item < total; ++item) {
        const launch::RoIPoolItem q = launch::roi_pool_item<int64_t>(item, bins, nCb, pooled_width);
        const int64_t v[5] = {q.r, q.cb, q.bin, q.ph, q.pw};
        std::memcpy(out + 5 * item, v, sizeof v);
    }
}

namespace {
template <class Acc> void inside_run(Acc start, Acc size, int64_t count, int64_t extent, int64_t* out) {
    const dcn::SampleRun run = dcn::roi_pool_inside_run<Acc>(start, size, count, extent);
    int64_t extra = 0, missed = 0;  // samples the run holds that count zero / leaves out that count
    for (int64_t g = 0; g < count; ++g) {
        const bool inside =
            dcn::roi_align_taps<Acc>(extent, int64_t(1), dcn::roi_pool_sample<Acc>(start, size, g, count), Acc(0)).inside;
        const bool held = g >= run.lo && g < run.hi;
        extra += held && !inside;
        missed += !held && inside;
    }
    const int64_t v[4] = {run.lo, run.hi, extra, missed};
    std::memcpy(out, v, sizeof v);
}
}  // namespace

// roi_pool_inside_run(start, size, count, extent) in float (dtype 1) or double (0), checked against every
// sample's own inside test (roi_align_taps on the axis): out[0..3] = lo, hi, samples held that count zero,
// samples left out that count (both 0 when the run is right).
DCN_EXPORT void dcn_emu_roi_pool_inside_run(int dtype, double start, double size, int64_t count, int64_t extent,
                                            int64_t* out) {
    if (dtype == 1)
        inside_run<float>(static_cast<float>(start), static_cast<float>(size), count, extent, out);
    else
        inside_run<double>(start, size, count, extent, out);
}

// out[0..3] = the plan for (R, C, pooled_height, pooled_width) and target (0: the default):
// K, nCb, bins, total.
DCN_EXPORT void dcn_emu_roi_pool_plan(int64_t R, int64_t C, int64_t PH, int64_t PW, int64_t target, int64_t* out) {
    DeformRoIPoolDims d{};
    d.R = R;
    d.C = C;
    d.pooled_height = PH;
    d.pooled_width = PW;
    const launch::RoIPoolPlan pl = launch::roi_pool_plan(d, target > 0 ? target : launch::kRoIPoolTargetItems);
    const int64_t v[4] = {pl.K, pl.nCb, pl.bins, pl.total};
    std::memcpy(out, v, sizeof v);
}

// launch::roi_pool_launch_plan for these sizes: out[0..1] = K, index bits.
DCN_EXPORT void dcn_emu_roi_pool_launch_choice(int64_t N, int64_t C, int64_t H, int64_t W, int64_t R, int64_t PH,
                                               int64_t PW, int64_t* out) {
    DeformRoIPoolDims d{};
    d.N = N;
    d.C = C;
    d.H = H;
    d.W = W;
    d.R = R;
    d.pooled_height = PH;
    d.pooled_width = PW;
    bool narrow = false;
    const launch::RoIPoolPlan pl = launch::roi_pool_launch_plan(d, &narrow);
    out[0] = pl.K;
    out[1] = narrow ? 32 : 64;
}
