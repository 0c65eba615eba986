// aggregate_plugin.h: what the channels-last deformable aggregation ops' TensorRT plugins share
// (plugins/ops/<op>/<op>_plugin.h): their traits' common part (attributes from the shared field table
// plugins/common/dcn_aggregate_fields.h, one type for every input, no FP32-only input) and the output
// shape expression [N, Ho, Wo, C]. Each op adds its inputs, its shape validation and its launch.
// Names no op.
#pragma once

#include "dcn_aggregate.h"         // plugins/common
#include "dcn_aggregate_fields.h"  // plugins/common
#include "plugin_base.h"

namespace dcn {
namespace trt {

// The attributes from the parsed fields (kAggregateFields order).
inline AggregateAttrs aggregateAttrs(std::vector<FieldValue> const& f)
{
    auto ints = [&](int32_t i) { return std::vector<int64_t>(f[i].ints.begin(), f[i].ints.end()); };
    AggregateAttrs a;
    a.kernel_shape = ints(kAG_KERNEL_SHAPE);
    a.strides = ints(kAG_STRIDES);
    a.pads = ints(kAG_PADS);
    a.dilations = ints(kAG_DILATIONS);
    a.group = f[kAG_GROUP].ints.at(0);
    a.group_channels = f[kAG_GROUP_CHANNELS].ints.at(0);
    a.offset_scale = static_cast<double>(f[kAG_OFFSET_SCALE].f);
    a.remove_center = f[kAG_REMOVE_CENTER].ints.at(0);
    return a;
}

// [N, Ho, Wo, C] from X's dimensions: Ho = (H + top + bottom - (dh*(kh-1) + 1)) / sh + 1 (floor), Wo alike.
inline nvinfer1::DimsExprs aggregateOutputShape(
    AggregateAttrs const& a, nvinfer1::DimsExprs const& x, nvinfer1::IExprBuilder& eb)
{
    using Op = nvinfer1::DimensionOperation;
    auto out = [&](nvinfer1::IDimensionExpr const* size, int64_t padBegin, int64_t padEnd, int64_t dilation,
                   int64_t kernel, int64_t stride) {
        int64_t const c = padBegin + padEnd - (dilation * (kernel - 1) + 1); // attributes validated: no overflow
        auto const* num = c >= 0 ? eb.operation(Op::kSUM, *size, *eb.constant(c))
                                 : eb.operation(Op::kSUB, *size, *eb.constant(-c));
        return eb.operation(Op::kSUM, *eb.operation(Op::kFLOOR_DIV, *num, *eb.constant(stride)), *eb.constant(1));
    };
    nvinfer1::DimsExprs y{};
    y.nbDims = 4;
    y.d[0] = x.d[0];
    y.d[1] = out(x.d[1], a.pads[0], a.pads[2], a.dilations[0], a.kernel_shape[0], a.strides[0]);
    y.d[2] = out(x.d[2], a.pads[1], a.pads[3], a.dilations[1], a.kernel_shape[1], a.strides[1]);
    y.d[3] = x.d[3];
    return y;
}

// The traits' common part (plugin_base.h: an op's Traits).
struct AggregateTraitsBase
{
    using Attrs = AggregateAttrs;
    using Dims = AggregateDims;
    static constexpr int32_t kNbFields = kAG_NUM_FIELDS;
    static constexpr int32_t kFloat32Input = -1; // none: one type for all
    static constexpr char const* kFloat32Why = "";
    static constexpr bool kTypeErrorsByName = false;
    static Attrs attrs(std::vector<FieldValue> const& fields)
    {
        return aggregateAttrs(fields);
    }
};

} // namespace trt
} // namespace dcn
