#include "deform_conv2d_plugin.h"

#include "deform_conv2d_kernels.h"
#include "deform_conv2d_plan.h"
#include "plugin_ops.h"  // plugins/trt

#include <climits>
#include <type_traits>

namespace dcn {
namespace trt {

char const* const DeformConv2dTraits::kName = kDeformConv2dName;
FieldSpec const* const DeformConv2dTraits::kFields = kDeformConv2dFields;

std::vector<FieldValue> DeformConv2dTraits::parse(std::string const& layer, nvinfer1::PluginFieldCollection const* fc)
{
    return parseFields(kDeformConv2dName, layer, kDeformConv2dFields, kDC_NUM_FIELDS, fc);
}

DeformConvAttrs DeformConv2dTraits::attrs(std::vector<FieldValue> const& f)
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

namespace {

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

} // namespace

// ---- plugin ------------------------------------------------------------------------

void DeformConv2dPlugin::copyTo(DeformConv2dPlugin& clone) const
{
    clone.mCublas.share(mCublas); // a clone of an attached plugin uses its context's handle too
    // else none: attachToContext acquires the context's
}

DeformConvDims DeformConv2dPlugin::validateShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const
{
    // B and mask: absent when not given or empty (rank 0)
    auto ref = [&](int32_t i) { return inputShape(dims, nbInputs, i, i >= 3); };
    DeformConvDims d{};
    throwIfError(validate_deform_conv2d(mLayerName, mAttrs, ref(0), ref(1), ref(2), ref(3), ref(4), &d));
    // cuBLAS takes int sizes and counts; the staged output's copy (cudaMemcpy2DAsync) pitches in
    // bytes up to INT_MAX (cudaDevAttrMaxPitch), float's 4 bytes the most.
    int64_t const Kg = d.C / d.group * d.kH * d.kW;
    struct
    {
        char const* what;
        int64_t v;
    } const sizes[] = {{"oH*oW (rounded up to 16 bytes)", plan::im2col_layout(d, 2).ld},
        {"oH*oW (rounded up to 16 bytes) * 4 bytes, the staged output's pitch", plan::im2col_layout(d, 4).ld * 4},
        {"C/group*kH*kW", Kg}, {"M/group", d.M / d.group}, {kDeformConv2dFields[kDC_GROUP].name, d.group}};
    for (auto const& s : sizes)
    {
        if (s.v > INT_MAX)
        {
            throw PluginError(who() + ": " + s.what + " = " + std::to_string(s.v) + ", expected <= "
                + std::to_string(INT_MAX) + " (cuBLAS int sizes, the 2-D copy's pitch)");
        }
    }
    return d;
}

bool DeformConv2dPlugin::rankIgnored(int32_t index, int32_t rank) const
{
    return index >= 3 && rank <= 0; // B, mask: may be empty
}

nvinfer1::DimsExprs DeformConv2dPlugin::outputShape(nvinfer1::DimsExprs const* inputs, nvinfer1::IExprBuilder& eb) const
{
    nvinfer1::DimsExprs y{};
    y.nbDims = 4;
    y.d[0] = inputs[0].d[0]; // N
    y.d[1] = inputs[1].d[0]; // M
    y.d[2] = convOutExpr(
        eb, inputs[0].d[2], inputs[1].d[2], mAttrs.pads[0], mAttrs.pads[2], mAttrs.dilations[0], mAttrs.strides[0]);
    y.d[3] = convOutExpr(
        eb, inputs[0].d[3], inputs[1].d[3], mAttrs.pads[1], mAttrs.pads[3], mAttrs.dilations[1], mAttrs.strides[1]);
    return y;
}

size_t DeformConv2dPlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    DCN_TRT_TRY
    {
        DeformConvDims const d = validate(maxDimsOf(inputs, nbInputs).data(), nbInputs);
        int64_t es = elementSize(inputs[0].desc.type);
        es = es == 0 ? 4 : es;
        return static_cast<size_t>(plan::conv_workspace_bytes(d, es, plan::kColumnsCapBytes,
            inputs[0].min.nbDims == 4 ? plan::min_out_area(d, inputs[0].min.d[2], inputs[0].min.d[3]) : 0));
    }
    DCN_TRT_CATCH(recorder(), who(), "getWorkspaceSize", return 0)
}

void DeformConv2dPlugin::attached(nvinfer1::IPluginResourceContext* context)
{
    // The context's shared cuBLAS handle (TensorRT 11 hands plugins none), created here on
    // first use, outside enqueue and any CUDA graph capture. A failure is reported by
    // enqueue, which never creates one.
    mCublas.acquire(context);
    if (mCublas.handle() == nullptr)
    {
        logMessage(nvinfer1::ILogger::Severity::kWARNING,
            who() + ": cublasCreate failed with " + cublasGetStatusName(mCublas.status())
                + " in attachToContext; enqueue will fail");
    }
}

int64_t DeformConv2dPlugin::smCount() const noexcept
{
    // The current device's SM count (the plan sends the smallest problems to im2col); 0 when
    // the runtime cannot say, which leaves the choice to the shape alone.
    int device = 0;
    int count = 0;
    if (cudaGetDevice(&device) != cudaSuccess
        || cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
    {
        cudaGetLastError(); // not sticky: clear the error these calls left, so that no other code reads it as its own
        return 0;
    }
    return count;
}

void DeformConv2dPlugin::checkReady() const
{
    if (!mCublas.acquired())
    {
        throw PluginError(who() + ": enqueue before attachToContext, expected attachToContext first");
    }
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
    // Columns (or the fused path's copies) and cuBLAS workspace from the first 256-byte aligned
    // byte (getWorkspaceSize asked for the slack).
    char* const base = static_cast<char*>(workspace) + plan::base_padding(reinterpret_cast<uintptr_t>(workspace));

    if constexpr (std::is_same<T, __half>::value)
    {
        if (plan::choose_path(d, true, smCount()) == plan::Path::kFused)
        {
            cudaError_t const e = cuda::deform_conv_fused(X, W, offset, mask, B, d, base, Y,
                plan::fused_kernel() == plan::FusedKernel::kPipelined, stream);
            return e == cudaSuccess ? 0 : cudaFailed("fused deformable convolution kernel launch", e);
        }
    }

    if (plan::bias_only(d))
    {
        // no input channels: Y = B broadcast, or zeros (no columns; cuBLAS refuses k = 0 with ldb = 0)
        int64_t const L = d.outH * d.outW;
        cudaError_t const e = B != nullptr
            ? cuda::fill_bias<T>(B, d.M, d.N * d.M, L, Y, stream)
            : cudaMemsetAsync(Y, 0, static_cast<size_t>(d.N * d.M * L) * sizeof(T), stream);
        return e == cudaSuccess ? 0 : cudaFailed("output for no input channels (bias or zeros)", e);
    }

    // FP32 in 3xTF32 mode (deform_conv2d_plan.h): hi halves in the columns, lo halves after the
    // staging, the weights' halves after the columns part, three TF32 GEMMs per GEMM.
    bool const split = std::is_same<T, float>::value && plan::fp32_gemm() == plan::Fp32Gemm::k3xTf32;
    plan::Im2colParts const parts = plan::im2col_parts(d, static_cast<int64_t>(sizeof(T)), split, plan::columns_cap());
    plan::Im2colLayout const& lay = parts.lay;
    int64_t const chunk = parts.chunk;
    T* col = reinterpret_cast<T*>(base);
    T* staging = reinterpret_cast<T*>(base + parts.stagingAt); // the GEMM's output rows of ld when ld != L
    T* colLo = split ? reinterpret_cast<T*>(base + parts.colLoAt) : nullptr;
    T* wHi = reinterpret_cast<T*>(base + parts.weightsAt);
    T* wLo = wHi + plan::split_weight_lo_offset(d);
    void* cublasWs = base + parts.cublasAt;

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
    float const beta = B != nullptr ? 1.F : 0.F;
    if (B != nullptr && !lay.staged)
    {
        cudaError_t const e = cuda::fill_bias<T>(B, d.M, d.N * d.M, lay.L, Y, stream);
        if (e != cudaSuccess)
        {
            return cudaFailed("bias broadcast kernel launch", e);
        }
    }
    if constexpr (std::is_same<T, float>::value)
    {
        cudaError_t const e = split ? cuda::split_tf32(W, plan::weight_elems(d), wHi, wLo, stream) : cudaSuccess;
        if (e != cudaSuccess)
        {
            return cudaFailed("3xTF32 weight split kernel launch", e);
        }
    }
    cudaDataType_t const dt = std::is_same<T, float>::value ? CUDA_R_32F : CUDA_R_16F;
    // One cuBLAS GEMM of descriptor g on these operands (columns a, weights b).
    auto gemm = [&](plan::Gemm const& g, T const* a, T const* b, float const* betaOf, cublasComputeType_t compute,
                    T* Yc) {
        return cublasGemmStridedBatchedEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(g.m), static_cast<int>(g.n),
            static_cast<int>(g.k), &alpha, a + g.a, dt, static_cast<int>(g.lda), g.strideA, b + g.b, dt,
            static_cast<int>(g.ldb), g.strideB, betaOf, Yc + g.c, dt, static_cast<int>(g.ldc), g.strideC,
            static_cast<int>(g.count), compute, CUBLAS_GEMM_DEFAULT);
    };
    int64_t const outImage = d.M * lay.L;
    for (int64_t n0 = 0; n0 < d.N; n0 += chunk)
    {
        int64_t const nb = d.N - n0 < chunk ? d.N - n0 : chunk;
        cudaError_t e = cuda::deform_im2col<T>(X, offset, mask, d, n0, nb, lay.ld, col, colLo, stream);
        if (e != cudaSuccess)
        {
            return cudaFailed("deformable im2col kernel launch", e);
        }
        if (B != nullptr && lay.staged && (e = cuda::fill_bias<T>(B, d.M, nb * d.M, lay.ld, staging, stream)) != cudaSuccess)
        {
            return cudaFailed("bias broadcast kernel launch", e);
        }
        T* Yc = lay.staged ? staging : Y + n0 * outImage;
        plan::for_each_gemm(d, lay, nb, [&](plan::Gemm const& g) {
            if (st != CUBLAS_STATUS_SUCCESS)
            {
                return;
            }
            if (!split)
            {
                st = gemm(g, col, W, &beta, CUBLAS_COMPUTE_32F, Yc);
                return;
            }
            for (plan::SplitTerm const& t : plan::kSplitTerms)
            {
                plan::SplitOperands<T> const o = plan::split_operands<T>(t, col, colLo, wHi, wLo, beta);
                if (st == CUBLAS_STATUS_SUCCESS)
                {
                    st = gemm(g, o.columns, o.weights, &o.beta, CUBLAS_COMPUTE_32F_FAST_TF32, Yc);
                }
            }
        });
        if (st != CUBLAS_STATUS_SUCCESS)
        {
            return blasFail("cublasGemmStridedBatchedEx", st);
        }
        if (lay.staged)
        {
            size_t const es = sizeof(T);
            e = cudaMemcpy2DAsync(Y + n0 * outImage, lay.L * es, staging, lay.ld * es, lay.L * es,
                static_cast<size_t>(nb * d.M), cudaMemcpyDeviceToDevice, stream);
            if (e != cudaSuccess)
            {
                return cudaFailed("output copy (cudaMemcpy2DAsync)", e);
            }
        }
    }
    return 0;
}

int32_t DeformConv2dPlugin::launch(DeformConvDims const& d, nvinfer1::PluginTensorDesc const* inputDesc,
    void const* const* inputs, void* output, void* workspace, cudaStream_t stream)
{
    // B present with 4+ inputs and not empty, mask with 5 (d.hasMask).
    bool const hasBias = nbInputs() > 3 && !isEmptyInput(inputDesc[3].dims);
    bool const used[] = {true, true, true, hasBias, d.hasMask};
    for (int32_t i = 0; i < nbInputs(); ++i)
    {
        if (used[i])
        {
            checkData(Traits::kInputs[i], inputDesc[i].dims, inputs[i]);
        }
    }
    return dispatchType(who(), "X", inputDesc[0].type, [&](auto t) {
        return run<decltype(t)>(d, hasBias, inputs, output, workspace, stream);
    });
}

nvinfer1::IPluginCreatorInterface* deform_conv2d_creator()
{
    static DeformConv2dCreator creator;
    return &creator;
}

} // namespace trt
} // namespace dcn
