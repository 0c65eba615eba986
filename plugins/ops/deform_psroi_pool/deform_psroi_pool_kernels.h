// deform_psroi_pool_kernels.h: the CUDA launcher of dcn::DeformPSROIPool (no TensorRT here). Launches
// on `stream`, returns the launch's status (dcn_launch.cuh launch_kernel); an empty problem launches nothing and
// returns cudaSuccess. T is float or __half (math in float through deform_psroi_pool_math.h,
// results stored as T). Layout: deform_psroi_pool_launch.h.
#pragma once

#include "deform_psroi_pool_math.h"

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace dcn {
namespace cuda {

// Deformable PS-RoI pooling: Y [R, output_dim, P, P]. trans: nullptr or ignored when d.no_trans.
// rois are float32 for both data types (contract: coordinates never in half).
template <class T>
cudaError_t deform_psroi_pool(const T* data, const float* rois, const T* trans, const DeformPSROIPoolDims& d, T* Y,
                              cudaStream_t stream);

extern template cudaError_t deform_psroi_pool<float>(const float*, const float*, const float*,
                                                     const DeformPSROIPoolDims&, float*, cudaStream_t);
extern template cudaError_t deform_psroi_pool<__half>(const __half*, const float*, const __half*,
                                                      const DeformPSROIPoolDims&, __half*, cudaStream_t);

}  // namespace cuda
}  // namespace dcn
