// TensorRT plugin for dcn::DCNv4 (FlashInternImage): IPluginV3 (life cycle: Plugin<> in plugins/trt/
// plugin_base.h) and its creator "DCNv4" version "1", namespace "". Inputs X [N, H, W, C] and offset_mask
// [N, Ho, Wo, K >= G*P*3] (per group P (dx, dy) pairs then P raw masks), linear, one type (FP32 or FP16:
// coordinates and sums in FP32); output [N, Ho, Wo, C], N, H, W dynamic. Attributes and output shape: the
// aggregation ops' (plugins/trt/aggregate_plugin.h).
#pragma once

#include "aggregate_plugin.h"  // plugins/trt
#include "dcnv4_math.h"

namespace dcn {
namespace trt {

struct DCNv4Traits : AggregateTraitsBase
{
    static char const* const kName;
    static FieldSpec const* const kFields;
    static constexpr int32_t kMinInputs = 2;
    static constexpr int32_t kMaxInputs = 2;
    static constexpr char const* kInputNames = "X, offset_mask";
    static constexpr char const* kInputs[] = {"X", "offset_mask"};
    static constexpr int32_t kRanks[] = {4, 4};
    static std::vector<FieldValue> parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc);
    static std::string validateAttrs(std::string const& layer, Attrs const& a)
    {
        return validate_aggregate_attrs(kDCNv4Name, layer, a);
    }
};

class DCNv4Plugin final : public Plugin<DCNv4Plugin, DCNv4Traits>
{
public:
    using Traits = DCNv4Traits;
    using Plugin::Plugin;

private:
    nvinfer1::DimsExprs outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const override;
    AggregateDims validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const override;
    int32_t launch(AggregateDims const& d, nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
        void* output, void* workspace, cudaStream_t stream) override;
};

using DCNv4Creator = Creator<DCNv4Plugin>;

} // namespace trt
} // namespace dcn
