// TensorRT plugin for dcn::DeformPSROIPool (shared/design/ops.md): IPluginV3 with
// IPluginV3OneCore/Build/Runtime (life cycle: Plugin<> in plugin_base.h), and its
// IPluginCreatorV3One creator "DeformPSROIPool" version "1", namespace "". Inputs data,
// rois[, trans], linear; data, trans and the output FP32 or FP16 (one type), rois always
// FP32 (coordinates never in half); output [R, output_dim, pooled_size, pooled_size] with R
// symbolic (dynamic RoI count).
#pragma once

#include "deform_psroi_pool_math.h"
#include "plugin_base.h"  // plugins/trt

namespace dcn {
namespace trt {

struct DeformPSROIPoolTraits
{
    using Attrs = DeformPSROIPoolAttrs;
    using Dims = DeformPSROIPoolDims;
    static char const* const kName; // the op's row of dcn_fields.h (defined beside parse)
    static FieldSpec const* const kFields;
    static constexpr int32_t kNbFields = kPS_NUM_FIELDS;
    static constexpr int32_t kMinInputs = 2;
    static constexpr int32_t kMaxInputs = 3;
    static constexpr char const* kInputNames = "data, rois[, trans]";
    static constexpr char const* kInputs[] = {"data", "rois", "trans"};
    static constexpr int32_t kRanks[] = {4, 2, 4};
    static constexpr int32_t kFloat32Input = 1; // rois
    static constexpr char const* kFloat32Why = "also in an FP16 layer";
    static constexpr bool kTypeErrorsByName = false; // "input 1 has type ..."
    // The one parse path (parseFields) for build and runtime fields.
    static std::vector<FieldValue> parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc);
    static Attrs attrs(std::vector<FieldValue> const& fields);
    static std::string validateAttrs(std::string const& layer, Attrs const& a)
    {
        return validate_deform_psroi_pool_attrs(layer, a);
    }
};

class DeformPSROIPoolPlugin final : public Plugin<DeformPSROIPoolPlugin, DeformPSROIPoolTraits>
{
public:
    using Traits = DeformPSROIPoolTraits;
    using Plugin::Plugin;

private:
    bool rankIgnored(int32_t index, int32_t rank) const override;
    nvinfer1::DimsExprs outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const override;
    DeformPSROIPoolDims validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const override;
    int32_t launch(DeformPSROIPoolDims const& d, nvinfer1::PluginTensorDesc const* inputDesc,
        void const* const* inputs, void* output, void* workspace, cudaStream_t stream) override;
};

using DeformPSROIPoolCreator = Creator<DeformPSROIPoolPlugin>;

} // namespace trt
} // namespace dcn
