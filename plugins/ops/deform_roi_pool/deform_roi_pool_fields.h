// dcn::DeformRoIPool's row of the contract's attribute tables (machinery: plugins/common/dcn_fields.h;
// tested equal to exporter/contract.py by tests/test_trt_contract.py).
#pragma once

#include "dcn_fields.h"  // plugins/common

namespace dcn {

// ---- DeformRoIPool (mmcv's deformable RoI pooling) -----------------------------------
inline constexpr char const* kDeformRoIPoolName = "DeformRoIPool";

enum DeformRoIPoolField : int32_t
{
    kRP_POOLED_HEIGHT = 0,
    kRP_POOLED_WIDTH,
    kRP_SPATIAL_SCALE,
    kRP_SAMPLING_RATIO,
    kRP_GAMMA,
    kRP_NUM_FIELDS
};

inline constexpr FieldSpec kDeformRoIPoolFields[kRP_NUM_FIELDS] = {
    {"pooled_height", FieldKind::kINT, 1, true, false, {0}},
    {"pooled_width", FieldKind::kINT, 1, true, false, {0}},
    {"spatial_scale", FieldKind::kFLOAT, 1, true, false, {0}},
    {"sampling_ratio", FieldKind::kINT, 1, false, true, {0}},
    {"gamma", FieldKind::kFLOAT, 1, false, true, {0.1}},
};

}  // namespace dcn
