// deform_conv2d_plan.h: how the DeformConv2d plugin splits its work (host code, no CUDA or
// cuBLAS includes), shared by the TensorRT plugin and the host emulation test
// (deform_conv2d_host_kernels.cpp), so the GEMM group structure, batch chunking and
// workspace arithmetic that the plugin runs are the ones tested on the host.
//
//   workspace = [ padding to 256 B | columns of a chunk of images | cuBLAS workspace ]
//   (TensorRT documents no alignment of the workspace base; cublasSetWorkspace wants
//   256-byte alignment: getWorkspaceSize asks kAlignBytes more and enqueue starts at the
//   first aligned byte, base_padding())
//   for each chunk of images [n0, n0 + nb):
//       deformable im2col -> columns col[nl][C*kH*kW][outH*outW]   (deform_conv2d_launch.h)
//       for each GEMM of for_each_gemm():  Y (+)= W x columns, per convolution group
//
// GEMMs are column-major (cuBLAS): a row-major [R, L] matrix is a column-major L x R one.
// Per image and group g, with Kg = C/group*kH*kW, Mg = M/group, L = outH*outW:
//   row-major  Y_g[Mg, L] = W_g[Mg, Kg] x col_g[Kg, L]
//   col-major  Y_g^T (L x Mg) = col_g^T (L x Kg) x W_g^T (Kg x Mg)
//   => gemm(m = L, n = Mg, k = Kg, A = col_g, lda = L, B = W_g, ldb = Kg, C = Y_g, ldc = L)
// batched over images (strideB = 0, the weights are shared) or over groups.
#pragma once

#include "deform_conv2d_fused.h"
#include "deform_conv2d_math.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace dcn {
namespace plan {

// Column buffer cap: a chunk holds as many images as fit (at least one).
// DCN_DEFORM_CONV_COLUMNS_MB overrides it for measurements (benchmarks/bench_plugins_cuda.py);
// it must not change between building an engine and running it (the workspace size follows it).
constexpr int64_t kColumnsCapBytes = int64_t(256) << 20;
inline int64_t columns_cap() {
    const char* e = std::getenv("DCN_DEFORM_CONV_COLUMNS_MB");
    const long long mb = e != nullptr ? std::atoll(e) : 0;
    return mb > 0 && mb <= (int64_t(1) << 20) ? static_cast<int64_t>(mb) << 20 : kColumnsCapBytes;
}
// cuBLAS workspace handed to cublasSetWorkspace (32 MiB: NVIDIA's recommendation for
// Hopper and newer, more than enough before), so cuBLAS never allocates in enqueue
// (safe under CUDA graph capture).
constexpr int64_t kCublasWorkspaceBytes = int64_t(32) << 20;
constexpr int64_t kAlignBytes = 256;

inline int64_t align_up(int64_t v, int64_t a = kAlignBytes) { return (v + a - 1) / a * a; }

// Elements of one image's column matrix: C*kH*kW x outH*outW.
inline int64_t columns_per_image(const DeformConvDims& d) { return d.C * d.kH * d.kW * d.outH * d.outW; }

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

// The whole workspace: slack for aligning its base + aligned column part + cuBLAS workspace.
inline int64_t workspace_bytes(int64_t perImageBytes, int64_t maxN, int64_t cap = kColumnsCapBytes) {
    return kAlignBytes + align_up(columns_bytes(perImageBytes, maxN, cap)) + kCublasWorkspaceBytes;
}

// Bytes from a workspace base address to the first kAlignBytes-aligned byte (< kAlignBytes).
inline int64_t base_padding(uintptr_t address) {
    const uintptr_t a = static_cast<uintptr_t>(kAlignBytes);
    return static_cast<int64_t>((a - address % a) % a);
}

// Offset of the cuBLAS workspace from the aligned base (base + base_padding()) inside a
// workspace sized for (perImageBytes, N) or more.
inline int64_t cublas_workspace_offset(int64_t perImageBytes, int64_t N, int64_t cap = kColumnsCapBytes) {
    return align_up(columns_bytes(perImageBytes, N, cap));
}

// Images per chunk for N images of perImageBytes: as many as fit in the cap, >= 1, <= N.
inline int64_t chunk_images(int64_t perImageBytes, int64_t N, int64_t cap = kColumnsCapBytes) {
    if (N <= 0) return 0;
    const int64_t fit = perImageBytes > 0 ? cap / perImageBytes : N;
    return fit < 1 ? 1 : (fit > N ? N : fit);
}

// ---- which path: im2col + GEMM, or the fused FP16 kernel (deform_conv2d_fused.h) -------------
// The fused kernel runs only where it applies (half, group 1, C / offset_group a multiple of
// fused::kBK), gives at least one block per SM (smallest maps go to im2col) and is switched
// on. DCN_DEFORM_CONV_FUSED: "0" off, "1" on, "force" on without the SM-count rule (tests and
// measurements); unset: kFusedDefault. It stays off by default until it has run right on a GPU
// (the GPU kit's device tests cover both paths).
constexpr bool kFusedDefault = false;
enum class FusedMode { kOff, kOn, kForce };
inline FusedMode fused_mode() {
    const char* e = std::getenv("DCN_DEFORM_CONV_FUSED");
    if (e == nullptr || *e == '\0') return kFusedDefault ? FusedMode::kOn : FusedMode::kOff;
    if (std::strcmp(e, "force") == 0) return FusedMode::kForce;
    return e[0] == '1' ? FusedMode::kOn : FusedMode::kOff;
}

enum class Path { kIm2col, kFused };
inline Path choose_path(const DeformConvDims& d, bool half, int64_t smCount) {
    const FusedMode mode = fused_mode();
    if (mode == FusedMode::kOff || !fused::applicable(d, half)) return Path::kIm2col;
    const fused::Grid g = fused::grid(d);
    return mode == FusedMode::kForce || g.tilesN * g.tilesM >= smCount ? Path::kFused : Path::kIm2col;
}

// The workspace of a problem with dims d (max shapes) and elements of elemBytes: enough for
// either path at any smaller shapes (the path is chosen at enqueue).
inline int64_t conv_workspace_bytes(const DeformConvDims& d, int64_t elemBytes, int64_t cap = columns_cap()) {
    const int64_t im2col = workspace_bytes(columns_per_image(d) * elemBytes, d.N, cap);
    const int64_t f = fused::applicable(d, elemBytes == 2) ? kAlignBytes + fused::layout(d, elemBytes).bytes : 0;
    return im2col > f ? im2col : f;
}

// One (strided-batched) column-major GEMM: C[b] = alpha * A[b] x B[b] + beta * C[b] for
// b < count, A[b] = A + a + b*strideA etc.; offsets in elements from the chunk's columns,
// the weights and the chunk's first output image.
struct Gemm {
    int64_t m, n, k, lda, ldb, ldc;
    int64_t a, b, c;
    int64_t strideA, strideB, strideC;
    int64_t count;
};

// Calls f(Gemm) for every GEMM of a chunk of nb images: one call per group batched over
// the chunk's images when group <= nb (group == 1: a single call), else one call per
// image batched over the groups.
template <class F>
void for_each_gemm(const DeformConvDims& d, int64_t nb, F&& f) {
    const int64_t L = d.outH * d.outW;
    const int64_t Kg = d.C / d.group * d.kH * d.kW;
    const int64_t Mg = d.M / d.group;
    const int64_t colImage = d.C * d.kH * d.kW * L;  // column elements per image
    const int64_t outImage = d.M * L;                // output elements per image
    Gemm g{};
    g.m = L;
    g.n = Mg;
    g.k = Kg;
    g.lda = L;
    g.ldb = Kg;
    g.ldc = L;
    if (d.group <= nb) {
        for (int64_t grp = 0; grp < d.group; ++grp) {
            g.a = grp * Kg * L;
            g.b = grp * Mg * Kg;
            g.c = grp * Mg * L;
            g.strideA = colImage;
            g.strideB = 0;
            g.strideC = outImage;
            g.count = nb;
            f(g);
        }
    } else {
        for (int64_t nl = 0; nl < nb; ++nl) {
            g.a = nl * colImage;
            g.b = 0;
            g.c = nl * outImage;
            g.strideA = Kg * L;
            g.strideB = Mg * Kg;
            g.strideC = Mg * L;
            g.count = d.group;
            f(g);
        }
    }
}

}  // namespace plan
}  // namespace dcn
