// deform_conv2d_host_fused.cpp: the fused DeformConv2d path (deform_conv2d_fused.cu) emulated
// on the host, for tests/test_host_kernels.py (ctypes; part of libdcn_host_tests).
//
// What runs is the kernel's own code from deform_conv2d_fused.h: the preparation
// kernels' thread bodies (channels-last X, tap-major W) over the launcher's grid, and for every
// block of the launch grid the taps, the A and B tile loaders (every thread of the block) and
// the epilogue, in the one-stage kernel's order or the two-stage kernel's (its Schedule, with
// double-buffered tiles and taps, every taps-buffer use checked against the pair it must hold).
// The only stand-ins: the WMMA products (a plain loop accumulating in CT, float for half data as
// the tensor cores do, double for double) and shared memory (vectors poisoned with NaN before each
// step, so a tile entry nobody wrote shows up). Also: the plan's path
// choice and workspace size (deform_conv2d_plan.h).
#include <cstdint>
#include <string>
#include <vector>

#include "deform_conv2d_fused.h"
#include "deform_conv2d_plan.h"
#include "deform_conv2d_host_args.h"
#include "host_tests.h"  // plugins/tests

namespace {

using namespace dcn_host;
using dcn::DeformConvDims;
namespace fused = dcn::fused;
namespace plan = dcn::plan;

template <class T> void poison(std::vector<T>& v) {
    for (T& x : v) x = sentinel<T>();
}

// stats: 0 blocks, 1 unwritten outputs, 2 unwritten tile entries, 3 workspace bytes (the plan), 4 fused bytes,
// 5 taps-buffer hazards of the two-stage schedule (misaligned 16-byte copies: counted by
// dcn_vector_check.h, read with dcn_host_misaligned_vector_accesses)
template <class T>
std::string conv2d_fused(const DeformConvDims& d, bool pipelined, const void* Xv, const void* Wv, const void* offv,
                         const void* Bv, const void* maskv, void* Yv, int64_t* stats) {
    using Acc = typename dcn::AccOf<T>::type;
    using CT = Acc;
    const T* X = static_cast<const T*>(Xv);
    const T* W = static_cast<const T*>(Wv);
    const T* off = static_cast<const T*>(offv);
    const T* B = static_cast<const T*>(Bv);
    const T* mask = d.hasMask ? static_cast<const T*>(maskv) : nullptr;
    T* Y = static_cast<T*>(Yv);
    if (!fused::applicable(d, true))
        return "fused path not applicable: group " + std::to_string(d.group) + ", C / offset_group " +
               std::to_string(d.offsetGroup ? d.C / d.offsetGroup : 0) + " (needs group 1, a positive multiple of " +
               std::to_string(fused::kBK) + ")";
    const int64_t L = d.outH * d.outW, yTotal = d.N * d.M * L;
    for (int64_t q = 0; q < yTotal; ++q) Y[q] = sentinel<T>();

    std::vector<T> Xt(static_cast<size_t>(d.N * d.H * d.W * d.C)), Wt(static_cast<size_t>(d.M * d.kH * d.kW * d.C));
    poison(Xt);
    poison(Wt);
    auto grid = [](int64_t total, auto body) {
        if (use_int32(0, total, 0))
            emulate_grid<int32_t>(total, 0, [&](int32_t t, int32_t n) { body(t, n); });
        else
            emulate_grid<int64_t>(total, 0, [&](int64_t t, int64_t n) { body(t, n); });
    };
    grid(fused::nhwc_items(d), [&](auto t, auto n) { fused::nhwc_thread<T>(t, n, X, d, Xt.data()); });
    grid(fused::weight_items(d), [&](auto t, auto n) { fused::weight_thread<T>(t, n, W, d, Wt.data()); });
    int64_t untiled = 0, hazards = 0;
    for (const T& v : Xt) untiled += is_sentinel(v) ? 1 : 0;
    for (const T& v : Wt) untiled += is_sentinel(v) ? 1 : 0;

    const fused::Grid g = fused::grid(d);
    const int64_t kk = d.kH * d.kW, Cg = d.C / d.offsetGroup;
    std::vector<T> As(fused::kBM * fused::kLdA), Bs(fused::kBN * fused::kLdB);
    std::vector<fused::Tap<Acc>> taps(fused::kBN);
    std::vector<fused::Pixel> pixels(fused::kBN);
    std::vector<CT> acc(fused::kBM * fused::kBN), Cs(fused::kBM / 2 * fused::kLdC);
    // the tensor cores' acc += A x B (B column-major) on tiles every entry of which was written
    auto product = [&](const std::vector<T>& At, const std::vector<T>& Bt) {
        for (int r = 0; r < fused::kBM; ++r)
            for (int c = 0; c < fused::kBK; ++c) untiled += is_sentinel(At[r * fused::kLdA + c]) ? 1 : 0;
        for (int p = 0; p < fused::kBN; ++p)
            for (int c = 0; c < fused::kBK; ++c) untiled += is_sentinel(Bt[p * fused::kLdB + c]) ? 1 : 0;
        for (int r = 0; r < fused::kBM; ++r)
            for (int p = 0; p < fused::kBN; ++p) {
                CT s = CT(0);
                for (int c = 0; c < fused::kBK; ++c)
                    s += dcn::load<CT>(At[r * fused::kLdA + c]) * dcn::load<CT>(Bt[p * fused::kLdB + c]);
                acc[r * fused::kBN + p] += s;
            }
    };
    // the one-stage kernel's block: per pair the taps, per step loads, tiles, products
    auto one_stage = [&](int64_t tn, int64_t m0) {
        for (int pix = 0; pix < fused::kBN; ++pix) pixels[pix] = fused::fused_pixel(d, tn, pix);
        for (int64_t k = 0; k < kk; ++k) {
            for (int64_t og = 0; og < d.offsetGroup; ++og) {
                for (int pix = 0; pix < fused::kBN; ++pix)
                    taps[pix] = fused::fused_tap<Acc>(off, mask, d, pixels[pix], k / d.kW, k % d.kW, og);
                for (int64_t c0 = og * Cg; c0 < (og + 1) * Cg; c0 += fused::kBK) {
                    poison(As);
                    poison(Bs);
                    for (int tid = 0; tid < fused::kThreads; ++tid) {  // loads, then tiles, as each thread does
                        const fused::RawA<T> ra = fused::fused_fetch_a(tid, Wt.data(), d, m0, k * d.C + c0);
                        const fused::RawB<T> rb = fused::fused_gather<Acc>(tid, Xt.data(), d, taps.data(), c0);
                        fused::fused_put_a(tid, ra, As.data());
                        fused::fused_combine<Acc>(tid, taps.data(), rb, Bs.data());
                    }
                    product(As, Bs);
                }
            }
        }
    };
    // the two-stage kernel's block (fused::Schedule): double-buffered tiles and taps; each
    // iteration's phases run for every thread in the kernel's order (loads of step s + 1, taps
    // ahead, products of step s, tiles of step s + 1); a tiles buffer is poisoned once multiplied,
    // and every read or write of a taps buffer is checked against the pair it must hold (hazards)
    std::vector<T> As2[2] = {As, As}, Bs2[2] = {Bs, Bs};
    std::vector<fused::Tap<Acc>> taps2[2] = {taps, taps};
    std::vector<fused::RawA<T>> ras(fused::kThreads);
    std::vector<fused::RawB<T>> rbs(fused::kThreads);
    const fused::Schedule sc = fused::schedule(d);
    auto pipelined_block = [&](int64_t tn, int64_t m0) {
        int32_t holds[2] = {-1, -1};  // the pair each taps buffer holds
        for (int pix = 0; pix < fused::kBN; ++pix) pixels[pix] = fused::fused_pixel(d, tn, pix);
        auto taps_of = [&](int32_t kg, int32_t reading) {  // reading: the pair this iteration reads (-1 none)
            if (reading >= 0 && (kg & 1) == (reading & 1)) ++hazards;  // no barrier between: a race
            const fused::Step p = fused::step_at(sc, kg * sc.perKg);  // the pair's first step: its k and g
            for (int pix = 0; pix < fused::kBN; ++pix)
                taps2[kg & 1][pix] = fused::fused_tap<Acc>(off, mask, d, pixels[pix], p.k / d.kW, p.k % d.kW, p.g);
            holds[kg & 1] = kg;
        };
        auto fetch = [&](const fused::Step& st) {
            if (holds[st.kg & 1] != st.kg) ++hazards;
            for (int tid = 0; tid < fused::kThreads; ++tid) {
                ras[tid] = fused::fused_fetch_a(tid, Wt.data(), d, m0, static_cast<int64_t>(st.k) * d.C + st.c0);
                rbs[tid] = fused::fused_gather<Acc>(tid, Xt.data(), d, taps2[st.kg & 1].data(), st.c0);
            }
        };
        auto put = [&](const fused::Step& st, int buf) {
            if (holds[st.kg & 1] != st.kg) ++hazards;
            for (int tid = 0; tid < fused::kThreads; ++tid) {
                fused::fused_put_a(tid, ras[tid], As2[buf].data());
                fused::fused_combine<Acc>(tid, taps2[st.kg & 1].data(), rbs[tid], Bs2[buf].data());
            }
        };
        for (int b = 0; b < 2; ++b) {
            poison(As2[b]);
            poison(Bs2[b]);
        }
        taps_of(0, -1);
        if (sc.pairs > 1) taps_of(1, -1);
        const fused::Step first = fused::step_at(sc, 0);
        fetch(first);
        put(first, 0);
        for (int32_t st = 0; st < sc.steps; ++st) {
            const bool more = st + 1 < sc.steps;
            const fused::Step nx = fused::step_at(sc, more ? st + 1 : st);
            if (more) fetch(nx);
            const int32_t ahead = fused::taps_ahead(sc, st);
            if (ahead >= 0) taps_of(ahead, more ? nx.kg : -1);
            product(As2[st & 1], Bs2[st & 1]);
            poison(As2[st & 1]);
            poison(Bs2[st & 1]);
            if (more) put(nx, (st + 1) & 1);
        }
    };
    for (int64_t tm = 0; tm < g.tilesM; ++tm) {
        for (int64_t tn = 0; tn < g.tilesN; ++tn) {
            const int64_t m0 = tm * fused::kBM;
            for (CT& a : acc) a = CT(0);
            if (pipelined)
                pipelined_block(tn, m0);
            else
                one_stage(tn, m0);
            for (int h = 0; h < 2; ++h) {  // the epilogue, half of the M tile at a time
                for (int r = 0; r < fused::kBM / 2; ++r)
                    for (int p = 0; p < fused::kBN; ++p)
                        Cs[r * fused::kLdC + p] = acc[(h * fused::kBM / 2 + r) * fused::kBN + p];
                for (int tid = 0; tid < fused::kThreads; ++tid) fused::fused_store<T, CT>(tid, Cs.data(), B, d, tn, m0, h, Y);
            }
        }
    }
    int64_t unwritten = 0;
    for (int64_t q = 0; q < yTotal; ++q) unwritten += is_sentinel(Y[q]) ? 1 : 0;
    if (stats) {
        stats[0] = g.tilesN * g.tilesM;
        stats[1] = unwritten;
        stats[2] = untiled;
        stats[3] = plan::conv_workspace_bytes(d, sizeof(T));
        stats[4] = plan::fused_workspace_bytes(d, sizeof(T));
        stats[5] = hazards;
    }
    return "";
}

DeformConvDims dims_from(const int64_t* v) {
    DeformConvDims d{};
    int64_t* f[] = {&d.N, &d.C, &d.H, &d.W, &d.M, &d.kH, &d.kW, &d.strideH, &d.strideW, &d.padT, &d.padL,
                    &d.padB, &d.padR, &d.dilH, &d.dilW, &d.group, &d.offsetGroup, &d.outH, &d.outW};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; ++i) *f[i] = v[i];
    d.hasMask = v[19] != 0;
    return d;
}

}  // namespace

// The fused path for one DeformConv2d (inputs as dcn_emu_deform_conv2d's; dtype 0 float64,
// 1 float32, 2 float16 storage; kernel 0 the one-stage kernel, 1 the two-stage one; stats: 6
// entries). Returns 1 with the message when the path does not apply.
DCN_EXPORT int dcn_emu_deform_conv2d_fused(int dtype, int kernel, const void* X, const int64_t* x_shape, const void* W,
                                           const int64_t* w_shape, const void* offset, const int64_t* offset_shape,
                                           const void* B, const int64_t* b_shape, const void* mask,
                                           const int64_t* mask_shape, const int64_t* strides, const int64_t* pads,
                                           const int64_t* dilations, int64_t group, int64_t offset_group, void* Y,
                                           int64_t* stats, char* msg, size_t msg_size) {
    DeformConvDims d{};
    std::string e = conv_dims(x_shape, w_shape, offset_shape, B, b_shape, mask, mask_shape, strides, pads, dilations,
                              group, offset_group, &d);
    if (!e.empty()) return report(e, msg, msg_size);
    if (kernel != 0 && kernel != 1)
        return report("kernel code " + std::to_string(kernel) + ", expected 0 or 1", msg, msg_size);
    switch (dtype) {
        case 0: e = conv2d_fused<double>(d, kernel == 1, X, W, offset, B, mask, Y, stats); break;
        case 1: e = conv2d_fused<float>(d, kernel == 1, X, W, offset, B, mask, Y, stats); break;
        case 2: e = conv2d_fused<dcn::Half>(d, kernel == 1, X, W, offset, B, mask, Y, stats); break;
        default: e = "dtype code " + std::to_string(dtype) + ", expected 0, 1 or 2";
    }
    return report(e, msg, msg_size);
}

// The fused kernel the plan runs (DCN_DEFORM_CONV_FUSED_KERNEL as set): 1 two-stage, 0 one-stage.
DCN_EXPORT int dcn_emu_fused_kernel() {
    return dcn::plan::fused_kernel() == dcn::plan::FusedKernel::kPipelined ? 1 : 0;
}

// The plan's choice for dims v[0..19] (N, C, H, W, M, kH, kW, strides, pads t/l/b/r, dilations,
// group, offset_group, outH, outW, hasMask): 0 im2col, 1 fused, 2 channels-last im2col
// (DCN_DEFORM_CONV_FUSED and DCN_DEFORM_CONV_IM2COL as set).
DCN_EXPORT int dcn_emu_conv_path(const int64_t* v, int half, int64_t sm_count) {
    switch (dcn::plan::choose_path(dims_from(v), half != 0, sm_count)) {
        case dcn::plan::Path::kFused: return 1;
        case dcn::plan::Path::kNhwc: return 2;
        default: return 0;
    }
}

// The workspace the plugin asks for at dims v (its largest shapes; layout as dcn_emu_conv_path),
// elements of elem_bytes (2: half, 4: float), runs of output area at least min_out_area (0: any).
DCN_EXPORT int64_t dcn_emu_conv_workspace(const int64_t* v, int elem_bytes, int64_t min_out_area) {
    return dcn::plan::conv_workspace_bytes(dims_from(v), elem_bytes, dcn::plan::kColumnsCapBytes, min_out_area);
}

// What a run at dims v needs of the workspace on the im2col path (split: 3xTF32): the slack for
// aligning the base and every part the enqueue lays out (plan::im2col_parts).
DCN_EXPORT int64_t dcn_emu_conv_im2col_need(const int64_t* v, int elem_bytes, int split) {
    return dcn::plan::kAlignBytes +
           dcn::plan::im2col_parts(dims_from(v), elem_bytes, split != 0, dcn::plan::kColumnsCapBytes).end;
}

// What a run at dims v needs of the workspace on the channels-last im2col path (FP16): the alignment slack
// and every part nhwc_enqueue lays out (plan::nhwc_parts); -1 where the path does not take dims v.
DCN_EXPORT int64_t dcn_emu_conv_nhwc_need(const int64_t* v) {
    const dcn::DeformConvDims d = dims_from(v);
    if (!dcn::nhwc::applicable(d, true)) return -1;
    return dcn::plan::kAlignBytes + dcn::plan::nhwc_parts(d, 2, dcn::plan::kColumnsCapBytes).end;
}

// plan::min_out_area of dims v's attributes at input maps of min_h x min_w.
DCN_EXPORT int64_t dcn_emu_conv_min_out_area(const int64_t* v, int64_t min_h, int64_t min_w) {
    return dcn::plan::min_out_area(dims_from(v), min_h, min_w);
}

// What the fused path at dims v uses of the workspace (its copies from the aligned base, with the
// alignment slack), or -1 where it does not take dims v.
DCN_EXPORT int64_t dcn_emu_fused_workspace(const int64_t* v) {
    const dcn::DeformConvDims d = dims_from(v);
    return dcn::fused::applicable(d, true) ? dcn::plan::fused_workspace_bytes(d, 2) : -1;
}

// Where each thread's 16-byte shared stores land in a tile, found by running the kernel's own
// stores (which 0: fused_put_a into the A tile, 1: fused_combine into the B tile) with every
// thread's vector holding its id: out[tid + i * kThreads] = the element offset of thread tid's i-th
// vector (A: kARegs a thread, B: one), -1 where none landed. Returns the vectors a thread stores.
DCN_EXPORT int dcn_emu_fused_store_offsets(int which, int64_t* out) {
    const int per = which == 0 ? fused::kARegs : 1;
    const int ld = which == 0 ? fused::kLdA : fused::kLdB;
    const int rows = which == 0 ? fused::kBM : fused::kBN;
    std::vector<float> tile(static_cast<size_t>(rows) * ld, -1.f);
    for (int tid = 0; tid < fused::kThreads; ++tid) {
        if (which == 0) {
            fused::RawA<float> a;
            for (int i = 0; i < per; ++i)
                for (float& v : a.v[i]) v = static_cast<float>(tid + i * fused::kThreads);
            fused::fused_put_a(tid, a, tile.data());
        } else {
            std::vector<fused::Tap<float>> taps(static_cast<size_t>(fused::kBN));
            for (fused::Tap<float>& t : taps) t = {{0, -1, -1, -1}, {1.f, 0.f, 0.f, 0.f}, 0};
            fused::RawB<float> b{};  // neighbours 1..3 are outside (pix -1): never read
            for (float& v : b.v[0]) v = static_cast<float>(tid);
            fused::fused_combine<float>(tid, taps.data(), b, tile.data());
        }
    }
    for (int i = 0; i < per * fused::kThreads; ++i) out[i] = -1;
    for (int64_t e = 0; e < static_cast<int64_t>(tile.size()); e += fused::kVec)
        if (tile[static_cast<size_t>(e)] >= 0.f) out[static_cast<int64_t>(tile[static_cast<size_t>(e)])] = e;
    return per;
}
