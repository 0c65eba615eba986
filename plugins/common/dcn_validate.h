// dcn_validate.h: the host-only helpers of every op's validation (plugins/ops/<op>/<op>_math.h):
// shapes as the checks see them (ShapeRef) and the contract's message text.
//
//   struct ShapeRef { const int64_t* dims; int64_t rank; };           rank < 0: input absent
//   ints_str / shape_str / float_str                                   "[1, 2]", "0.0625", "nan"
//   std::string op_prefix(op_type, node);                              "<OpType> '<node>': "
//   std::string missing_attribute_message(op_type, node, attr, kind);
//   std::string attribute_type_message(op_type, node, attr, kind);
//   std::string check_int_lists(prefix, {{name, values, count, min, max}, ...});  "" when all fit
//
// Messages: "<OpType> '<node>': <what> <got>, expected <expected>", fixed text, e.g.
//   <OpType> 'backbone.layer3.0.conv2': offset has 36 channels, expected 2*offset_group*kH*kW = 18
// Each op's validate_* functions hold their templates; tests match them.
#pragma once

#if !defined(__CUDA_ARCH__)

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <vector>

namespace dcn {

struct ShapeRef {
    const int64_t* dims = nullptr;
    int64_t rank = -1;  // < 0: the (optional) input is absent
    ShapeRef() = default;
    ShapeRef(const int64_t* d, int64_t r) : dims(d), rank(r) {}
    ShapeRef(const std::vector<int64_t>& v) : dims(v.data()), rank(static_cast<int64_t>(v.size())) {}
    bool present() const { return rank >= 0; }
    int64_t operator[](int64_t i) const { return dims[i]; }
};

inline std::string ints_str(const int64_t* v, int64_t n) {
    std::string s = "[";
    for (int64_t i = 0; i < n; ++i) {
        if (i) s += ", ";
        s += std::to_string(v[i]);
    }
    return s + "]";
}
inline std::string ints_str(const std::vector<int64_t>& v) { return ints_str(v.data(), static_cast<int64_t>(v.size())); }
inline std::string shape_str(ShapeRef s) { return ints_str(s.dims, s.rank); }

// Shortest text that reads back to the same double ("0.0625", "nan", "inf").
inline std::string float_str(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[40];
    for (int prec = 1; prec <= 17; ++prec) {
        std::snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    return buf;
}

inline std::string op_prefix(const char* op_type, const std::string& node) {
    return std::string(op_type) + " '" + node + "': ";
}

// "<OpType> '<node>': attribute <attr> is missing, expected <kind>" (kind e.g. "an INT")
inline std::string missing_attribute_message(const char* op_type, const std::string& node, const char* attr,
                                             const char* kind) {
    return op_prefix(op_type, node) + "attribute " + attr + " is missing, expected " + kind;
}
// "<OpType> '<node>': attribute <attr> has the wrong type, expected <kind>"
inline std::string attribute_type_message(const char* op_type, const std::string& node, const char* attr,
                                          const char* kind) {
    return op_prefix(op_type, node) + "attribute " + attr + " has the wrong type, expected " + kind;
}

// INTS attributes against their value count and [min, max] (max: the contract's limit), in order;
// "" when all fit, else the first failure's message after ``prefix`` (op_prefix).
struct IntListRule {
    const char* name;
    const std::vector<int64_t>& v;
    size_t n;
    int64_t min, max;
};
inline std::string check_int_lists(const std::string& p, std::initializer_list<IntListRule> rules) {
    for (const IntListRule& l : rules) {
        if (l.v.size() != l.n)
            return p + "attribute " + l.name + " has " + std::to_string(l.v.size()) + " values, expected " +
                   std::to_string(l.n);
        for (int64_t x : l.v)
            if (x < l.min)
                return p + "attribute " + l.name + " = " + ints_str(l.v) + ", expected values >= " +
                       std::to_string(l.min);
        for (int64_t x : l.v)
            if (x > l.max)
                return p + "attribute " + l.name + " = " + ints_str(l.v) + ", expected values <= " +
                       std::to_string(l.max) + " (limit)";
    }
    return "";
}

}  // namespace dcn

#endif  // !__CUDA_ARCH__
