// dcnv4_kernels.h: the CUDA launcher of dcn::DCNv4. Launches on `stream` and returns the launch's
// status (dcn_launch.cuh launch_kernel); an empty output launches nothing. T is float or __half:
// coordinates, sampling and sums in float (plugins/common/dcn_aggregate.h), 8 channels per thread
// where group_channels and the pointers allow (plugins/cuda/dcn_aggregate_launch.h).
#pragma once

#include "dcnv4_math.h"

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace dcn {
namespace cuda {

// Y [N, Ho, Wo, C]; X [N, H, W, C], offset_mask [N, Ho, Wo, K] (d: validate_dcnv4).
template <class T>
cudaError_t dcnv4(const T* X, const T* offset_mask, const AggregateDims& d, T* Y, cudaStream_t stream);

extern template cudaError_t dcnv4<float>(const float*, const float*, const AggregateDims&, float*, cudaStream_t);
extern template cudaError_t dcnv4<__half>(const __half*, const __half*, const AggregateDims&, __half*, cudaStream_t);

}  // namespace cuda
}  // namespace dcn
