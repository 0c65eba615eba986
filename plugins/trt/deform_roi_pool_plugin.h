// TensorRT plugin for dcn::DeformRoIPool (mmcv's deformable RoI pooling; docs/deform_roi_pool.md):
// IPluginV3 with IPluginV3OneCore/Build/Runtime, and its IPluginCreatorV3One creator "DeformRoIPool"
// version "1", namespace "". Inputs data, rois[, offset], linear; data / offset / output FP32 or FP16,
// rois FP32 always (coordinates never in half); output [R, C, pooled_height, pooled_width] with R
// symbolic (dynamic RoI count). Follows deform_psroi_pool_plugin.* (same PluginBase life cycle).
#pragma once

#include "dcn_math.h"
#include "plugin_base.h"

namespace dcn {
namespace trt {

class DeformRoIPoolPlugin final : public PluginBase
{
public:
    DeformRoIPoolPlugin(std::string layerName, std::vector<FieldValue> fields);
    ~DeformRoIPoolPlugin() override = default;

    nvinfer1::IPluginV3* clone() noexcept override;

    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    // data / offset / output FP32 or FP16 (one type), rois FP32.
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
        int32_t nbInputs) const noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
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
        return "data, rois[, offset]";
    }

private:
    // Validates shapes (dims of every input, none -1) with the common header; throws.
    DeformRoIPoolDims validate(nvinfer1::Dims const* dims, int32_t nbInputs) const;
    // validate() and remember the shapes and dims for enqueue.
    void setShapes(nvinfer1::Dims const* dims, int32_t nbInputs);

    DeformRoIPoolAttrs mAttrs;
    int32_t mNbInputs{0}; // seen by configurePlugin / onShapeChange (enqueue gets none)
    DeformRoIPoolDims mDims{};
    nvinfer1::Dims mShapes[3]{};
    bool mDimsValid{false};
};

class DeformRoIPoolCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    DeformRoIPoolCreator();
    char const* getPluginName() const noexcept override
    {
        return kDeformRoIPoolName;
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
