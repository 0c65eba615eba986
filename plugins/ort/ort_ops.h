// The custom ops of libdcn_ort, added to the "dcn" domain by RegisterCustomOps (dcn_ort.cpp).
#pragma once

#include "ort_common.h"

namespace dcn_ort {

// Each adds a float32 and a float16 kernel; OrtCustomOp::version = api_version.
void add_deform_conv2d(Ort::CustomOpDomain& domain, int api_version);
void add_deform_psroi_pool(Ort::CustomOpDomain& domain, int api_version);
void add_deform_roi_pool(Ort::CustomOpDomain& domain, int api_version);
void add_multi_scale_deformable_attention(Ort::CustomOpDomain& domain, int api_version);  // plugins/ops/multi_scale_deformable_attention

}  // namespace dcn_ort
