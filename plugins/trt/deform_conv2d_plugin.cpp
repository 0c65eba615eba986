#include "deform_conv2d_plugin.h"

#include "dcn_conv_plan.h"
#include "dcn_kernels.h"
#include "dcn_math.h"

#include <climits>
#include <type_traits>

namespace dcn {
namespace trt {

namespace {

DeformConvAttrs attrsFromFields(std::vector<FieldValue> const& f)
{
    auto ints = [&](int32_t k) { return std::vector<int64_t>(f[k].ints.begin(), f[k].ints.end()); };
    DeformConvAttrs a;
    a.strides = ints(kDC_STRIDES);
    a.pads = ints(kDC_PADS);
    a.dilations = ints(kDC_DILATIONS);
    a.group = f[kDC_GROUP].ints.at(0);
    a.offset_group = f[kDC_OFFSET_GROUP].ints.at(0);
    if (f[kDC_KERNEL_SHAPE].present)
    {
        a.kernel_shape = ints(kDC_KERNEL_SHAPE);
    }
    return a;
}

// floor((size + padBegin + padEnd - dilation*(kernel-1) - 1) / stride) + 1 as an expression.
nvinfer1::IDimensionExpr const* convOutExpr(nvinfer1::IExprBuilder& eb, nvinfer1::IDimensionExpr const* size,
    nvinfer1::IDimensionExpr const* kernel, int64_t padBegin, int64_t padEnd, int64_t dilation, int64_t stride)
{
    using Op = nvinfer1::DimensionOperation;
    nvinfer1::IDimensionExpr const* num = nullptr;
    if (kernel->isConstant())
    {
        int64_t const c = padBegin + padEnd - dilation * (kernel->getConstantValue() - 1) - 1;
        num = c >= 0 ? eb.operation(Op::kSUM, *size, *eb.constant(c)) : eb.operation(Op::kSUB, *size, *eb.constant(-c));
    }
    else
    {
        // size + padBegin + padEnd + dilation - 1 - dilation*kernel   (all constants >= 0 except the last term)
        auto const* plus = eb.operation(Op::kSUM, *size, *eb.constant(padBegin + padEnd + dilation));
        auto const* minusOne = eb.operation(Op::kSUB, *plus, *eb.constant(1));
        auto const* dk = eb.operation(Op::kPROD, *kernel, *eb.constant(dilation));
        num = eb.operation(Op::kSUB, *minusOne, *dk);
    }
    auto const* q = eb.operation(Op::kFLOOR_DIV, *num, *eb.constant(stride));
    return eb.operation(Op::kSUM, *q, *eb.constant(1));
}

std::string cudaMessage(cudaError_t e)
{
    return std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")";
}

} // namespace

// ---- plugin ------------------------------------------------------------------------

DeformConv2dPlugin::DeformConv2dPlugin(std::string layerName, std::vector<FieldValue> fields)
    : PluginBase(kDeformConv2dName, kDeformConv2dFields, kDC_NUM_FIELDS, std::move(layerName), std::move(fields))
{
    mAttrs = attrsFromFields(mFields);
    std::string const e = validate_deform_conv2d_attrs(mLayerName, mAttrs);
    if (!e.empty())
    {
        throw PluginError(e);
    }
}

nvinfer1::IPluginV3* DeformConv2dPlugin::clone() noexcept
{
    DCN_TRT_TRY
    {
        auto* p = new DeformConv2dPlugin(mLayerName, mFields);
        p->setRecorder(recorder());
        p->mDims = mDims;
        for (int32_t i = 0; i < 5; ++i)
        {
            p->mShapes[i] = mShapes[i];
        }
        p->mDimsValid = mDimsValid;
        p->mHasBias = mHasBias;
        p->mNbInputs = mNbInputs;
        p->mCublas.share(mCublas); // a clone of an attached plugin uses its context's handle too
        return p; // else none: attachToContext acquires the context's
    }
    DCN_TRT_CATCH(recorder(), who(), "clone", return nullptr)
}

void DeformConv2dPlugin::setShapes(nvinfer1::Dims const* dims, int32_t nbInputs)
{
    mDimsValid = false;
    mDims = validate(dims, nbInputs);
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        mShapes[i] = dims[i];
    }
    mHasBias = nbInputs > 3 && !isEmptyInput(dims[3]);
    mDimsValid = true;
}

DeformConvDims DeformConv2dPlugin::validate(nvinfer1::Dims const* dims, int32_t nbInputs) const
{
    checkInputCount(nbInputs, 1);
    // B and mask: absent when not given or empty (rank 0)
    auto ref = [&](int32_t i) {
        return i < nbInputs && !(i >= 3 && isEmptyInput(dims[i])) ? ShapeRef(dims[i].d, dims[i].nbDims) : ShapeRef();
    };
    DeformConvDims d{};
    std::string const e = validate_deform_conv2d(mLayerName, mAttrs, ref(0), ref(1), ref(2), ref(3), ref(4), &d);
    if (!e.empty())
    {
        throw PluginError(e);
    }
    // cuBLAS takes int sizes and counts.
    int64_t const L = d.outH * d.outW;
    int64_t const Kg = d.C / d.group * d.kH * d.kW;
    struct
    {
        char const* what;
        int64_t v;
    } const sizes[] = {{"oH*oW", L}, {"C/group*kH*kW", Kg}, {"M/group", d.M / d.group}, {kDeformConv2dFields[kDC_GROUP].name, d.group}};
    for (auto const& s : sizes)
    {
        if (s.v > INT_MAX)
        {
            throw PluginError(who() + ": " + s.what + " = " + std::to_string(s.v) + ", expected <= "
                + std::to_string(INT_MAX) + " (cuBLAS int sizes)");
        }
    }
    return d;
}

int32_t DeformConv2dPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    DCN_TRT_TRY
    {
        checkInputCount(nbInputs, nbOutputs);
        mNbInputs = nbInputs;
        // Validate at the profile's largest shapes (all known here).
        nvinfer1::Dims maxDims[5];
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
        (void) out;
        return 0;
    }
    DCN_TRT_CATCH(recorder(), who(), "configurePlugin", return -1)
}

int32_t DeformConv2dPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept
{
    DCN_TRT_TRY
    {
        checkInputCount(nbInputs, nbOutputs);
        char const* names[] = {"X", "W", "offset", "B", "mask"};
        int32_t const ranks[] = {4, 4, 4, 1, 4};
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            if (inputs[i].nbDims != ranks[i] && !(i >= 3 && inputs[i].nbDims <= 0)) // B, mask: may be empty
            {
                throw PluginError(who() + ": " + names[i] + " has rank " + std::to_string(inputs[i].nbDims)
                    + ", expected " + std::to_string(ranks[i]));
            }
        }
        nvinfer1::DimsExprs& y = outputs[0];
        y.nbDims = 4;
        y.d[0] = inputs[0].d[0];  // N
        y.d[1] = inputs[1].d[0];  // M
        y.d[2] = convOutExpr(exprBuilder, inputs[0].d[2], inputs[1].d[2], mAttrs.pads[0], mAttrs.pads[2],
            mAttrs.dilations[0], mAttrs.strides[0]);
        y.d[3] = convOutExpr(exprBuilder, inputs[0].d[3], inputs[1].d[3], mAttrs.pads[1], mAttrs.pads[3],
            mAttrs.dilations[1], mAttrs.strides[1]);
        return 0;
    }
    DCN_TRT_CATCH(recorder(), who(), "getOutputShapes", return -1)
}

size_t DeformConv2dPlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    DCN_TRT_TRY
    {
        nvinfer1::Dims maxDims[5];
        for (int32_t i = 0; i < nbInputs && i < 5; ++i)
        {
            maxDims[i] = inputs[i].max;
        }
        DeformConvDims const d = validate(maxDims, nbInputs);
        int64_t es = elementSize(inputs[0].desc.type);
        es = es == 0 ? 4 : es;
        return static_cast<size_t>(plan::workspace_bytes(plan::columns_per_image(d) * es, d.N));
    }
    DCN_TRT_CATCH(recorder(), who(), "getWorkspaceSize", return 0)
}

int32_t DeformConv2dPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    DCN_TRT_TRY
    {
        checkInputCount(nbInputs, nbOutputs);
        nvinfer1::Dims dims[5];
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            dims[i] = in[i].dims;
        }
        mNbInputs = nbInputs;
        setShapes(dims, nbInputs);
        return 0;
    }
    DCN_TRT_CATCH(recorder(), who(), "onShapeChange", return -1)
}

nvinfer1::IPluginV3* DeformConv2dPlugin::attachToContext(nvinfer1::IPluginResourceContext* context) noexcept
{
    DCN_TRT_TRY
    {
        auto* p = static_cast<DeformConv2dPlugin*>(clone());
        if (p == nullptr)
        {
            return nullptr;
        }
        p->setRecorder(context != nullptr ? context->getErrorRecorder() : nullptr);
        // The context's shared cuBLAS handle (TensorRT 11 hands plugins none), created here on
        // first use, outside enqueue and any CUDA graph capture. A failure is reported by
        // enqueue, which never creates one.
        p->mCublas.acquire(context);
        if (p->mCublas.handle() == nullptr)
        {
            logMessage(nvinfer1::ILogger::Severity::kWARNING,
                who() + ": cublasCreate failed with " + cublasGetStatusName(p->mCublas.status())
                    + " in attachToContext; enqueue will fail");
        }
        return p;
    }
    DCN_TRT_CATCH(recorder(), who(), "attachToContext", return nullptr)
}

template <class T>
int32_t DeformConv2dPlugin::run(DeformConvDims const& d, bool hasBias, void const* const* inputs, void* output,
    void* workspace, cudaStream_t stream)
{
    T const* X = static_cast<T const*>(inputs[0]);
    T const* W = static_cast<T const*>(inputs[1]);
    T const* offset = static_cast<T const*>(inputs[2]);
    T const* B = hasBias ? static_cast<T const*>(inputs[3]) : nullptr;
    T const* mask = d.hasMask ? static_cast<T const*>(inputs[4]) : nullptr;
    T* Y = static_cast<T*>(output);

    int64_t const perImage = plan::columns_per_image(d) * static_cast<int64_t>(sizeof(T));
    int64_t const chunk = plan::chunk_images(perImage, d.N);
    // Columns and cuBLAS workspace from the first 256-byte aligned byte (getWorkspaceSize asked for the slack).
    char* const base = static_cast<char*>(workspace) + plan::base_padding(reinterpret_cast<uintptr_t>(workspace));
    T* col = reinterpret_cast<T*>(base);
    void* cublasWs = base + plan::cublas_workspace_offset(perImage, d.N);

    auto cudaFail = [&](char const* what, cudaError_t e) {
        reportError(recorder(), who() + ": " + what + " failed with " + cudaMessage(e) + " [enqueue]",
            nvinfer1::ErrorCode::kFAILED_EXECUTION);
        return static_cast<int32_t>(e);
    };
    auto blasFail = [&](char const* what, cublasStatus_t st) {
        reportError(recorder(), who() + ": " + what + " failed with " + cublasGetStatusName(st) + " ("
                + cublasGetStatusString(st) + ") [enqueue]",
            nvinfer1::ErrorCode::kFAILED_EXECUTION);
        return static_cast<int32_t>(st);
    };

    cublasHandle_t const blas = mCublas.handle();
    if (blas == nullptr)
    {
        return blasFail("cublasCreate (attachToContext)", mCublas.status());
    }
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    if ((st = cublasSetStream(blas, stream)) != CUBLAS_STATUS_SUCCESS)
    {
        return blasFail("cublasSetStream", st);
    }
    if ((st = cublasSetWorkspace(blas, cublasWs, static_cast<size_t>(plan::kCublasWorkspaceBytes)))
        != CUBLAS_STATUS_SUCCESS)
    {
        return blasFail("cublasSetWorkspace", st);
    }

    float const alpha = 1.F;
    float beta = 0.F;
    if (B != nullptr)
    {
        cudaError_t const e = cuda::fill_bias<T>(B, d, Y, stream);
        if (e != cudaSuccess)
        {
            return cudaFail("bias broadcast kernel launch", e);
        }
        beta = 1.F;
    }
    cudaDataType_t const dt = std::is_same<T, float>::value ? CUDA_R_32F : CUDA_R_16F;
    int64_t const outImage = d.M * d.outH * d.outW;
    for (int64_t n0 = 0; n0 < d.N; n0 += chunk)
    {
        int64_t const nb = d.N - n0 < chunk ? d.N - n0 : chunk;
        cudaError_t const e = cuda::deform_im2col<T>(X, offset, mask, d, n0, nb, col, stream);
        if (e != cudaSuccess)
        {
            return cudaFail("deformable im2col kernel launch", e);
        }
        T* Yc = Y + n0 * outImage;
        plan::for_each_gemm(d, nb, [&](plan::Gemm const& g) {
            if (st != CUBLAS_STATUS_SUCCESS)
            {
                return;
            }
            st = cublasGemmStridedBatchedEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(g.m),
                static_cast<int>(g.n), static_cast<int>(g.k), &alpha, col + g.a, dt, static_cast<int>(g.lda),
                g.strideA, W + g.b, dt, static_cast<int>(g.ldb), g.strideB, &beta, Yc + g.c, dt,
                static_cast<int>(g.ldc), g.strideC, static_cast<int>(g.count), CUBLAS_COMPUTE_32F,
                CUBLAS_GEMM_DEFAULT);
        });
        if (st != CUBLAS_STATUS_SUCCESS)
        {
            return blasFail("cublasGemmStridedBatchedEx", st);
        }
    }
    return 0;
}

int32_t DeformConv2dPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs, void* const* outputs, void* workspace,
    cudaStream_t stream) noexcept
{
    DCN_TRT_TRY
    {
        // enqueue gets no input count: it is the one onShapeChange saw (B present with 4+
        // inputs, mask with 5). Shapes are those of the last onShapeChange; should they
        // differ, validate these.
        if (mNbInputs < minInputs())
        {
            throw PluginError(who() + ": enqueue before onShapeChange, expected onShapeChange first");
        }
        if (!mCublas.acquired())
        {
            throw PluginError(who() + ": enqueue before attachToContext, expected attachToContext first");
        }
        bool same = mDimsValid;
        for (int32_t i = 0; same && i < mNbInputs; ++i)
        {
            same = sameDims(inputDesc[i].dims, mShapes[i]);
        }
        if (!same)
        {
            nvinfer1::Dims dims[5];
            for (int32_t i = 0; i < mNbInputs; ++i)
            {
                dims[i] = inputDesc[i].dims;
            }
            setShapes(dims, mNbInputs);
        }
        DeformConvDims const& d = mDims;
        if (volume(outputDesc[0].dims) == 0)
        {
            return 0; // empty batch or output: nothing to do
        }
        bool const hasBias = mHasBias;
        char const* names[] = {"X", "W", "offset", "B", "mask"};
        bool const used[] = {true, true, true, hasBias, d.hasMask};
        for (int32_t i = 0; i < mNbInputs; ++i)
        {
            if (used[i] && inputs[i] == nullptr)
            {
                throw PluginError(who() + ": " + names[i] + " has shape " + dimsToString(inputDesc[i].dims)
                    + " and a null device pointer, expected its data");
            }
        }
        switch (inputDesc[0].type)
        {
        case nvinfer1::DataType::kFLOAT: return run<float>(d, hasBias, inputs, outputs[0], workspace, stream);
        case nvinfer1::DataType::kHALF: return run<__half>(d, hasBias, inputs, outputs[0], workspace, stream);
        default: break;
        }
        throw PluginError(who() + ": X has type " + dataTypeName(inputDesc[0].type) + ", expected FP32 or FP16");
    }
    DCN_TRT_CATCH(recorder(), who(), "enqueue", return -1)
}

// ---- creator -----------------------------------------------------------------------

DeformConv2dCreator::DeformConv2dCreator()
    : mNames(kDeformConv2dFields, kDC_NUM_FIELDS)
{
}

nvinfer1::IPluginV3* DeformConv2dCreator::createPlugin(
    char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /*phase*/) noexcept
{
    std::string const layer = name != nullptr ? name : "";
    DCN_TRT_TRY
    {
        // One parse path for the build phase (ONNX parser / user fields) and the runtime
        // phase (the fields getFieldsToSerialize() wrote).
        std::vector<FieldValue> fields = parseFields(kDeformConv2dName, layer, kDeformConv2dFields, kDC_NUM_FIELDS, fc);
        return new DeformConv2dPlugin(layer, std::move(fields));
    }
    DCN_TRT_CATCH(nullptr, describe(kDeformConv2dName, layer), "createPlugin", return nullptr)
}

} // namespace trt
} // namespace dcn
