// dcn::MultiScaleDeformableAttention's row of the contract's attribute tables (machinery:
// plugins/common/dcn_fields.h; tested equal to exporter/contract.py by tests/test_trt_contract.py).
#pragma once

#include "dcn_fields.h"  // plugins/common

namespace dcn {

// ---- MultiScaleDeformableAttention (Deformable DETR's core) ---------------------------
inline constexpr char const* kMultiScaleDeformableAttentionName = "MultiScaleDeformableAttention";

enum MultiScaleDeformableAttentionField : int32_t
{
    kMS_IM2COL_STEP = 0,
    kMS_NUM_FIELDS
};

inline constexpr FieldSpec kMultiScaleDeformableAttentionFields[kMS_NUM_FIELDS] = {
    {"im2col_step", FieldKind::kINT, 1, false, true, {64}},
};

}  // namespace dcn
