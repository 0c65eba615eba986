// dcnv3_host_kernels.cpp: dcn::DCNv3 on the host, with C linkage for tests/test_dcnv3_host.py (ctypes; part
// of libdcn_host_tests). What runs is the plugins' own code: validate_dcnv3 (dcnv3_math.h), the element
// function and the CUDA kernel's per-thread body (plugins/tests/host_aggregate.h explains the arguments).
#include "dcnv3_math.h"
#include "host_aggregate.h"  // plugins/tests

using namespace dcn_host;

DCN_EXPORT int dcn_host_dcnv3(int dtype, int mode, int vec, int index_mode, int64_t max_blocks, const void* X,
                              const int64_t* xs, int64_t x_rank, const void* offset, const int64_t* os, int64_t o_rank,
                              const void* mask, const int64_t* ms, int64_t m_rank, const int64_t* kernel_shape,
                              const int64_t* strides, const int64_t* pads, const int64_t* dilations, int64_t group,
                              int64_t group_channels, double offset_scale, int64_t remove_center, const char* node,
                              void* out, int64_t* stats, char* msg, size_t msg_size) {
    const dcn::AggregateAttrs a =
        aggregate_attrs(kernel_shape, strides, pads, dilations, group, group_channels, offset_scale, remove_center);
    dcn::AggregateDims d{};
    const std::string e = dcn::validate_dcnv3(node ? node : "", a, {xs, x_rank}, {os, o_rank}, {ms, m_rank}, &d);
    return aggregate_entry(e, dtype, mode, vec, index_mode, max_blocks, X, offset, mask, d, out, stats, msg, msg_size);
}

// The header's limits, for tests/test_dcnv3_host.py (== exporter/ops/dcnv3/spec.py limits).
DCN_EXPORT void dcn_host_dcnv3_limits(int64_t* out) { aggregate_limits(out); }
