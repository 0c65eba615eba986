// dcnv4_math.h: dcn::DCNv4's validation, on the aggregation ops' shared math (plugins/common/dcn_aggregate.h:
// geometry, sampling, element function, attribute and X checks), host only. Contract: shared/design/ops.md
// (its DCNv4 section); truth: exporter/ops/dcnv4/reference.py.
//
//   X [N, H, W, group*group_channels], offset_mask [N, Ho, Wo, K], K >= G*P*3: group g reads channels
//   [g*3P, g*3P + 3P) = dx_0, dy_0, ..., dx_{P-1}, dy_{P-1}, m_0, ..., m_{P-1} (masks raw; the channels
//   past G*3P are padding). AggregateDims' strides: both K, group strides 3P, maskShift 2P; the kernels
//   and the ORT op pass offset_mask as both the offsets and the masks.
//
//   std::string validate_dcnv4(node, a, X, offset_mask, AggregateDims* out): "" or one message
//       "DCNv4 '<node>': <what>, expected ...".
#pragma once

#include "dcn_aggregate.h"  // plugins/common
#include "dcnv4_fields.h"

namespace dcn {

#if !defined(__CUDA_ARCH__)

inline std::string validate_dcnv4(const std::string& node, const AggregateAttrs& a, ShapeRef X, ShapeRef offset_mask,
                                  AggregateDims* out) {
    AggregateDims d{};
    const std::string p = op_prefix(kDCNv4Name, node);
    std::string e = validate_aggregate_x(kDCNv4Name, node, a, X, d);
    if (e.empty()) e = validate_aggregate_io(p, "offset_mask", offset_mask, d, d.group * d.P * 3, "group*P*3", true);
    if (!e.empty()) return e;
    const int64_t K = offset_mask[3];
    if (K > kMaxElements / (d.N * d.outH * d.outW > 0 ? d.N * d.outH * d.outW : 1))
        return p + "offset_mask has " + std::to_string(K) + " channels, expected at most 2^58 elements in all";
    d.offStride = d.maskStride = K;
    d.offGroupStride = d.maskGroupStride = 3 * d.P;
    d.maskShift = 2 * d.P;
    if (out) *out = d;
    return "";
}

#endif  // !__CUDA_ARCH__

}  // namespace dcn
