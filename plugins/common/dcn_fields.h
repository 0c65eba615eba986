// The op contract's attributes (shared/design/ops.md, exporter/contract.py) as one table
// per op, for every C++ consumer: the ONNX Runtime ops read their node attributes by
// these names and defaults, and the TensorRT creators build getFieldNames(), parse
// createPlugin()'s collection and emit getFieldsToSerialize() from them. No attribute
// name is spelled anywhere else in plugins/ort or plugins/trt. Free of ONNX Runtime and
// TensorRT includes, so tests/test_trt_contract.py compiles it on its own and compares
// it, entry by entry, with exporter/contract.py.
#pragma once

#include <cstdint>

namespace dcn {

// Contract kind (ONNX attribute type) of a field. The ONNX parser passes INT and
// INTS as PluginFieldType::kINT32 and FLOAT as PluginFieldType::kFLOAT32.
enum class FieldKind : int32_t
{
    kINT = 0,
    kINTS = 1,
    kFLOAT = 2,
};

struct FieldSpec
{
    char const* name;
    FieldKind kind;
    int32_t length;       // number of values (1 for INT / FLOAT)
    bool required;        // the creator rejects a collection without it
    bool hasDefault;      // false: optional without default (kernel_shape) or required
    double defaults[4];   // first `length` entries meaningful when hasDefault
};

inline constexpr char const* fieldKindName(FieldKind k)
{
    return k == FieldKind::kINT ? "INT" : k == FieldKind::kINTS ? "INTS" : "FLOAT";
}

// TensorRT PluginFieldType spelled as in NvInferPluginBase.h (for messages and the
// contract test; the creators map kINT/kINTS -> kINT32 and kFLOAT -> kFLOAT32).
inline constexpr char const* fieldTrtTypeName(FieldKind k)
{
    return k == FieldKind::kFLOAT ? "kFLOAT32" : "kINT32";
}

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

// ---- MultiScaleDeformableAttention (plugins/ops/multi_scale_deformable_attention) -------
inline constexpr char const* kMultiScaleDeformableAttentionName = "MultiScaleDeformableAttention";
enum MultiScaleDeformableAttentionField : int32_t { kMS_IM2COL_STEP = 0, kMS_NUM_FIELDS };
inline constexpr FieldSpec kMultiScaleDeformableAttentionFields[kMS_NUM_FIELDS] = {
    {"im2col_step", FieldKind::kINT, 1, false, true, {64}},
};

// Plugin identity (contract: creator named like the op type, version "1", namespace "").
inline constexpr char const* kPluginVersion = "1";
inline constexpr char const* kPluginNamespace = "";

} // namespace dcn
