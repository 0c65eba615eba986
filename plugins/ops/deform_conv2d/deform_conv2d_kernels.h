// deform_conv2d_kernels.h: the CUDA launchers of dcn::DeformConv2d (no TensorRT here). Each launches
// on `stream` and returns its launch's status (dcn_launch.cuh launch_kernel); an empty problem
// launches nothing and returns cudaSuccess. T is float or __half (math in float through
// deform_conv2d_math.h, results stored as T). Layouts: deform_conv2d_launch.h.
#pragma once

#include "deform_conv2d_math.h"

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dcn {
namespace cuda {

// Deformable im2col of images [n0, n0 + nb) into col ([nb][C*kH*kW][ld], ld >= outH*outW).
// mask: nullptr for DCNv1. colLo: nullptr, or (float, 3xTF32) the entries' lo halves in col's
// layout, col then holding the hi halves (split_tf32).
template <class T>
cudaError_t deform_im2col(const T* X, const T* offset, const T* mask, const DeformConvDims& d, int64_t n0,
                          int64_t nb, int64_t ld, T* col, T* colLo, cudaStream_t stream);

// 3xTF32: n floats of src into their hi and lo halves (split_tf32; the weights).
cudaError_t split_tf32(const float* src, int64_t n, float* hi, float* lo, cudaStream_t stream);

// The fused FP16 path (deform_conv2d_fused.h): Y = conv(X) + B (B nullable), the whole batch;
// workspace: 256-byte aligned, fused::layout(d, 2).bytes long. Applicable shapes only
// (fused::applicable). pipelined: the two-stage kernel instead of the one-stage one.
cudaError_t deform_conv_fused(const __half* X, const __half* W, const __half* offset, const __half* mask,
                              const __half* B, const DeformConvDims& d, void* workspace, __half* Y,
                              bool pipelined, cudaStream_t stream);

// The channels-last im2col path (deform_conv2d_nhwc.h; FP16, nhwc::applicable shapes): Wt[m][k][c] =
// W[m][c][k] (group 1); Xt = images [n0, n0 + nb) of X as [nb][H][W][C]; the chunk's columns
// col[nb][outH*outW][kH*kW*C] from Xt. Buffers 16-byte aligned.
cudaError_t tap_major_weights(const __half* W, const DeformConvDims& d, __half* Wt, cudaStream_t stream);
cudaError_t channels_last(const __half* X, const DeformConvDims& d, int64_t n0, int64_t nb, __half* Xt,
                          cudaStream_t stream);
cudaError_t nhwc_im2col(const __half* Xt, const __half* offset, const __half* mask, const DeformConvDims& d,
                        int64_t n0, int64_t nb, __half* col, cudaStream_t stream);

// Y[r*ld + p] = B[r % M] for rows r < rows, p < ld (Y, or the GEMM's staging buffer).
template <class T>
cudaError_t fill_bias(const T* B, int64_t M, int64_t rows, int64_t ld, T* Y, cudaStream_t stream);

#define DCN_DECLARE_LAUNCHERS(T)                                                                                    \
    extern template cudaError_t deform_im2col<T>(const T*, const T*, const T*, const DeformConvDims&, int64_t,     \
                                                 int64_t, int64_t, T*, T*, cudaStream_t);                           \
    extern template cudaError_t fill_bias<T>(const T*, int64_t, int64_t, int64_t, T*, cudaStream_t);
DCN_DECLARE_LAUNCHERS(float)
DCN_DECLARE_LAUNCHERS(__half)
#undef DCN_DECLARE_LAUNCHERS

}  // namespace cuda
}  // namespace dcn
