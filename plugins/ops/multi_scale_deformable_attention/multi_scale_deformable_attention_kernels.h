// multi_scale_deformable_attention_kernels.h: the CUDA launcher of dcn::MultiScaleDeformableAttention (no TensorRT here).
// Launches on `stream`, returns the launch's status (dcn_launch.cuh launch_kernel); an empty output launches
// nothing. T is float or __half (sampling and accumulation in float), locations float32, index
// tensors int32 (index_bytes 4) or int64 (8), all device memory. Levels that do not fit value's S
// read nothing (the kernel cannot report; the ONNX Runtime op and the exporter reject them).
#pragma once

#include "multi_scale_deformable_attention_math.h"

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace dcn {
namespace cuda {

template <class T>
cudaError_t multi_scale_deformable_attention(const T* value, const void* spatial_shapes, const void* level_start_index,
                                             int index_bytes, const float* sampling_locations,
                                             const T* attention_weights, const MsdaDims& d, T* Y, cudaStream_t stream);

extern template cudaError_t multi_scale_deformable_attention<float>(const float*, const void*, const void*, int,
                                                                    const float*, const float*, const MsdaDims&,
                                                                    float*, cudaStream_t);
extern template cudaError_t multi_scale_deformable_attention<__half>(const __half*, const void*, const void*, int,
                                                                     const float*, const __half*, const MsdaDims&,
                                                                     __half*, cudaStream_t);

}  // namespace cuda
}  // namespace dcn
