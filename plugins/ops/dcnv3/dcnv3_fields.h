// dcn::DCNv3's row of the contract's attribute tables: the aggregation ops' shared attribute set
// (plugins/common/dcn_aggregate_fields.h) under its own op type; tested equal to its Python entry
// (exporter/ops/dcnv3/spec.py) by tests/test_trt_contract.py.
#pragma once

#include "dcn_aggregate_fields.h"  // plugins/common

namespace dcn {

inline constexpr char const* kDCNv3Name = "DCNv3";
inline constexpr auto& kDCNv3Fields = kAggregateFields;

} // namespace dcn
