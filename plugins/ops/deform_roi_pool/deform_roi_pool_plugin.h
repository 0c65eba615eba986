// TensorRT plugin for dcn::DeformRoIPool (mmcv's deformable RoI pooling; docs/deform_roi_pool.md):
// IPluginV3 with IPluginV3OneCore/Build/Runtime (life cycle: Plugin<> in plugin_base.h), and
// its IPluginCreatorV3One creator "DeformRoIPool" version "1", namespace "". Inputs data,
// rois[, offset], linear; data / offset / output FP32 or FP16, rois FP32 always (coordinates
// never in half); output [R, C, pooled_height, pooled_width] with R symbolic (dynamic RoI count).
#pragma once

#include "deform_roi_pool_math.h"
#include "plugin_base.h"  // plugins/trt

namespace dcn {
namespace trt {

struct DeformRoIPoolTraits
{
    using Attrs = DeformRoIPoolAttrs;
    using Dims = DeformRoIPoolDims;
    static char const* const kName; // the op's row of dcn_fields.h (defined beside parse)
    static FieldSpec const* const kFields;
    static constexpr int32_t kNbFields = kRP_NUM_FIELDS;
    static constexpr int32_t kMinInputs = 2;
    static constexpr int32_t kMaxInputs = 3;
    static constexpr char const* kInputNames = "data, rois[, offset]";
    static constexpr char const* kInputs[] = {"data", "rois", "offset"};
    static constexpr int32_t kRanks[] = {4, 2, 4};
    static constexpr int32_t kFloat32Input = 1; // rois
    static constexpr char const* kFloat32Why = "RoI coordinates are never FP16";
    static constexpr bool kTypeErrorsByName = true; // "rois has type ..."
    // The one parse path (parseFields) for build and runtime fields.
    static std::vector<FieldValue> parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc);
    static Attrs attrs(std::vector<FieldValue> const& fields);
    static std::string validateAttrs(std::string const& layer, Attrs const& a)
    {
        return validate_deform_roi_pool_attrs(layer, a);
    }
};

class DeformRoIPoolPlugin final : public Plugin<DeformRoIPoolPlugin, DeformRoIPoolTraits>
{
public:
    using Traits = DeformRoIPoolTraits;
    using Plugin::Plugin;

private:
    nvinfer1::DimsExprs outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const override;
    DeformRoIPoolDims validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const override;
    bool rankIgnored(int32_t index, int32_t rank) const override;
    int32_t launch(DeformRoIPoolDims const& d, nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
        void* output, void* workspace, cudaStream_t stream) override;
};

using DeformRoIPoolCreator = Creator<DeformRoIPoolPlugin>;

} // namespace trt
} // namespace dcn
