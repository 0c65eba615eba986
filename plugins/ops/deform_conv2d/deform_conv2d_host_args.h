// deform_conv2d_host_args.h: the DeformConv2d host-test entry points' arguments (shapes and
// attributes as C arrays, optional tensors as null pointers) -> the header's validated dims,
// shared by deform_conv2d_host_kernels.cpp and deform_conv2d_host_fused.cpp (test code).
#pragma once

#include <string>

#include "deform_conv2d_math.h"
#include "host_tests.h"  // plugins/tests

namespace dcn_host {

// "" with *d set, else the contract's message (node "emu").
inline std::string conv_dims(const int64_t* x_shape, const int64_t* w_shape, const int64_t* offset_shape, const void* B,
                             const int64_t* b_shape, const void* mask, const int64_t* mask_shape, const int64_t* strides,
                             const int64_t* pads, const int64_t* dilations, int64_t group, int64_t offset_group,
                             dcn::DeformConvDims* d) {
    dcn::DeformConvAttrs a;
    a.strides.assign(strides, strides + 2);
    a.pads.assign(pads, pads + 4);
    a.dilations.assign(dilations, dilations + 2);
    a.group = group;
    a.offset_group = offset_group;
    return dcn::validate_deform_conv2d("emu", a, dcn::ShapeRef(x_shape, 4), dcn::ShapeRef(w_shape, 4),
                                       dcn::ShapeRef(offset_shape, 4), opt_shape(B, b_shape, 1),
                                       opt_shape(mask, mask_shape, 4), d);
}

}  // namespace dcn_host
