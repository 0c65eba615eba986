// dcn::DCNv4's row of the contract's attribute tables: the aggregation ops' shared attribute set
// (plugins/common/dcn_aggregate_fields.h) under its own op type; tested equal to its Python entry
// (exporter/ops/dcnv4/spec.py) by tests/test_trt_contract.py.
#pragma once

#include "dcn_aggregate_fields.h"  // plugins/common

namespace dcn {

inline constexpr char const* kDCNv4Name = "DCNv4";
inline constexpr auto& kDCNv4Fields = kAggregateFields;

} // namespace dcn
