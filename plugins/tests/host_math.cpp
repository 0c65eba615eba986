// host_math.cpp: the shared math core (plugins/common/dcn_math.h) over arrays, exported with C
// linkage for tests/test_math_header.py (ctypes): bilinear sampling, output sizes, half
// conversions, rounding; and the host emulation's count of misaligned vector accesses
// (dcn_vector_check.h). Test code: it only loops and calls the headers. Each op's own functions
// over whole tensors are in its folder (plugins/ops/<op>/<op>_host_math.cpp).
#include <cstdint>

#include "dcn_math.h"          // plugins/common
#include "dcn_vector_check.h"  // plugins/common
#include "host_tests.h"  // plugins/tests

// out[q] = bilinear(plane [H, W], h[q], w[q]) in float64.
DCN_EXPORT void dcn_host_bilinear(const double* plane, int64_t H, int64_t W, const double* h, const double* w,
                                  int64_t n, double* out) {
    for (int64_t q = 0; q < n; ++q) out[q] = dcn::bilinear<double>(plane, H, W, h[q], w[q]);
}

DCN_EXPORT int64_t dcn_host_conv_out_size(int64_t size, int64_t pad_begin, int64_t pad_end, int64_t dilation,
                                          int64_t kernel, int64_t stride) {
    return dcn::conv_out_size(size, pad_begin, pad_end, dilation, kernel, stride);
}

DCN_EXPORT void dcn_host_float_to_half(const float* in, uint16_t* out, int64_t n) {
    for (int64_t q = 0; q < n; ++q) out[q] = dcn::float_to_half_bits(in[q]);
}

DCN_EXPORT void dcn_host_half_to_float(const uint16_t* in, float* out, int64_t n) {
    for (int64_t q = 0; q < n; ++q) out[q] = dcn::half_bits_to_float(in[q]);
}

// C round() of the header (halves away from zero), float64.
DCN_EXPORT void dcn_host_round(const double* in, double* out, int64_t n) {
    for (int64_t q = 0; q < n; ++q) out[q] = dcn::round_of(in[q]);
}

// The kernels' vector accesses at addresses a GPU would fault on since the last call
// (dcn_vector_check.h), then reset: the host tests expect none for the launchers' choices.
DCN_EXPORT int64_t dcn_host_misaligned_vector_accesses() {
    const int64_t n = dcn::misaligned_vector_accesses();
    dcn::misaligned_vector_accesses() = 0;
    return n;
}
