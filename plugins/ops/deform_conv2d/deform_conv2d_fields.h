// dcn::DeformConv2d's row of the contract's attribute tables (machinery: plugins/common/dcn_fields.h;
// tested equal to exporter/contract.py by tests/test_trt_contract.py).
#pragma once

#include "dcn_fields.h"  // plugins/common

namespace dcn {

// ---- DeformConv2d ------------------------------------------------------------------
inline constexpr char const* kDeformConv2dName = "DeformConv2d";

enum DeformConv2dField : int32_t
{
    kDC_STRIDES = 0,
    kDC_PADS,
    kDC_DILATIONS,
    kDC_GROUP,
    kDC_OFFSET_GROUP,
    kDC_KERNEL_SHAPE,
    kDC_NUM_FIELDS
};

inline constexpr FieldSpec kDeformConv2dFields[kDC_NUM_FIELDS] = {
    {"strides", FieldKind::kINTS, 2, false, true, {1, 1}},
    {"pads", FieldKind::kINTS, 4, false, true, {0, 0, 0, 0}},
    {"dilations", FieldKind::kINTS, 2, false, true, {1, 1}},
    {"group", FieldKind::kINT, 1, false, true, {1}},
    {"offset_group", FieldKind::kINT, 1, false, true, {1}},
    {"kernel_shape", FieldKind::kINTS, 2, false, false, {0}},
};

}  // namespace dcn
