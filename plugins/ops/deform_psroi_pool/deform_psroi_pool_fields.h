// dcn::DeformPSROIPool's row of the contract's attribute tables (machinery: plugins/common/dcn_fields.h;
// tested equal to exporter/contract.py by tests/test_trt_contract.py).
#pragma once

#include "dcn_fields.h"  // plugins/common

namespace dcn {

// ---- DeformPSROIPool ---------------------------------------------------------------
inline constexpr char const* kDeformPSROIPoolName = "DeformPSROIPool";

enum DeformPSROIPoolField : int32_t
{
    kPS_SPATIAL_SCALE = 0,
    kPS_OUTPUT_DIM,
    kPS_GROUP_SIZE,
    kPS_POOLED_SIZE,
    kPS_PART_SIZE,
    kPS_SAMPLE_PER_PART,
    kPS_TRANS_STD,
    kPS_NO_TRANS,
    kPS_NUM_FIELDS
};

inline constexpr FieldSpec kDeformPSROIPoolFields[kPS_NUM_FIELDS] = {
    {"spatial_scale", FieldKind::kFLOAT, 1, true, false, {0}},
    {"output_dim", FieldKind::kINT, 1, true, false, {0}},
    {"group_size", FieldKind::kINT, 1, true, false, {0}},
    {"pooled_size", FieldKind::kINT, 1, true, false, {0}},
    {"part_size", FieldKind::kINT, 1, false, true, {0}},
    {"sample_per_part", FieldKind::kINT, 1, false, true, {4}},
    {"trans_std", FieldKind::kFLOAT, 1, false, true, {0.0}},
    {"no_trans", FieldKind::kINT, 1, false, true, {0}},
};

}  // namespace dcn
