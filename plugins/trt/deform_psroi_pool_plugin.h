// TensorRT plugin for dcn::DeformPSROIPool (shared/design/ops.md): IPluginV3 with
// IPluginV3OneCore/Build/Runtime, and its IPluginCreatorV3One creator "DeformPSROIPool"
// version "1", namespace "". Inputs data, rois[, trans], linear; data, trans and the output
// FP32 or FP16 (one type), rois always FP32 (coordinates never in half); output
// [R, output_dim, pooled_size, pooled_size] with R symbolic (dynamic RoI count).
#pragma once

#include "dcn_math.h"
#include "plugin_base.h"

namespace dcn {
namespace trt {

class DeformPSROIPoolPlugin final : public PluginBase
{
public:
    DeformPSROIPoolPlugin(std::string layerName, std::vector<FieldValue> fields);
    ~DeformPSROIPoolPlugin() override = default;

    nvinfer1::IPluginV3* clone() noexcept override;

    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
        nvinfer1::DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept override
    {
        return 0;
    }

    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;

protected:
    int32_t minInputs() const noexcept override
    {
        return 2;
    }
    int32_t maxInputs() const noexcept override
    {
        return 3;
    }
    char const* inputNames() const noexcept override
    {
        return "data, rois[, trans]";
    }
    bool isFloat32Input(int32_t index) const noexcept override
    {
        return index == 1; // rois
    }

private:
    // Validates shapes (dims of every input, none -1) with the common header; throws.
    DeformPSROIPoolDims validate(nvinfer1::Dims const* dims, int32_t nbInputs) const;
    // validate() and remember the shapes and dims for enqueue.
    void setShapes(nvinfer1::Dims const* dims, int32_t nbInputs);

    DeformPSROIPoolAttrs mAttrs;
    int32_t mNbInputs{0}; // seen by configurePlugin / onShapeChange (enqueue gets none)
    DeformPSROIPoolDims mDims{};
    nvinfer1::Dims mShapes[3]{};
    bool mDimsValid{false};
};

class DeformPSROIPoolCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    DeformPSROIPoolCreator();
    char const* getPluginName() const noexcept override
    {
        return kDeformPSROIPoolName;
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
