// TensorRT plugin for dcn::DeformConv2d (shared/design/ops.md): IPluginV3 with
// IPluginV3OneCore/Build/Runtime (life cycle: Plugin<> in plugin_base.h), and its
// IPluginCreatorV3One creator "DeformConv2d" version "1", namespace "". Inputs X, W, offset[, B[, mask]], linear FP32 or FP16.
// enqueue: for FP16 shapes the fused kernel takes (deform_conv2d_plan.h choose_path) one implicit-GEMM
// kernel on the tensor cores; otherwise bias broadcast, then per chunk of the batch a deformable im2col into the
// workspace (NCHW, or with DCN_DEFORM_CONV_IM2COL=nhwc for FP16 from a channels-last copy into tap-major
// columns: deform_conv2d_nhwc.h) and cuBLAS GEMMs (FP32 accumulation) on the execution context's shared cuBLAS
// handle (cublas_resource.h). An empty optional input (B or mask of rank 0, as TensorRT
// may pass for an ONNX input named "") counts as absent.
#pragma once

#include "cublas_resource.h"  // plugins/trt
#include "deform_conv2d_math.h"
#include "plugin_base.h"      // plugins/trt

namespace dcn {
namespace trt {

struct DeformConv2dTraits
{
    using Attrs = DeformConvAttrs;
    using Dims = DeformConvDims;
    static char const* const kName; // the op's row of dcn_fields.h (defined beside parse)
    static FieldSpec const* const kFields;
    static constexpr int32_t kNbFields = kDC_NUM_FIELDS;
    static constexpr int32_t kMinInputs = 3;
    static constexpr int32_t kMaxInputs = 5;
    static constexpr char const* kInputNames = "X, W, offset[, B[, mask]]";
    static constexpr char const* kInputs[] = {"X", "W", "offset", "B", "mask"};
    static constexpr int32_t kRanks[] = {4, 4, 4, 1, 4};
    static constexpr int32_t kFloat32Input = -1; // none: all inputs of one type
    static constexpr char const* kFloat32Why = "";
    static constexpr bool kTypeErrorsByName = false; // "input 2 has type ..."
    // The one parse path (parseFields) for build and runtime fields.
    static std::vector<FieldValue> parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc);
    static Attrs attrs(std::vector<FieldValue> const& fields);
    static std::string validateAttrs(std::string const& layer, Attrs const& a)
    {
        return validate_deform_conv2d_attrs(layer, a);
    }
};

class DeformConv2dPlugin final : public Plugin<DeformConv2dPlugin, DeformConv2dTraits>
{
public:
    using Traits = DeformConv2dTraits;
    using Plugin::Plugin;

    // IPluginV3OneBuild
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

private:
    bool rankIgnored(int32_t index, int32_t rank) const override;
    nvinfer1::DimsExprs outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const override;
    // Shapes by the common header, then the sizes cuBLAS takes as int.
    DeformConvDims validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const override;
    int32_t launch(DeformConvDims const& d, nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
        void* output, void* workspace, cudaStream_t stream) override;
    void copyTo(DeformConv2dPlugin& clone) const override;
    void attached(nvinfer1::IPluginResourceContext* context) override;
    void checkReady() const override;
    int64_t smCount() const noexcept;
    template <class T>
    int32_t run(DeformConvDims const& d, bool hasBias, void const* const* inputs, void* output, void* workspace,
        cudaStream_t stream);

    SharedCublas mCublas; // acquired by attachToContext (runtime clones only)
};

using DeformConv2dCreator = Creator<DeformConv2dPlugin>;

} // namespace trt
} // namespace dcn
