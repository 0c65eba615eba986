// deform_conv2d_plan.h: how the DeformConv2d plugin splits its work (host code, no CUDA or
// cuBLAS includes), shared by the TensorRT plugin and the host emulation test
// (deform_conv2d_host_kernels.cpp), so the GEMM group structure, batch chunking and
// workspace arithmetic that the plugin runs are the ones tested on the host.
//
//   workspace = [ padding to 256 B | columns (+ staged output) of a chunk of images
//                 | 3xTF32 only: the weights' hi and lo halves | cuBLAS workspace ]
//   (TensorRT documents no alignment of the workspace base; cublasSetWorkspace wants
//   256-byte alignment: getWorkspaceSize asks kAlignBytes more and enqueue starts at the
//   first aligned byte, base_padding())
//   for each chunk of images [n0, n0 + nb):
//       deformable im2col -> columns col[nl][C*kH*kW][ld]   (deform_conv2d_launch.h)
//       for each GEMM of for_each_gemm():  Y (+)= W x columns, per convolution group
//       (FP32 in 3xTF32 mode: the im2col also writes the columns' lo halves; three TF32 GEMMs
//       per GEMM, kSplitTerms)
//   (the FP16 channels-last variant, deform_conv2d_nhwc.h, off by default: per chunk a channels-last copy of
//   the images, columns col[nl][L][kH*kW*C] and one transposed GEMM a chunk; NhwcParts, nhwc_gemm)
//   ld = outH*outW rounded up to 16 bytes (Im2colLayout): cuBLAS's fast tensor-core kernels want
//   16-byte aligned leading dimensions (measured on an H200, FP16 c5 (L = 1050): 147 TFLOP/s
//   unaligned, c4 (L = 4200): 671). Where ld != L the GEMM writes a staged output [nb][M][ld]
//   that one 2-D copy moves into Y's rows of L (bias, if any, pre-filled in the staging).
//
// GEMMs are column-major (cuBLAS): a row-major [R, L] matrix is a column-major L x R one.
// Per image and group g, with Kg = C/group*kH*kW, Mg = M/group, L = outH*outW:
//   row-major  Y_g[Mg, L] = W_g[Mg, Kg] x col_g[Kg, L]
//   col-major  Y_g^T (L x Mg) = col_g^T (L x Kg) x W_g^T (Kg x Mg)
//   => gemm(m = L, n = Mg, k = Kg, A = col_g, lda = ld, B = W_g, ldb = Kg, C = Y_g, ldc = ld)
// batched over images (strideB = 0, the weights are shared) or over groups.
#pragma once

#include "deform_conv2d_fused.h"
#include "deform_conv2d_math.h"
#include "deform_conv2d_nhwc.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace dcn {
namespace plan {

// Column buffer cap: a chunk holds as many images as fit (at least one). 256 MiB until measured:
// benchmarks/bench_plugins_cuda.py times 16-256 MiB on c3 batch 8 and says whether a smaller cap (one
// whose chunk stays in L2) is faster (cap_verdict).
// DCN_DEFORM_CONV_COLUMNS_MB lowers it for measurements (benchmarks/bench_plugins_cuda.py): the
// chunks a run takes, never the workspace, which is sized for kColumnsCapBytes
// (conv_workspace_bytes), so that the variable may differ between building an engine and running
// it (a larger cap at run time than at build time had overrun the workspace).
constexpr int64_t kColumnsCapBytes = int64_t(256) << 20;
inline int64_t columns_cap() {
    const char* e = std::getenv("DCN_DEFORM_CONV_COLUMNS_MB");
    const long long mb = e != nullptr ? std::atoll(e) : 0;
    return mb > 0 && (static_cast<int64_t>(mb) << 20) < kColumnsCapBytes ? static_cast<int64_t>(mb) << 20 : kColumnsCapBytes;
}
// cuBLAS workspace handed to cublasSetWorkspace (32 MiB: NVIDIA's recommendation for
// Hopper and newer, more than enough before), so cuBLAS never allocates in enqueue
// (safe under CUDA graph capture).
constexpr int64_t kCublasWorkspaceBytes = int64_t(32) << 20;
constexpr int64_t kAlignBytes = 256;

inline int64_t align_up(int64_t v, int64_t a = kAlignBytes) { return (v + a - 1) / a * a; }

// The im2col path's per-image buffers for elements of elemBytes (<= 16). A chunk of c images
// holds, from the aligned base: columns [c][colImage], staging [c][stageImage], and in 3xTF32
// mode (split) the columns' lo halves [c][colImage] (the columns themselves hold the hi halves).
struct Im2colLayout {
    int64_t L, ld;        // outH*outW and the leading dimension of columns / GEMM output
    bool staged;          // ld != L: the GEMM writes a staging buffer copied into Y
    int64_t colImage;     // column elements per image: C*kH*kW*ld
    int64_t stageImage;   // staged output elements per image: M*ld (0 unless staged)
    int64_t perImageBytes;
};
inline Im2colLayout im2col_layout(const DeformConvDims& d, int64_t elemBytes, bool split = false) {
    Im2colLayout l{};
    const int64_t a = elemBytes > 0 && elemBytes < 16 ? 16 / elemBytes : 1;
    l.L = d.outH * d.outW;
    l.ld = (l.L + a - 1) / a * a;
    l.staged = l.ld != l.L;
    l.colImage = d.C * d.kH * d.kW * l.ld;
    l.stageImage = l.staged ? d.M * l.ld : 0;
    l.perImageBytes = (l.colImage * (split ? 2 : 1) + l.stageImage) * elemBytes;
    return l;
}

// Bytes of the column part of the workspace for up to maxN images of at most
// perImageBytes each: max(one image, min(all images, cap)). Any smaller problem's chunk
// (chunk_images below) fits: a chunk of 1 needs one image <= this, a chunk of c > 1 needs
// c*perImage <= min(N*perImage, cap).
// (cap: kColumnsCapBytes; other values only in tests.)
inline int64_t columns_bytes(int64_t perImageBytes, int64_t maxN, int64_t cap = kColumnsCapBytes) {
    if (maxN <= 0 || perImageBytes <= 0) return 0;
    const int64_t all = maxN * perImageBytes;
    const int64_t capped = all < cap ? all : cap;
    return perImageBytes > capped ? perImageBytes : capped;
}

// Where the column part ends (from the aligned base), aligned: the 3xTF32 weights start there.
inline int64_t columns_end(int64_t perImageBytes, int64_t N, int64_t cap = kColumnsCapBytes) {
    return align_up(columns_bytes(perImageBytes, N, cap));
}

// The whole workspace: slack for aligning its base + aligned column part + extraBytes (aligned:
// the 3xTF32 weights) + cuBLAS workspace.
inline int64_t workspace_bytes(int64_t perImageBytes, int64_t maxN, int64_t cap = kColumnsCapBytes,
                               int64_t extraBytes = 0) {
    return kAlignBytes + columns_end(perImageBytes, maxN, cap) + align_up(extraBytes) + kCublasWorkspaceBytes;
}

// Bytes from a workspace base address to the first kAlignBytes-aligned byte (< kAlignBytes).
inline int64_t base_padding(uintptr_t address) {
    const uintptr_t a = static_cast<uintptr_t>(kAlignBytes);
    return static_cast<int64_t>((a - address % a) % a);
}

// Offset of the cuBLAS workspace from the aligned base (base + base_padding()) inside a
// workspace sized for (perImageBytes, N) or more.
inline int64_t cublas_workspace_offset(int64_t perImageBytes, int64_t N, int64_t cap = kColumnsCapBytes,
                                       int64_t extraBytes = 0) {
    return columns_end(perImageBytes, N, cap) + align_up(extraBytes);
}

// Images per chunk for N images of perImageBytes: as many as fit in the cap, >= 1, <= N.
inline int64_t chunk_images(int64_t perImageBytes, int64_t N, int64_t cap = kColumnsCapBytes) {
    if (N <= 0) return 0;
    const int64_t fit = perImageBytes > 0 ? cap / perImageBytes : N;
    return fit < 1 ? 1 : (fit > N ? N : fit);
}

// Per-image bytes that hold the im2col path of every run at dims up to d (the profile's largest)
// whose output area oH*oW is at least minOutArea (0: any). A smaller area has a leading
// dimension no larger than d's, but may be staged where d's is not (d's area a multiple of the
// 16-byte row, a smaller one not: an FP16 output of 68x80 is unstaged, 67x79 staged at ld 5296), so the
// staging rows are reserved unless every run has d's area (a profile fixed in H and W). Sizing
// for d's own layout alone handed cuBLAS a workspace up to 38 MB past TensorRT's allocation.
inline int64_t im2col_bound_per_image_bytes(const DeformConvDims& d, int64_t elemBytes, bool split = false,
                                            int64_t minOutArea = 0) {
    const Im2colLayout l = im2col_layout(d, elemBytes, split);
    return l.staged || minOutArea >= l.L ? l.perImageBytes : l.perImageBytes + d.M * l.ld * elemBytes;
}

// No input channels (C = 0, W [M, 0, kH, kW]): Y is B broadcast, or zeros; no columns and no GEMM
// (cuBLAS refuses k = 0 with ldb = 0).
inline bool bias_only(const DeformConvDims& d) { return d.C == 0; }

// ---- which path: im2col + GEMM, or the fused FP16 kernel (deform_conv2d_fused.h) -------------
// The fused kernel applies to half data, group 1, C / offset_group a multiple of fused::kBK. It
// samples each (pixel, K) once per block of kBM output channels, so it is taken where one block
// holds every output channel (M <= kBM: no sample computed twice) and the grid fills at least
// half the GPU (one 16-warp block per SM); elsewhere im2col + cuBLAS, which samples once and
// multiplies at cuBLAS's speed, is faster. Measured on an H200 (benchmarks/bench_plugins_cuda.py,
// ResNet-50-DCN at 1333x800, FP16): c3 (M 128) batch 1 0.139 ms fused vs 0.177 im2col, batch 8
// 0.706 vs 0.885; c4 (M 256) batch 8 0.591 vs 0.388; c5 (M 512) batch 8 0.546 vs 0.418.
// DCN_DEFORM_CONV_FUSED: "0" off, "1" on (the rule above; the default, kFusedDefault), "force"
// wherever it applies (tests and measurements).
constexpr bool kFusedDefault = true;
enum class FusedMode { kOff, kOn, kForce };

// An on/off switch: variable var unset or empty -> dflt, else whether it equals value.
inline bool env_selects(const char* var, const char* value, bool dflt) {
    const char* e = std::getenv(var);
    return e == nullptr || *e == '\0' ? dflt : std::strcmp(e, value) == 0;
}
inline FusedMode fused_mode() {
    const char* e = std::getenv("DCN_DEFORM_CONV_FUSED");
    if (e == nullptr || *e == '\0') return kFusedDefault ? FusedMode::kOn : FusedMode::kOff;
    if (std::strcmp(e, "force") == 0) return FusedMode::kForce;
    return e[0] == '1' ? FusedMode::kOn : FusedMode::kOff;
}

// The channels-last im2col (deform_conv2d_nhwc.h: the fused kernel's sampling into a column buffer
// in its K order, then one cuBLAS GEMM) where the fused kernel is not taken: written without a GPU,
// not yet run on one, so off by default. DCN_DEFORM_CONV_IM2COL: "nhwc" this path where it applies
// (FP16, group 1, offset groups of whole 8-channel vectors), anything else the NCHW im2col. The
// workspace holds either (conv_workspace_bytes), so the switch may differ between building and running.
constexpr bool kNhwcDefault = false;
inline bool nhwc_selected() { return env_selects("DCN_DEFORM_CONV_IM2COL", "nhwc", kNhwcDefault); }

enum class Path { kIm2col, kFused, kNhwc };
inline Path choose_path(const DeformConvDims& d, bool half, int64_t smCount) {
    const FusedMode mode = fused_mode();
    const Path other = nhwc_selected() && nhwc::applicable(d, half) ? Path::kNhwc : Path::kIm2col;
    if (mode == FusedMode::kOff || !fused::applicable(d, half)) return other;
    if (mode == FusedMode::kForce) return Path::kFused;
    const fused::Grid g = fused::grid(d);
    return g.tilesM == 1 && 2 * g.tilesN >= smCount ? Path::kFused : other;
}

// Which fused kernel runs where the fused path is taken: the one-stage kernel (measured on an
// H200, above) or the two-stage one (deform_conv2d_fused.h Schedule: the next step's loads in
// flight while the tensor cores multiply; host-emulated, not yet run on a GPU, so off by default).
// DCN_DEFORM_CONV_FUSED_KERNEL: "pipelined" the two-stage kernel, anything else the one-stage one.
// The workspace is the same for both.
constexpr bool kPipelinedDefault = false;
enum class FusedKernel { kOneStage, kPipelined };
inline FusedKernel fused_kernel() {
    return env_selects("DCN_DEFORM_CONV_FUSED_KERNEL", "pipelined", kPipelinedDefault) ? FusedKernel::kPipelined
                                                                                      : FusedKernel::kOneStage;
}

// ---- the FP32 GEMM: cuBLAS SGEMM, or 3xTF32 on the tensor cores ---------------------------------
// FP32 rows are bound by cuBLAS's SIMT SGEMM (H200: ~38 TFLOP/s on c5 batch 8; 1.3x torchvision
// needs more). TF32 alone (10 mantissa bits) misses float32's tolerance; 3xTF32 keeps float32
// accuracy: columns and weights split into hi + lo (split_tf32, deform_conv2d_math.h) and
// a x b = a_lo x b_hi + a_hi x b_lo + a_hi x b_hi, three cuBLAS GEMMs with
// CUBLAS_COMPUTE_32F_FAST_TF32 accumulating in float, small terms first (kSplitTerms).
// Host-emulated (tests/test_host_conv_3xtf32.py: TF32 operands truncated, the worst reading;
// sums by IEEE adds and by a tensor-core model that truncates in alignment and normalisation:
// within float32's row at K = 4608 for zero-mean weights; weights all of one sign drift to 1.08 of
// it on the model without extra bits, the one case over: shorter GEMMs in K for hi x hi would
// cut the drift); not yet run on a GPU, so off by default.
// DCN_DEFORM_CONV_FP32_GEMM: "3xtf32" the split GEMMs, anything else SGEMM. The workspace holds
// either (conv_workspace_bytes), so the switch may differ between building and running.
constexpr bool k3xTf32Default = false;
enum class Fp32Gemm { kSgemm, k3xTf32 };
inline Fp32Gemm fp32_gemm() {
    return env_selects("DCN_DEFORM_CONV_FP32_GEMM", "3xtf32", k3xTf32Default) ? Fp32Gemm::k3xTf32 : Fp32Gemm::kSgemm;
}

// One GEMM of the three: which halves it multiplies, and whether it adds to the output (beta = 1)
// or starts it (the chunk's beta: bias pre-filled or not).
struct SplitTerm {
    bool colLo, weightLo, accumulate;
};
constexpr SplitTerm kSplitTerms[3] = {{true, false, false}, {false, true, true}, {false, false, true}};

// Term t's operands (the columns' and the weights' halves) and beta (chunkBeta: the chunk's).
template <class T>
struct SplitOperands {
    const T* columns;
    const T* weights;
    float beta;
};
template <class T>
SplitOperands<T> split_operands(const SplitTerm& t, const T* colHi, const T* colLo, const T* wHi, const T* wLo,
                                float chunkBeta) {
    return {t.colLo ? colLo : colHi, t.weightLo ? wLo : wHi, t.accumulate ? 1.f : chunkBeta};
}

// The weights' elements (M x C/group*kH*kW) and the 3xTF32 weight part of the workspace: hi
// halves, then lo halves from split_weight_lo_offset (elements; 256-byte aligned).
inline int64_t weight_elems(const DeformConvDims& d) { return d.M * (d.group > 0 ? d.C / d.group : 0) * d.kH * d.kW; }
inline int64_t split_weight_lo_offset(const DeformConvDims& d) { return align_up(weight_elems(d) * 4) / 4; }
inline int64_t split_weight_bytes(const DeformConvDims& d) { return 2 * align_up(weight_elems(d) * 4); }

// What the fused path at dims d uses of the workspace: its copies from the aligned base, and the
// slack for aligning the base.
inline int64_t fused_workspace_bytes(const DeformConvDims& d, int64_t elemBytes) {
    return kAlignBytes + fused::layout(d, elemBytes).bytes;
}

// The output area oH*oW at input maps of minH x minW with d's kernel and attributes: the smallest
// a run of the profile can have (its minimum shapes); 0 (any area) where unknown (< 0) or where
// the output would be empty or past int64.
inline int64_t min_out_area(const DeformConvDims& d, int64_t minH, int64_t minW) {
    int64_t oH = 0, oW = 0, area = 0;
    if (minH < 0 || minW < 0 || !conv_out_size_ok(minH, d.padT, d.padB, d.dilH, d.kH, d.strideH, &oH) ||
        !conv_out_size_ok(minW, d.padL, d.padR, d.dilW, d.kW, d.strideW, &oW) || oH <= 0 || oW <= 0 ||
        !mul_ok(oH, oW, &area))
        return 0;
    return area;
}

// The channels-last im2col path (deform_conv2d_nhwc.h), per image of a chunk: its columns [L][K]
// (K = kH*kW*C: rows of 16 bytes' multiples, C being a multiple of 8), the staged output [M][ld] (as
// the im2col path's: ld from im2col_layout), its channels-last copy [H][W][C]; and the tap-major
// weights Wt [M][K] once. All multiples of 16 bytes, so every part of a chunk starts 16-byte aligned.
struct NhwcLayout {
    Im2colLayout lay;  // L, ld, staged, stageImage (its columns fields unused)
    int64_t K, colImage, xtImage, perImageBytes;
};
inline NhwcLayout nhwc_layout(const DeformConvDims& d, int64_t elemBytes) {
    NhwcLayout n{};
    n.lay = im2col_layout(d, elemBytes);
    n.K = d.kH * d.kW * d.C;
    n.colImage = n.lay.L * n.K;
    n.xtImage = d.H * d.W * d.C;
    n.perImageBytes = (n.colImage + n.lay.stageImage + n.xtImage) * elemBytes;
    return n;
}
inline int64_t nhwc_weight_bytes(const DeformConvDims& d, int64_t elemBytes) {
    return d.M * d.kH * d.kW * d.C * elemBytes;
}
// As im2col_bound_per_image_bytes: the staging reserved unless every run of the profile has d's area.
inline int64_t nhwc_bound_per_image_bytes(const DeformConvDims& d, int64_t elemBytes, int64_t minOutArea = 0) {
    const NhwcLayout n = nhwc_layout(d, elemBytes);
    return n.lay.staged || minOutArea >= n.lay.L ? n.perImageBytes : n.perImageBytes + d.M * n.lay.ld * elemBytes;
}

// The workspace of a problem with dims d (max shapes) and elements of elemBytes: enough for
// either path at any smaller shapes whose output area is at least minOutArea (0: any;
// im2col_bound_per_image_bytes) (the path is chosen at enqueue, where a smaller problem may take
// the fused path that d's int32 limits refuse: layout_bound_bytes); float: either FP32 GEMM.
inline int64_t conv_workspace_bytes(const DeformConvDims& d, int64_t elemBytes, int64_t cap = kColumnsCapBytes,
                                    int64_t minOutArea = 0) {
    int64_t im2col = workspace_bytes(im2col_bound_per_image_bytes(d, elemBytes, false, minOutArea), d.N, cap);
    if (elemBytes == 4) {
        const int64_t split = workspace_bytes(im2col_bound_per_image_bytes(d, 4, true, minOutArea), d.N, cap,
                                              split_weight_bytes(d));
        im2col = split > im2col ? split : im2col;
    }
    const int64_t f =
        fused::applicable_kind(d, elemBytes == 2) ? kAlignBytes + fused::layout_bound_bytes(d, elemBytes) : 0;
    const int64_t c = nhwc::applicable(d, elemBytes == 2)
                          ? workspace_bytes(nhwc_bound_per_image_bytes(d, elemBytes, minOutArea), d.N, cap,
                                            nhwc_weight_bytes(d, elemBytes))
                          : 0;
    const int64_t most = im2col > f ? im2col : f;
    return most > c ? most : c;
}

// Where a run at dims d puts the im2col path's parts, in bytes from the aligned base: a chunk's
// columns at 0, its staged output at stagingAt, the columns' lo halves (3xTF32) at colLoAt, the
// weights' halves (3xTF32) at weightsAt, the cuBLAS workspace at cublasAt up to end. The plugin's
// enqueue and its host emulation lay the workspace out by this; kAlignBytes + end is what the
// run needs of the workspace.
struct Im2colParts {
    Im2colLayout lay;
    bool split;     // 3xTF32's parts laid out
    int64_t chunk;  // images per chunk
    int64_t stagingAt, colLoAt, weightsAt, cublasAt, end;
};
inline Im2colParts im2col_parts(const DeformConvDims& d, int64_t elemBytes, bool split, int64_t cap) {
    Im2colParts p{};
    p.lay = im2col_layout(d, elemBytes, split);
    p.split = split;
    p.chunk = chunk_images(p.lay.perImageBytes, d.N, cap);
    p.stagingAt = p.chunk * p.lay.colImage * elemBytes;
    p.colLoAt = p.stagingAt + p.chunk * p.lay.stageImage * elemBytes;
    p.weightsAt = columns_end(p.lay.perImageBytes, d.N, cap);
    p.cublasAt = cublas_workspace_offset(p.lay.perImageBytes, d.N, cap, split ? split_weight_bytes(d) : 0);
    p.end = p.cublasAt + kCublasWorkspaceBytes;
    return p;
}

// One (strided-batched) column-major GEMM: C[b] = alpha * op(A[b]) x B[b] + beta * C[b] for
// b < count, A[b] = A + a + b*strideA etc.; offsets in elements from the chunk's columns,
// the weights and the chunk's first output image (in Y, or in the staging buffer). transA: A is
// stored k x m (lda >= k) and read transposed (CUBLAS_OP_T; the channels-last columns).
struct Gemm {
    int64_t m, n, k, lda, ldb, ldc;
    int64_t a, b, c;
    int64_t strideA, strideB, strideC;
    int64_t count;
    bool transA;
};

// The channels-last path's parts, in bytes from the aligned base: a chunk's columns at 0, its staged
// output at stagingAt, its channels-last copy at xtAt, the tap-major weights at weightsAt, the cuBLAS
// workspace at cublasAt up to end.
struct NhwcParts {
    NhwcLayout lay;
    int64_t chunk;
    int64_t stagingAt, xtAt, weightsAt, cublasAt, end;
};
inline NhwcParts nhwc_parts(const DeformConvDims& d, int64_t elemBytes, int64_t cap) {
    NhwcParts p{};
    p.lay = nhwc_layout(d, elemBytes);
    p.chunk = chunk_images(p.lay.perImageBytes, d.N, cap);
    p.stagingAt = p.chunk * p.lay.colImage * elemBytes;
    p.xtAt = p.stagingAt + p.chunk * p.lay.lay.stageImage * elemBytes;
    p.weightsAt = columns_end(p.lay.perImageBytes, d.N, cap);
    p.cublasAt = cublas_workspace_offset(p.lay.perImageBytes, d.N, cap, nhwc_weight_bytes(d, elemBytes));
    p.end = p.cublasAt + kCublasWorkspaceBytes;
    return p;
}
// The chunk's GEMM: Y[n] (L x M column-major, rows of ld) = col[n]^T (OP_T; col[n]: K x L column-major) x Wt
// (OP_N; Wt: K x M column-major), batched over the chunk's nb images.
inline Gemm nhwc_gemm(const DeformConvDims& d, const NhwcLayout& l, int64_t nb) {
    Gemm g{};
    g.m = l.lay.L;
    g.n = d.M;
    g.k = l.K;
    g.lda = l.K;
    g.ldb = l.K;
    g.ldc = l.lay.ld;
    g.strideA = l.colImage;
    g.strideB = 0;
    g.strideC = d.M * l.lay.ld;
    g.count = nb;
    g.transA = true;
    return g;
}

// Calls f(Gemm) for every GEMM of a chunk of nb images: one call per group batched over
// the chunk's images when group <= nb (group == 1: a single call), else one call per
// image batched over the groups. Columns and output rows have the layout's ld.
template <class F>
void for_each_gemm(const DeformConvDims& d, const Im2colLayout& lay, int64_t nb, F&& f) {
    const int64_t ld = lay.ld;
    const int64_t Kg = d.C / d.group * d.kH * d.kW;
    const int64_t Mg = d.M / d.group;
    const int64_t outImage = d.M * ld;  // output elements per image (Y's when not staged: ld == L)
    Gemm g{};
    g.m = lay.L;
    g.n = Mg;
    g.k = Kg;
    g.lda = ld;
    g.ldb = Kg;
    g.ldc = ld;
    if (d.group <= nb) {
        for (int64_t grp = 0; grp < d.group; ++grp) {
            g.a = grp * Kg * ld;
            g.b = grp * Mg * Kg;
            g.c = grp * Mg * ld;
            g.strideA = lay.colImage;
            g.strideB = 0;
            g.strideC = outImage;
            g.count = nb;
            f(g);
        }
    } else {
        for (int64_t nl = 0; nl < nb; ++nl) {
            g.a = nl * lay.colImage;
            g.b = 0;
            g.c = nl * outImage;
            g.strideA = Kg * ld;
            g.strideB = Mg * Kg;
            g.strideC = Mg * ld;
            g.count = d.group;
            f(g);
        }
    }
}

}  // namespace plan
}  // namespace dcn
