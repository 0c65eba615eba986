// dcn::DCNv4's row of the contract's attribute tables: DCNv3's attributes (plugins/ops/dcnv3/dcnv3_fields.h;
// exporter/ops/dcnv3/spec.py ATTRS), under its own op type.
#pragma once

#include "../dcnv3/dcnv3_fields.h"

namespace dcn {

inline constexpr char const* kDCNv4Name = "DCNv4";
inline constexpr auto& kDCNv4Fields = kDCNv3Fields;  // one attribute set for both ops

} // namespace dcn
