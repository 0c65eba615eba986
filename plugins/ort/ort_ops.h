// The custom ops of libdcn_ort, added to the "dcn" domain by RegisterCustomOps (dcn_ort.cpp): one
// add_<op>() per line of the op registry plugins/ops/ops.list, defined in plugins/ops/<op>/<op>_ort.cpp.
#pragma once

#include "ort_common.h"

namespace dcn_ort {

// Each adds a float32 and a float16 kernel; OrtCustomOp::version = api_version.
#define DCN_OP(snake, Camel) void add_##snake(Ort::CustomOpDomain& domain, int api_version);
#include "ops.list"
#undef DCN_OP

}  // namespace dcn_ort
