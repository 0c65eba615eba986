// The ONNX Runtime ops' switches read from the environment (DCN_ORT_GEMM, DCN_ORT_SMALL_WORK):
// one word among a fixed few, unset or empty meaning the first (the default). Standard library
// only (the host tests include the headers that use it).
#pragma once

#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace dcn_ort {

// The index in `values` of the word in environment variable `var` (unset or empty: 0); any other
// word throws std::runtime_error "VAR: got 'word', expected a, b or c".
inline size_t env_choice(const char* var, std::initializer_list<const char*> values) {
    const char* env = std::getenv(var);
    const std::string v = env == nullptr ? "" : env;
    if (v.empty()) return 0;
    std::string expected;
    size_t i = 0;
    for (const char* value : values) {
        if (v == value) return i;
        expected += (i == 0 ? "" : i + 1 == values.size() ? " or " : ", ") + std::string(value);
        ++i;
    }
    throw std::runtime_error(std::string(var) + ": got '" + v + "', expected " + expected);
}

}  // namespace dcn_ort
