// TensorRT plugin for dcn::DeformConv2d (shared/design/ops.md): IPluginV3 with
// IPluginV3OneCore/Build/Runtime, and its IPluginCreatorV3One creator "DeformConv2d"
// version "1", namespace "". Inputs X, W, offset[, B[, mask]], linear FP32 or FP16.
// enqueue: bias broadcast, then per chunk of the batch a deformable im2col into the
// workspace and cuBLAS GEMMs (FP32 accumulation) on the execution context's shared cuBLAS
// handle (cublas_resource.h). An empty optional input (B or mask of rank 0, as TensorRT
// may pass for an ONNX input named "") counts as absent.
#pragma once

#include "dcn_math.h"
#include "cublas_resource.h"
#include "plugin_base.h"

namespace dcn {
namespace trt {

class DeformConv2dPlugin final : public PluginBase
{
public:
    // fields: parsed by parseFields(kDeformConv2dFields); validated here (throws PluginError).
    DeformConv2dPlugin(std::string layerName, std::vector<FieldValue> fields);
    ~DeformConv2dPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;

protected:
    int32_t minInputs() const noexcept override
    {
        return 3;
    }
    int32_t maxInputs() const noexcept override
    {
        return 5;
    }
    char const* inputNames() const noexcept override
    {
        return "X, W, offset[, B[, mask]]";
    }

private:
    // Validates shapes (dims of every input, none -1) with the common header; throws.
    DeformConvDims validate(nvinfer1::Dims const* dims, int32_t nbInputs) const;
    // validate() and remember the shapes and dims for enqueue.
    void setShapes(nvinfer1::Dims const* dims, int32_t nbInputs);
    template <class T>
    int32_t run(DeformConvDims const& d, bool hasBias, void const* const* inputs, void* output, void* workspace,
        cudaStream_t stream);
    DeformConvAttrs mAttrs;
    SharedCublas mCublas; // acquired by attachToContext (runtime clones only)
    // Dims validated by onShapeChange for the current input shapes.
    DeformConvDims mDims{};
    nvinfer1::Dims mShapes[5]{};
    bool mDimsValid{false};
    bool mHasBias{false}; // B given and not empty (current shapes)
    int32_t mNbInputs{0}; // seen by configurePlugin / onShapeChange (enqueue gets none)
};

class DeformConv2dCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    DeformConv2dCreator();
    char const* getPluginName() const noexcept override
    {
        return kDeformConv2dName;
    }
    char const* getPluginVersion() const noexcept override
    {
        return kPluginVersion;
    }
    char const* getPluginNamespace() const noexcept override
    {
        return kPluginNamespace;
    }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override
    {
        return mNames.collection();
    }
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

private:
    FieldNames mNames;
};

} // namespace trt
} // namespace dcn
