// The machinery of the op contract's attribute tables (shared/design/ops.md, exporter/contract.py):
// one FieldSpec table per op, in the op's folder (plugins/ops/<op>/<op>_fields.h), for every C++
// consumer: the ONNX Runtime ops read their node attributes by these names and defaults, and the
// TensorRT creators build getFieldNames(), parse createPlugin()'s collection and emit
// getFieldsToSerialize() from them. No attribute name is spelled anywhere else in the ORT ops or
// the TensorRT plugins. Free of ONNX Runtime and TensorRT includes, so tests/test_trt_contract.py
// compiles the tables on their own and compares them, entry by entry, with exporter/contract.py.
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

// Plugin identity (contract: creator named like the op type, version "1", namespace "").
inline constexpr char const* kPluginVersion = "1";
inline constexpr char const* kPluginNamespace = "";

} // namespace dcn
