// dcnv3_math.h: dcn::DCNv3's validation, on the aggregation ops' shared math (plugins/common/dcn_aggregate.h:
// geometry, sampling, element function, attribute and X checks), host only. Contract: shared/design/ops.md
// (its DCNv3 section); truth: exporter/ops/dcnv3/reference.py.
//
//   X [N, H, W, group*group_channels], offset [N, Ho, Wo, G*P*2] ((dx, dy) pairs, point-major in each
//   group), mask [N, Ho, Wo, G*P]: AggregateDims' strides offStride 2GP, offGroupStride 2P, maskStride GP,
//   maskGroupStride P, maskShift 0.
//
//   std::string validate_dcnv3(node, a, X, offset, mask, AggregateDims* out): "" or one message
//       "DCNv3 '<node>': <what>, expected ...".
#pragma once

#include "dcn_aggregate.h"  // plugins/common
#include "dcnv3_fields.h"

namespace dcn {

#if !defined(__CUDA_ARCH__)

inline std::string validate_dcnv3(const std::string& node, const AggregateAttrs& a, ShapeRef X, ShapeRef offset,
                                  ShapeRef mask, AggregateDims* out) {
    AggregateDims d{};
    std::string e = validate_aggregate_x(kDCNv3Name, node, a, X, d);
    const std::string p = op_prefix(kDCNv3Name, node);
    if (e.empty()) e = validate_aggregate_io(p, "offset", offset, d, d.group * d.P * 2, "group*P*2");
    if (e.empty()) e = validate_aggregate_io(p, "mask", mask, d, d.group * d.P, "group*P");
    if (!e.empty()) return e;
    d.offStride = d.group * d.P * 2, d.offGroupStride = d.P * 2;
    d.maskStride = d.group * d.P, d.maskGroupStride = d.P, d.maskShift = 0;
    if (out) *out = d;
    return "";
}

#endif  // !__CUDA_ARCH__

}  // namespace dcn
