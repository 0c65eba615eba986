#include "deform_conv2d_plugin.h"

#include "deform_conv2d_kernels.h"
#include "deform_conv2d_enqueue.h"
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

// deform_conv2d_enqueue.h's Backend on the GPU: the CUDA launchers, cuBLAS on the context's handle
// (stream and workspace set before the first GEMM; blasWhat names a failing set-up call), the 2-D copy.
template <class T>
struct CudaIm2col
{
    T const* X;
    T const* offset;
    T const* mask;
    DeformConvDims const& d;
    cublasHandle_t blas;
    cublasStatus_t created; // the handle's creation status (attachToContext)
    cudaStream_t stream;
    char* cublasWs;
    bool ready = false;
    char const* blasWhat = nullptr;

    int zero(T* y, int64_t n)
    {
        return cudaMemsetAsync(y, 0, static_cast<size_t>(n) * sizeof(T), stream);
    }
    int fill_bias(T const* B, int64_t M, int64_t rows, int64_t ld, T* dst)
    {
        return cuda::fill_bias<T>(B, M, rows, ld, dst, stream);
    }
    int split_weights(T const* W, int64_t n, T* hi, T* lo)
    {
        if constexpr (std::is_same<T, float>::value)
        {
            return cuda::split_tf32(W, n, hi, lo, stream);
        }
        return cudaErrorInvalidValue; // 3xTF32 is float only (im2col_enqueue asks only then)
    }
    int im2col(int64_t n0, int64_t nb, int64_t ld, T* col, T* colLo)
    {
        return cuda::deform_im2col<T>(X, offset, mask, d, n0, nb, ld, col, colLo, stream);
    }
    // The channels-last path (half only: run<T> takes it only then)
    int tap_major_weights(T const* W, T* wt)
    {
        if constexpr (std::is_same<T, __half>::value)
        {
            return cuda::tap_major_weights(W, d, wt, stream);
        }
        return cudaErrorInvalidValue;
    }
    int channels_last(int64_t n0, int64_t nb, T* xt)
    {
        if constexpr (std::is_same<T, __half>::value)
        {
            return cuda::channels_last(X, d, n0, nb, xt, stream);
        }
        return cudaErrorInvalidValue;
    }
    int nhwc_im2col(int64_t n0, int64_t nb, T const* xt, T* col)
    {
        if constexpr (std::is_same<T, __half>::value)
        {
            return cuda::nhwc_im2col(xt, offset, mask, d, n0, nb, col, stream);
        }
        return cudaErrorInvalidValue;
    }
    int setUp()
    {
        if (blas == nullptr)
        {
            blasWhat = "cublasCreate (attachToContext)";
            return created != CUBLAS_STATUS_SUCCESS ? created : CUBLAS_STATUS_NOT_INITIALIZED;
        }
        cublasStatus_t st = cublasSetStream(blas, stream);
        if (st != CUBLAS_STATUS_SUCCESS)
        {
            blasWhat = "cublasSetStream";
            return st;
        }
        st = cublasSetWorkspace(blas, cublasWs, static_cast<size_t>(plan::kCublasWorkspaceBytes));
        if (st != CUBLAS_STATUS_SUCCESS)
        {
            blasWhat = "cublasSetWorkspace";
            return st;
        }
        ready = true;
        return 0;
    }
    int gemm(plan::Gemm const& g, T const* a, T const* b, float beta, int term, T* c)
    {
        int const e = ready ? 0 : setUp();
        if (e != 0)
        {
            return e;
        }
        // cuBLAS takes int: a size past INT32_MAX would wrap (a negative m, or k = 0: Y silently the bias alone)
        for (int64_t const v : {g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.count})
        {
            if (v > static_cast<int64_t>(INT32_MAX))
            {
                blasWhat = "cublasGemmStridedBatchedEx (a size, leading dimension or batch count past INT32_MAX, "
                           "cuBLAS's int arguments)";
                return CUBLAS_STATUS_NOT_SUPPORTED;
            }
        }
        float const alpha = 1.F;
        cudaDataType_t const dt = std::is_same<T, float>::value ? CUDA_R_32F : CUDA_R_16F;
        cublasComputeType_t const compute = term < 0 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
        return cublasGemmStridedBatchedEx(blas, g.transA ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(g.m),
            static_cast<int>(g.n),
            static_cast<int>(g.k), &alpha, a + g.a, dt, static_cast<int>(g.lda), g.strideA, b + g.b, dt,
            static_cast<int>(g.ldb), g.strideB, &beta, c + g.c, dt, static_cast<int>(g.ldc), g.strideC,
            static_cast<int>(g.count), compute, CUBLAS_GEMM_DEFAULT);
    }
    int copy_rows(T* dst, int64_t dpitch, T const* src, int64_t spitch, int64_t width, int64_t rows)
    {
        size_t const es = sizeof(T);
        return cudaMemcpy2DAsync(dst, static_cast<size_t>(dpitch) * es, src, static_cast<size_t>(spitch) * es,
            static_cast<size_t>(width) * es, static_cast<size_t>(rows), cudaMemcpyDeviceToDevice, stream);
    }
};

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

    plan::Path const path
        = std::is_same<T, __half>::value ? plan::choose_path(d, true, smCount()) : plan::Path::kIm2col;
    if constexpr (std::is_same<T, __half>::value)
    {
        if (path == plan::Path::kFused)
        {
            cudaError_t const e = cuda::deform_conv_fused(X, W, offset, mask, B, d, base, Y,
                plan::fused_kernel() == plan::FusedKernel::kPipelined, stream);
            return e == cudaSuccess ? 0 : cudaFailed("fused deformable convolution kernel launch", e);
        }
    }

    // The im2col paths: deform_conv2d_enqueue.h's bodies (also run by the host emulation) on CUDA kernels,
    // cuBLAS (FP32 accumulation; 3xTF32's terms on FAST_TF32) and a 2-D copy: the NCHW im2col, or (FP16,
    // switched on) the channels-last one.
    int64_t const es = static_cast<int64_t>(sizeof(T));
    bool const nhwc = path == plan::Path::kNhwc;
    bool const split = std::is_same<T, float>::value && plan::fp32_gemm() == plan::Fp32Gemm::k3xTf32;
    plan::Im2colParts const parts = plan::im2col_parts(d, es, split, plan::columns_cap());
    plan::NhwcParts const cl = plan::nhwc_parts(d, es, plan::columns_cap());
    CudaIm2col<T> be{X, offset, mask, d, mCublas.handle(), mCublas.status(), stream,
        base + (nhwc ? cl.cublasAt : parts.cublasAt)};
    // cuBLAS set up before anything is launched (no GEMMs, no set-up: C = 0)
    int const ready = plan::bias_only(d) ? 0 : be.setUp();
    plan::EnqueueStatus const st = ready != 0 ? plan::EnqueueStatus{ready, be.blasWhat, true}
        : nhwc                                ? plan::nhwc_enqueue<T>(d, cl, W, B, Y, base, be)
                                              : plan::im2col_enqueue<T>(d, parts, W, B, Y, base, be);
    if (st.code == 0)
    {
        return 0;
    }
    if (!st.gemm)
    {
        return cudaFailed(st.what, static_cast<cudaError_t>(st.code));
    }
    cublasStatus_t const bs = static_cast<cublasStatus_t>(st.code);
    char const* what = be.blasWhat != nullptr ? be.blasWhat : st.what;
    reportError(recorder(), who() + ": " + what + " failed with " + cublasGetStatusName(bs) + " ("
            + cublasGetStatusString(bs) + ") [enqueue]",
        nvinfer1::ErrorCode::kFAILED_EXECUTION);
    return static_cast<int32_t>(bs);
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
