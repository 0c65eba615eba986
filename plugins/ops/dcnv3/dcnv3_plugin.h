// TensorRT plugin for dcn::DCNv3 (InternImage): IPluginV3 with IPluginV3OneCore/Build/Runtime (life cycle:
// Plugin<> in plugins/trt/plugin_base.h) and its IPluginCreatorV3One creator "DCNv3" version "1", namespace
// "". Inputs X [N, H, W, C], offset [N, Ho, Wo, G*P*2], mask [N, Ho, Wo, G*P], linear, one type (FP32 or
// FP16: coordinates and sums in FP32); output [N, Ho, Wo, C] with N, H, W dynamic. Also what dcn::DCNv4's
// plugin (plugins/ops/dcnv4/dcnv4_plugin.h) shares: attributes from fields, the output shape expression,
// the launch.
#pragma once

#include "dcnv3_math.h"
#include "plugin_base.h"

namespace dcn {
namespace trt {

// The attributes of both ops from their parsed fields (kDCNv3Fields order).
DcnAttrs dcnAttrs(std::vector<FieldValue> const& fields);
// [N, Ho, Wo, C] from X's dimensions: Ho = (H + top + bottom - (dh*(kh-1) + 1)) / sh + 1 (floor), Wo alike.
nvinfer1::DimsExprs dcnOutputShape(DcnAttrs const& a, nvinfer1::DimsExprs const& x, nvinfer1::IExprBuilder& eb);
// The kernel (plugins/ops/dcnv3/dcnv3_kernels.h) on X's type; offset = mask = offset_mask for DCNv4.
// Returns the CUDA launch status (cudaSuccess: 0).
cudaError_t dcnLaunch(std::string const& who, DcnDims const& d, nvinfer1::DataType type, void const* x,
    void const* offset, void const* mask, void* y, cudaStream_t stream);

struct DCNv3Traits
{
    using Attrs = DcnAttrs;
    using Dims = DcnDims;
    static char const* const kName;
    static FieldSpec const* const kFields;
    static constexpr int32_t kNbFields = kDN_NUM_FIELDS;
    static constexpr int32_t kMinInputs = 3;
    static constexpr int32_t kMaxInputs = 3;
    static constexpr char const* kInputNames = "X, offset, mask";
    static constexpr char const* kInputs[] = {"X", "offset", "mask"};
    static constexpr int32_t kRanks[] = {4, 4, 4};
    static constexpr int32_t kFloat32Input = -1; // none: one type for all
    static constexpr char const* kFloat32Why = "";
    static constexpr bool kTypeErrorsByName = false;
    static std::vector<FieldValue> parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc);
    static Attrs attrs(std::vector<FieldValue> const& fields)
    {
        return dcnAttrs(fields);
    }
    static std::string validateAttrs(std::string const& layer, Attrs const& a)
    {
        return validate_dcn_attrs(kDCNv3Name, layer, a);
    }
};

class DCNv3Plugin final : public Plugin<DCNv3Plugin, DCNv3Traits>
{
public:
    using Traits = DCNv3Traits;
    using Plugin::Plugin;

private:
    nvinfer1::DimsExprs outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const override;
    DcnDims validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const override;
    int32_t launch(DcnDims const& d, nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
        void* output, void* workspace, cudaStream_t stream) override;
};

using DCNv3Creator = Creator<DCNv3Plugin>;
nvinfer1::IPluginCreatorInterface* dcnv3_creator(); // the process's one DCNv3 creator

} // namespace trt
} // namespace dcn
