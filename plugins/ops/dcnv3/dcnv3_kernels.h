// dcnv3_kernels.h: the CUDA launcher of dcn::DCNv3. Launches on `stream` and returns the launch's
// status (dcn_launch.cuh launch_kernel); an empty output launches nothing. T is float or __half:
// coordinates, sampling and sums in float (plugins/common/dcn_aggregate.h), 8 channels per thread
// where group_channels and the pointers allow (plugins/cuda/dcn_aggregate_launch.h).
#pragma once

#include "dcnv3_math.h"

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace dcn {
namespace cuda {

// Y [N, Ho, Wo, C]; X [N, H, W, C], offset [N, Ho, Wo, G*P*2], mask [N, Ho, Wo, G*P] (d: validate_dcnv3).
template <class T>
cudaError_t dcnv3(const T* X, const T* offset, const T* mask, const AggregateDims& d, T* Y, cudaStream_t stream);

extern template cudaError_t dcnv3<float>(const float*, const float*, const float*, const AggregateDims&, float*,
                                         cudaStream_t);
extern template cudaError_t dcnv3<__half>(const __half*, const __half*, const __half*, const AggregateDims&, __half*,
                                          cudaStream_t);

}  // namespace cuda
}  // namespace dcn
