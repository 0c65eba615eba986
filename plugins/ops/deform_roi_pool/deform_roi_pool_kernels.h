// deform_roi_pool_kernels.h: the CUDA launcher of dcn::DeformRoIPool (mmcv's deformable RoI pooling;
// contract: docs/deform_roi_pool.md). Launches on `stream`, returns the launch's status
// (dcn_launch.cuh launch_kernel); an empty problem launches nothing. T is float or __half (math in float through
// deform_roi_pool_math.h); RoIs are float32 for both.
#pragma once

#include "deform_roi_pool_math.h"

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace dcn {
namespace cuda {

// Y [R, C, pooled_height, pooled_width]; offset: nullptr or [R, 2, pooled_height, pooled_width] (d.has_offset).
template <class T>
cudaError_t deform_roi_pool(const T* data, const float* rois, const T* offset, const DeformRoIPoolDims& d, T* Y,
                            cudaStream_t stream);

extern template cudaError_t deform_roi_pool<float>(const float*, const float*, const float*,
                                                   const DeformRoIPoolDims&, float*, cudaStream_t);
extern template cudaError_t deform_roi_pool<__half>(const __half*, const float*, const __half*,
                                                    const DeformRoIPoolDims&, __half*, cudaStream_t);

}  // namespace cuda
}  // namespace dcn
