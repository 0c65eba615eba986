// dcnv3_kernels.h: the CUDA launcher of dcn::DCNv3 and dcn::DCNv4 (one kernel: DcnDims' strides say where
// the offsets and masks are; DCNv4 passes offset_mask as both). Launches on `stream` and returns
// cudaGetLastError() after the launch; an empty output launches nothing. T is float or __half: coordinates,
// sampling and sums in float (plugins/ops/dcnv3/dcnv3_math.h), 8 channels per thread where group_channels
// and the pointers allow (dcnv3_launch.h).
#pragma once

#include "dcnv3_math.h"

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace dcn {
namespace cuda {

// Y [N, Ho, Wo, C]; X [N, H, W, C]; DCNv3: offset, mask; DCNv4: offset = mask = offset_mask.
template <class T>
cudaError_t dcn_sample(const T* X, const T* offset, const T* mask, const DcnDims& d, T* Y, cudaStream_t stream);

extern template cudaError_t dcn_sample<float>(const float*, const float*, const float*, const DcnDims&, float*,
                                              cudaStream_t);
extern template cudaError_t dcn_sample<__half>(const __half*, const __half*, const __half*, const DcnDims&, __half*,
                                               cudaStream_t);

}  // namespace cuda
}  // namespace dcn
