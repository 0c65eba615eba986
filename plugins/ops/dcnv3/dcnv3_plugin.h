// TensorRT plugin for dcn::DCNv3 (InternImage): IPluginV3 with IPluginV3OneCore/Build/Runtime (life cycle:
// Plugin<> in plugins/trt/plugin_base.h) and its IPluginCreatorV3One creator "DCNv3" version "1", namespace
// "". Inputs X [N, H, W, C], offset [N, Ho, Wo, G*P*2], mask [N, Ho, Wo, G*P], linear, one type (FP32 or
// FP16: coordinates and sums in FP32); output [N, Ho, Wo, C] with N, H, W dynamic. Attributes and output
// shape: the aggregation ops' (plugins/trt/aggregate_plugin.h).
#pragma once

#include "aggregate_plugin.h"  // plugins/trt
#include "dcnv3_math.h"

namespace dcn {
namespace trt {

struct DCNv3Traits : AggregateTraitsBase
{
    static char const* const kName;
    static FieldSpec const* const kFields;
    static constexpr int32_t kMinInputs = 3;
    static constexpr int32_t kMaxInputs = 3;
    static constexpr char const* kInputNames = "X, offset, mask";
    static constexpr char const* kInputs[] = {"X", "offset", "mask"};
    static constexpr int32_t kRanks[] = {4, 4, 4};
    static std::vector<FieldValue> parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc);
    static std::string validateAttrs(std::string const& layer, Attrs const& a)
    {
        return validate_aggregate_attrs(kDCNv3Name, layer, a);
    }
};

class DCNv3Plugin final : public Plugin<DCNv3Plugin, DCNv3Traits>
{
public:
    using Traits = DCNv3Traits;
    using Plugin::Plugin;

private:
    nvinfer1::DimsExprs outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const override;
    AggregateDims validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const override;
    int32_t launch(AggregateDims const& d, nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
        void* output, void* workspace, cudaStream_t stream) override;
};

using DCNv3Creator = Creator<DCNv3Plugin>;

} // namespace trt
} // namespace dcn
