// TensorRT plugin for dcn::DCNv4 (FlashInternImage): IPluginV3 (life cycle: Plugin<> in plugins/trt/
// plugin_base.h) and its creator "DCNv4" version "1", namespace "". Inputs X [N, H, W, C] and offset_mask
// [N, Ho, Wo, K >= G*P*3] (per group P (dx, dy) pairs then P raw masks), linear, one type (FP32 or FP16:
// coordinates and sums in FP32); output [N, Ho, Wo, C], N, H, W dynamic. Attributes, output shape and
// launch are DCNv3's (plugins/ops/dcnv3/dcnv3_plugin.h): one kernel, offsets and masks read from one tensor.
#pragma once

#include "dcnv3_plugin.h"

namespace dcn {
namespace trt {

struct DCNv4Traits
{
    using Attrs = DcnAttrs;
    using Dims = DcnDims;
    static char const* const kName;
    static FieldSpec const* const kFields;
    static constexpr int32_t kNbFields = kDN_NUM_FIELDS;
    static constexpr int32_t kMinInputs = 2;
    static constexpr int32_t kMaxInputs = 2;
    static constexpr char const* kInputNames = "X, offset_mask";
    static constexpr char const* kInputs[] = {"X", "offset_mask"};
    static constexpr int32_t kRanks[] = {4, 4};
    static constexpr int32_t kFloat32Input = -1;
    static constexpr char const* kFloat32Why = "";
    static constexpr bool kTypeErrorsByName = false;
    static std::vector<FieldValue> parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc);
    static Attrs attrs(std::vector<FieldValue> const& fields)
    {
        return dcnAttrs(fields);
    }
    static std::string validateAttrs(std::string const& layer, Attrs const& a)
    {
        return validate_dcn_attrs(kDCNv4Name, layer, a);
    }
};

class DCNv4Plugin final : public Plugin<DCNv4Plugin, DCNv4Traits>
{
public:
    using Traits = DCNv4Traits;
    using Plugin::Plugin;

private:
    nvinfer1::DimsExprs outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const override;
    DcnDims validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const override;
    int32_t launch(DcnDims const& d, nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
        void* output, void* workspace, cudaStream_t stream) override;
};

using DCNv4Creator = Creator<DCNv4Plugin>;
nvinfer1::IPluginCreatorInterface* dcnv4_creator(); // the process's one DCNv4 creator

} // namespace trt
} // namespace dcn
