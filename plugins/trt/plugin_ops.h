// The plugin creators of every op in the registry plugins/ops/ops.list: <op>_creator() is defined
// in plugins/ops/<op>/<op>_plugin.cpp (one Creator<Op> for the process) and handed out by
// plugin_entry.cpp (getCreators(), static registration).
#pragma once

#include "trt_compat.h"

namespace dcn {
namespace trt {

#define DCN_OP(snake, Camel) nvinfer1::IPluginCreatorInterface* snake##_creator();
#include "ops.list"
#undef DCN_OP

} // namespace trt
} // namespace dcn
