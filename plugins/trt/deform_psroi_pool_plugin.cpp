#include "deform_psroi_pool_plugin.h"

#include "dcn_kernels.h"

namespace dcn {
namespace trt {

namespace {

DeformPSROIPoolAttrs attrsFromFields(std::vector<FieldValue> const& f)
{
    DeformPSROIPoolAttrs a;
    a.spatial_scale = static_cast<double>(f[kPS_SPATIAL_SCALE].f);
    a.output_dim = f[kPS_OUTPUT_DIM].ints.at(0);
    a.group_size = f[kPS_GROUP_SIZE].ints.at(0);
    a.pooled_size = f[kPS_POOLED_SIZE].ints.at(0);
    a.part_size = f[kPS_PART_SIZE].ints.at(0);
    a.sample_per_part = f[kPS_SAMPLE_PER_PART].ints.at(0);
    a.trans_std = static_cast<double>(f[kPS_TRANS_STD].f);
    a.no_trans = f[kPS_NO_TRANS].ints.at(0);
    return a;
}

} // namespace

DeformPSROIPoolPlugin::DeformPSROIPoolPlugin(std::string layerName, std::vector<FieldValue> fields)
    : PluginBase(kDeformPSROIPoolName, kDeformPSROIPoolFields, kPS_NUM_FIELDS, std::move(layerName), std::move(fields))
{
    mAttrs = attrsFromFields(mFields);
    std::string const e = validate_deform_psroi_pool_attrs(mLayerName, mAttrs);
    if (!e.empty())
    {
        throw PluginError(e);
    }
}

nvinfer1::IPluginV3* DeformPSROIPoolPlugin::clone() noexcept
{
    DCN_TRT_TRY
    {
        auto* p = new DeformPSROIPoolPlugin(mLayerName, mFields);
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

void DeformPSROIPoolPlugin::setShapes(nvinfer1::Dims const* dims, int32_t nbInputs)
{
    mDimsValid = false;
    mDims = validate(dims, nbInputs);
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        mShapes[i] = dims[i];
    }
    mDimsValid = true;
}

DeformPSROIPoolDims DeformPSROIPoolPlugin::validate(nvinfer1::Dims const* dims, int32_t nbInputs) const
{
    checkInputCount(nbInputs, 1);
    // trans: absent when not given or empty (rank 0); ignored with no_trans = 1 (the header)
    auto ref = [&](int32_t i) {
        return i < nbInputs && !(i == 2 && isEmptyInput(dims[i])) ? ShapeRef(dims[i].d, dims[i].nbDims) : ShapeRef();
    };
    DeformPSROIPoolDims d{};
    std::string const e = validate_deform_psroi_pool(mLayerName, mAttrs, ref(0), ref(1), ref(2), &d);
    if (!e.empty())
    {
        throw PluginError(e);
    }
    return d;
}

int32_t DeformPSROIPoolPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
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

int32_t DeformPSROIPoolPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept
{
    DCN_TRT_TRY
    {
        checkInputCount(nbInputs, nbOutputs);
        char const* names[] = {"data", "rois", "trans"};
        int32_t const ranks[] = {4, 2, 4};
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            // trans: any rank with no_trans = 1 (ignored), or empty (rank 0, absent)
            if (i == 2 && (mAttrs.no_trans != 0 || inputs[i].nbDims <= 0))
            {
                continue;
            }
            if (inputs[i].nbDims != ranks[i])
            {
                throw PluginError(who() + ": " + names[i] + " has rank " + std::to_string(inputs[i].nbDims)
                    + ", expected " + std::to_string(ranks[i]));
            }
        }
        nvinfer1::DimsExprs& y = outputs[0];
        y.nbDims = 4;
        y.d[0] = inputs[1].d[0]; // R: the RoI count, dynamic
        y.d[1] = exprBuilder.constant(mAttrs.output_dim);
        y.d[2] = exprBuilder.constant(mAttrs.pooled_size);
        y.d[3] = exprBuilder.constant(mAttrs.pooled_size);
        return 0;
    }
    DCN_TRT_CATCH(recorder(), who(), "getOutputShapes", return -1)
}

int32_t DeformPSROIPoolPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
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

nvinfer1::IPluginV3* DeformPSROIPoolPlugin::attachToContext(nvinfer1::IPluginResourceContext* context) noexcept
{
    DCN_TRT_TRY
    {
        auto* p = static_cast<DeformPSROIPoolPlugin*>(clone());
        if (p != nullptr)
        {
            p->setRecorder(context != nullptr ? context->getErrorRecorder() : nullptr);
        }
        return p;
    }
    DCN_TRT_CATCH(recorder(), who(), "attachToContext", return nullptr)
}

int32_t DeformPSROIPoolPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
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
        DeformPSROIPoolDims const& d = mDims;
        if (volume(outputDesc[0].dims) == 0)
        {
            return 0; // no RoIs: empty output
        }
        void const* trans = d.no_trans ? nullptr : inputs[2]; // no_trans: set when trans is absent, empty or ignored
        char const* names[] = {"data", "rois", "trans"};
        int32_t const nbUsed = d.no_trans ? 2 : 3;
        for (int32_t i = 0; i < nbUsed; ++i)
        {
            if (inputs[i] == nullptr)
            {
                throw PluginError(who() + ": " + names[i] + " has shape " + dimsToString(inputDesc[i].dims)
                    + " and a null device pointer, expected its data");
            }
        }
        cudaError_t e = cudaSuccess;
        switch (inputDesc[0].type)
        {
        case nvinfer1::DataType::kFLOAT:
            e = cuda::deform_psroi_pool<float>(static_cast<float const*>(inputs[0]),
                static_cast<float const*>(inputs[1]), static_cast<float const*>(trans), d,
                static_cast<float*>(outputs[0]), stream);
            break;
        case nvinfer1::DataType::kHALF:
            e = cuda::deform_psroi_pool<__half>(static_cast<__half const*>(inputs[0]),
                static_cast<float const*>(inputs[1]), static_cast<__half const*>(trans), d,
                static_cast<__half*>(outputs[0]), stream);
            break;
        default:
            throw PluginError(
                who() + ": data has type " + dataTypeName(inputDesc[0].type) + ", expected FP32 or FP16");
        }
        if (e != cudaSuccess)
        {
            reportError(recorder(),
                who() + ": deformable PS-RoI pooling kernel launch failed with " + cudaGetErrorName(e) + " ("
                    + cudaGetErrorString(e) + ") [enqueue]",
                nvinfer1::ErrorCode::kFAILED_EXECUTION);
            return static_cast<int32_t>(e);
        }
        return 0;
    }
    DCN_TRT_CATCH(recorder(), who(), "enqueue", return -1)
}

DeformPSROIPoolCreator::DeformPSROIPoolCreator()
    : mNames(kDeformPSROIPoolFields, kPS_NUM_FIELDS)
{
}

nvinfer1::IPluginV3* DeformPSROIPoolCreator::createPlugin(
    char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /*phase*/) noexcept
{
    std::string const layer = name != nullptr ? name : "";
    DCN_TRT_TRY
    {
        // One parse path for build (ONNX parser / user) and runtime (getFieldsToSerialize()).
        std::vector<FieldValue> fields
            = parseFields(kDeformPSROIPoolName, layer, kDeformPSROIPoolFields, kPS_NUM_FIELDS, fc);
        return new DeformPSROIPoolPlugin(layer, std::move(fields));
    }
    DCN_TRT_CATCH(nullptr, describe(kDeformPSROIPoolName, layer), "createPlugin", return nullptr)
}

} // namespace trt
} // namespace dcn
