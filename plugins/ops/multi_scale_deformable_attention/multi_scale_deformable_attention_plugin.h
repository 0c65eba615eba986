// TensorRT plugin for dcn::MultiScaleDeformableAttention: IPluginV3 (life cycle: Plugin<> in
// plugins/trt/plugin_base.h) and its IPluginCreatorV3One "MultiScaleDeformableAttention" version "1",
// namespace "". Inputs value [N, S, M, D] (FP32 / FP16), spatial_shapes [L, 2] and level_start_index
// [L] (INT32 or INT64, one type), sampling_locations [N, Lq, M, L, P, 2] (FP32 always: coordinates are
// never FP16), attention_weights (value's type); output [N, Lq, M*D] (value's type), every dimension
// dynamic. The level table lives on the device: levels that do not fit value's S read nothing.
#pragma once

#include "dcn_math.h"
#include "multi_scale_deformable_attention_math.h"
#include "plugin_base.h"

namespace dcn {
namespace trt {

struct MsdaAttrs
{
    int64_t im2col_step{64}; // contract: kept for interoperability, no effect on the result
};

struct MsdaTraits
{
    using Attrs = MsdaAttrs;
    using Dims = MsdaDims;
    static char const* const kName;
    static FieldSpec const* const kFields;
    static constexpr int32_t kNbFields = kMS_NUM_FIELDS;
    static constexpr int32_t kMinInputs = 5;
    static constexpr int32_t kMaxInputs = 5;
    static constexpr char const* kInputNames
        = "value, spatial_shapes, level_start_index, sampling_locations, attention_weights";
    static constexpr char const* kInputs[]
        = {"value", "spatial_shapes", "level_start_index", "sampling_locations", "attention_weights"};
    static constexpr int32_t kRanks[] = {4, 2, 1, 6, 5};
    static constexpr int32_t kFloat32Input = 3; // sampling_locations
    static constexpr char const* kFloat32Why = "sampling coordinates are never FP16";
    static constexpr bool kTypeErrorsByName = true;
    static std::vector<FieldValue> parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc);
    static Attrs attrs(std::vector<FieldValue> const& fields);
    static std::string validateAttrs(std::string const&, Attrs const&)
    {
        return "";
    }
};

class MsdaPlugin final : public Plugin<MsdaPlugin, MsdaTraits>
{
public:
    using Traits = MsdaTraits;
    using Plugin::Plugin;

    // value / attention_weights / Y: FP32 or FP16, one type; the index inputs INT32 or INT64, one type;
    // sampling_locations FP32.
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
        int32_t nbInputs) const noexcept override;

private:
    nvinfer1::DimsExprs outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const override;
    MsdaDims validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const override;
    int32_t launch(MsdaDims const& d, nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
        void* output, void* workspace, cudaStream_t stream) override;
};

using MsdaCreator = Creator<MsdaPlugin>;

} // namespace trt
} // namespace dcn
