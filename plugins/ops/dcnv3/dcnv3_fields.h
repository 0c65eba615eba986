// dcn::DCNv3's row of the contract's attribute tables (shared/design/ops.md, exporter/ops/dcnv3/spec.py;
// dcn::DCNv4 has the same attributes: plugins/ops/dcnv4/dcnv4_fields.h): included at the end of
// plugins/common/dcn_fields.h, read by the ONNX Runtime ops and the TensorRT creators, compared with the
// Python contract by tests/test_trt_contract.py. No attribute name is spelled anywhere else in
// plugins/ops/dcnv3, dcnv4.
#pragma once

#include <cstdint>

namespace dcn {

inline constexpr char const* kDCNv3Name = "DCNv3";

enum DcnField : int32_t
{
    kDN_KERNEL_SHAPE = 0,
    kDN_STRIDES,
    kDN_PADS,
    kDN_DILATIONS,
    kDN_GROUP,
    kDN_GROUP_CHANNELS,
    kDN_OFFSET_SCALE,
    kDN_REMOVE_CENTER,
    kDN_NUM_FIELDS
};

inline constexpr FieldSpec kDCNv3Fields[kDN_NUM_FIELDS] = {
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
