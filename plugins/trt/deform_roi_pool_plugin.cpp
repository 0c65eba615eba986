#include "deform_roi_pool_plugin.h"

#include "dcn_roi_pool_kernels.h"

namespace dcn {
namespace trt {

namespace {

DeformRoIPoolAttrs attrsFromFields(std::vector<FieldValue> const& f)
{
    DeformRoIPoolAttrs a;
    a.pooled_height = f[kRP_POOLED_HEIGHT].ints.at(0);
    a.pooled_width = f[kRP_POOLED_WIDTH].ints.at(0);
    a.spatial_scale = static_cast<double>(f[kRP_SPATIAL_SCALE].f);
    a.sampling_ratio = f[kRP_SAMPLING_RATIO].ints.at(0);
    a.gamma = static_cast<double>(f[kRP_GAMMA].f);
    return a;
}

} // namespace

DeformRoIPoolPlugin::DeformRoIPoolPlugin(std::string layerName, std::vector<FieldValue> fields)
    : PluginBase(kDeformRoIPoolName, kDeformRoIPoolFields, kRP_NUM_FIELDS, std::move(layerName), std::move(fields))
{
    mAttrs = attrsFromFields(mFields);
    std::string const e = validate_deform_roi_pool_attrs(mLayerName, mAttrs);
    if (!e.empty())
    {
        throw PluginError(e);
    }
}

nvinfer1::IPluginV3* DeformRoIPoolPlugin::clone() noexcept
{
    DCN_TRT_TRY
    {
        auto* p = new DeformRoIPoolPlugin(mLayerName, mFields);
        p->setRecorder(recorder());
        p->mNbInputs = mNbInputs;
        p->mDims = mDims;
        p->mDimsValid = mDimsValid;
        for (int32_t i = 0; i < 3; ++i)
        {
            p->mShapes[i] = mShapes[i];
        }
        return p;
    }
    DCN_TRT_CATCH(recorder(), who(), "clone", return nullptr)
}

void DeformRoIPoolPlugin::setShapes(nvinfer1::Dims const* dims, int32_t nbInputs)
{
    mDimsValid = false;
    mDims = validate(dims, nbInputs);
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        mShapes[i] = dims[i];
    }
    mDimsValid = true;
}

DeformRoIPoolDims DeformRoIPoolPlugin::validate(nvinfer1::Dims const* dims, int32_t nbInputs) const
{
    checkInputCount(nbInputs, 1);
    auto ref = [&](int32_t i) { return i < nbInputs ? ShapeRef(dims[i].d, dims[i].nbDims) : ShapeRef(); };
    DeformRoIPoolDims d{};
    std::string const e = validate_deform_roi_pool(mLayerName, mAttrs, ref(0), ref(1), ref(2), &d);
    if (!e.empty())
    {
        throw PluginError(e);
    }
    return d;
}

int32_t DeformRoIPoolPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    DCN_TRT_TRY
    {
        checkInputCount(nbInputs, nbOutputs);
        mNbInputs = nbInputs;
        nvinfer1::Dims maxDims[3];
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            maxDims[i] = in[i].max;
            for (int32_t k = 0; k < maxDims[i].nbDims; ++k)
            {
                if (maxDims[i].d[k] < 0)
                {
                    logMessage(nvinfer1::ILogger::Severity::kVERBOSE,
                        who() + ": configurePlugin without max shape of input " + std::to_string(i) + " "
                            + dimsToString(maxDims[i]) + ", shapes checked at onShapeChange");
                    return 0;
                }
            }
        }
        (void) validate(maxDims, nbInputs);
        return 0;
    }
    DCN_TRT_CATCH(recorder(), who(), "configurePlugin", return -1)
}

int32_t DeformRoIPoolPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept
{
    DCN_TRT_TRY
    {
        checkInputCount(nbInputs, nbOutputs);
        char const* names[] = {"data", "rois", "offset"};
        int32_t const ranks[] = {4, 2, 4};
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            if (inputs[i].nbDims != ranks[i])
            {
                throw PluginError(who() + ": " + names[i] + " has rank " + std::to_string(inputs[i].nbDims)
                    + ", expected " + std::to_string(ranks[i]));
            }
        }
        nvinfer1::DimsExprs& y = outputs[0];
        y.nbDims = 4;
        y.d[0] = inputs[1].d[0]; // R: the RoI count, dynamic
        y.d[1] = inputs[0].d[1]; // C: data's channels
        y.d[2] = exprBuilder.constant(mAttrs.pooled_height);
        y.d[3] = exprBuilder.constant(mAttrs.pooled_width);
        return 0;
    }
    DCN_TRT_CATCH(recorder(), who(), "getOutputShapes", return -1)
}

int32_t DeformRoIPoolPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    DCN_TRT_TRY
    {
        checkInputCount(nbInputs, nbOutputs);
        mNbInputs = nbInputs;
        nvinfer1::Dims dims[3];
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            dims[i] = in[i].dims;
        }
        setShapes(dims, nbInputs);
        return 0;
    }
    DCN_TRT_CATCH(recorder(), who(), "onShapeChange", return -1)
}

nvinfer1::IPluginV3* DeformRoIPoolPlugin::attachToContext(nvinfer1::IPluginResourceContext* context) noexcept
{
    DCN_TRT_TRY
    {
        auto* p = static_cast<DeformRoIPoolPlugin*>(clone());
        if (p != nullptr)
        {
            p->setRecorder(context != nullptr ? context->getErrorRecorder() : nullptr);
        }
        return p;
    }
    DCN_TRT_CATCH(recorder(), who(), "attachToContext", return nullptr)
}

int32_t DeformRoIPoolPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs, void* const* outputs,
    void* /*workspace*/, cudaStream_t stream) noexcept
{
    DCN_TRT_TRY
    {
        if (mNbInputs < minInputs())
        {
            throw PluginError(who() + ": enqueue before onShapeChange, expected onShapeChange first");
        }
        // Shapes validated by the last onShapeChange; should these differ, validate them.
        bool same = mDimsValid;
        for (int32_t i = 0; same && i < mNbInputs; ++i)
        {
            same = sameDims(inputDesc[i].dims, mShapes[i]);
        }
        if (!same)
        {
            nvinfer1::Dims dims[3];
            for (int32_t i = 0; i < mNbInputs; ++i)
            {
                dims[i] = inputDesc[i].dims;
            }
            setShapes(dims, mNbInputs);
        }
        DeformRoIPoolDims const& d = mDims;
        if (volume(outputDesc[0].dims) == 0)
        {
            return 0; // no RoIs: empty output
        }
        void const* offset = mNbInputs >= 3 ? inputs[2] : nullptr;
        if (inputDesc[1].type != nvinfer1::DataType::kFLOAT)
        {
            throw PluginError(who() + ": rois has type " + dataTypeName(inputDesc[1].type) + ", expected FP32");
        }
        float const* rois = static_cast<float const*>(inputs[1]);
        cudaError_t e = cudaSuccess;
        switch (inputDesc[0].type)
        {
        case nvinfer1::DataType::kFLOAT:
            e = cuda::deform_roi_pool<float>(static_cast<float const*>(inputs[0]), rois,
                static_cast<float const*>(offset), d, static_cast<float*>(outputs[0]), stream);
            break;
        case nvinfer1::DataType::kHALF:
            e = cuda::deform_roi_pool<__half>(static_cast<__half const*>(inputs[0]), rois,
                static_cast<__half const*>(offset), d, static_cast<__half*>(outputs[0]), stream);
            break;
        default:
            throw PluginError(
                who() + ": data has type " + dataTypeName(inputDesc[0].type) + ", expected FP32 or FP16");
        }
        if (e != cudaSuccess)
        {
            reportError(recorder(),
                who() + ": deformable RoI pooling kernel launch failed with " + cudaGetErrorName(e) + " ("
                    + cudaGetErrorString(e) + ") [enqueue]",
                nvinfer1::ErrorCode::kFAILED_EXECUTION);
            return static_cast<int32_t>(e);
        }
        return 0;
    }
    DCN_TRT_CATCH(recorder(), who(), "enqueue", return -1)
}

int32_t DeformRoIPoolPlugin::getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
    nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    DCN_TRT_TRY
    {
        checkInputCount(nbInputs, nbOutputs);
        nvinfer1::DataType const t = inputTypes[0];
        if (t != nvinfer1::DataType::kFLOAT && t != nvinfer1::DataType::kHALF)
        {
            throw PluginError(who() + ": data has type " + dataTypeName(t) + ", expected FP32 or FP16");
        }
        if (inputTypes[1] != nvinfer1::DataType::kFLOAT)
        {
            throw PluginError(who() + ": rois has type " + dataTypeName(inputTypes[1])
                + ", expected FP32 (RoI coordinates are never FP16)");
        }
        if (nbInputs > 2 && inputTypes[2] != t)
        {
            throw PluginError(who() + ": offset has type " + dataTypeName(inputTypes[2]) + ", expected "
                + dataTypeName(t) + " like data");
        }
        outputTypes[0] = t;
        return 0;
    }
    DCN_TRT_CATCH(recorder(), who(), "getOutputDataTypes", return -1)
}

bool DeformRoIPoolPlugin::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (pos == 1 && pos < nbInputs + nbOutputs)
    {
        return inOut[1].desc.format == nvinfer1::TensorFormat::kLINEAR
            && inOut[1].desc.type == nvinfer1::DataType::kFLOAT;
    }
    return PluginBase::supportsFormatCombination(pos, inOut, nbInputs, nbOutputs);
}

DeformRoIPoolCreator::DeformRoIPoolCreator()
    : mNames(kDeformRoIPoolFields, kRP_NUM_FIELDS)
{
}

nvinfer1::IPluginV3* DeformRoIPoolCreator::createPlugin(
    char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /*phase*/) noexcept
{
    std::string const layer = name != nullptr ? name : "";
    DCN_TRT_TRY
    {
        // One parse path for build (ONNX parser / user) and runtime (getFieldsToSerialize()).
        std::vector<FieldValue> fields
            = parseFields(kDeformRoIPoolName, layer, kDeformRoIPoolFields, kRP_NUM_FIELDS, fc);
        return new DeformRoIPoolPlugin(layer, std::move(fields));
    }
    DCN_TRT_CATCH(nullptr, describe(kDeformRoIPoolName, layer), "createPlugin", return nullptr)
}

} // namespace trt
} // namespace dcn
