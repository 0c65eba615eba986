// The attribute table the channels-last deformable aggregation ops share (their section of
// shared/design/ops.md states one attribute set for both; exporter/ops/aggregation_spec.py ATTRS):
// each such op's <op>_fields.h names it as its own k<OpType>Fields, and tests/test_trt_contract.py
// compares it, per op, with that op's Python entry. Machinery: dcn_fields.h. Names no op.
#pragma once

#include "dcn_fields.h"

namespace dcn {

enum AggregateField : int32_t
{
    kAG_KERNEL_SHAPE = 0,
    kAG_STRIDES,
    kAG_PADS,
    kAG_DILATIONS,
    kAG_GROUP,
    kAG_GROUP_CHANNELS,
    kAG_OFFSET_SCALE,
    kAG_REMOVE_CENTER,
    kAG_NUM_FIELDS
};

inline constexpr FieldSpec kAggregateFields[kAG_NUM_FIELDS] = {
    {"kernel_shape", FieldKind::kINTS, 2, true, false, {0}},
    {"strides", FieldKind::kINTS, 2, false, true, {1, 1}},
    {"pads", FieldKind::kINTS, 4, false, true, {0, 0, 0, 0}},
    {"dilations", FieldKind::kINTS, 2, false, true, {1, 1}},
    {"group", FieldKind::kINT, 1, false, true, {1}},
    {"group_channels", FieldKind::kINT, 1, true, false, {0}},
    {"offset_scale", FieldKind::kFLOAT, 1, false, true, {1.0}},
    {"remove_center", FieldKind::kINT, 1, false, true, {0}},
};

} // namespace dcn
