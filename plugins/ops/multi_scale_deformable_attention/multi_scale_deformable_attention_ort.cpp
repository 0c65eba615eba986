// dcn::MultiScaleDeformableAttention for ONNX Runtime (CPU): float32 and float16 value /
// attention_weights (float16: sampling and sums in float32), float32 sampling_locations, int64 or int32
// spatial_shapes / level_start_index (one type for both). Shapes and the level table are checked first
// (multi_scale_deformable_attention_math.h's validate_msda / validate_msda_levels: one-line errors); then msda_accumulate per
// (n, q, m) group and chunk of up to 64 channels, threaded over groups on the session's pool.
#include "multi_scale_deformable_attention_math.h"
#include "ort_common.h"
#include "ort_custom_op.h"  // KernelBase
#include "ort_ops.h"

namespace dcn_ort {
namespace {

constexpr int kChunk = 64;               // channels a task accumulates at once (stack arrays)
constexpr int64_t kGroupsPerTask = 16;   // groups per parallel_for item

template <class T> struct MsdaKernel : KernelBase<MsdaKernel<T>> {
    explicit MsdaKernel(const OrtKernelInfo* info) : attrs_(info, dcn::kMultiScaleDeformableAttentionName) {
        attrs_.field(dcn::kMultiScaleDeformableAttentionFields[dcn::kMS_IM2COL_STEP], im2col_step_);
    }

    void Compute(OrtKernelContext* context) {
        Ort::KernelContext ctx(context);
        const Ort::ConstValue in[5] = {ctx.GetInput(0), ctx.GetInput(1), ctx.GetInput(2), ctx.GetInput(3),
                                       ctx.GetInput(4)};
        std::vector<int64_t> shape[5];
        for (int i = 0; i < 5; ++i) shape[i] = shape_of(in[i]);
        dcn::MsdaDims d{};
        check(dcn::validate_msda(attrs_.node(), shape[0], shape[1], shape[2], shape[3], shape[4], &d));
        const auto t1 = in[1].GetTensorTypeAndShapeInfo().GetElementType();
        const auto t2 = in[2].GetTensorTypeAndShapeInfo().GetElementType();
        const bool i64 = t1 == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
        if (!i64 && t1 != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32)
            throw InvalidArgument(dcn::msda_prefix(attrs_.node()) + "spatial_shapes has element type " +
                                  element_type_name(t1) + ", expected int64 or int32");
        if (t2 != t1)
            throw InvalidArgument(dcn::msda_prefix(attrs_.node()) + "level_start_index has element type " +
                                  element_type_name(t2) + ", expected spatial_shapes' (" + (i64 ? "int64" : "int32") + ")");
        std::vector<dcn::MsdaLevel> levels(static_cast<size_t>(d.L));
        if (i64)
            read_levels(in[1].GetTensorData<int64_t>(), in[2].GetTensorData<int64_t>(), d, levels);
        else
            read_levels(in[1].GetTensorData<int32_t>(), in[2].GetTensorData<int32_t>(), d, levels);
        Ort::UnownedValue Y = ctx.GetOutput(0, {d.N, d.Lq, d.M * d.D});
        const int64_t groups = d.N * d.Lq * d.M;
        if (groups == 0 || d.D == 0) return;
        const T* value = in[0].GetTensorData<T>();
        const float* loc = in[3].GetTensorData<float>();
        const T* attn = in[4].GetTensorData<T>();
        T* y = Y.GetTensorMutableData<T>();
        const dcn::LevelArray table{levels.data()};
        const int64_t tasks = (groups + kGroupsPerTask - 1) / kGroupsPerTask;
        parallel_for(ctx, static_cast<size_t>(tasks), double(kGroupsPerTask * d.L * d.P * d.D), [&](size_t task) {
            const int64_t g0 = static_cast<int64_t>(task) * kGroupsPerTask;
            const int64_t g1 = g0 + kGroupsPerTask < groups ? g0 + kGroupsPerTask : groups;
            float acc[kChunk];
            for (int64_t g = g0; g < g1; ++g)
                for (int64_t d0 = 0; d0 < d.D; d0 += kChunk) {
                    const int nd = static_cast<int>(d.D - d0 < kChunk ? d.D - d0 : kChunk);
                    dcn::msda_accumulate<float, kChunk>(value, table, loc, attn, d, g, d0, nd, acc);
                    T* out = y + g * d.D + d0;
                    for (int j = 0; j < nd; ++j) out[j] = dcn::store<T>(acc[j]);
                }
        });
    }

  private:
    template <class I>
    void read_levels(const I* shapes, const I* starts, const dcn::MsdaDims& d, std::vector<dcn::MsdaLevel>& out) const {
        check(dcn::validate_msda_levels(attrs_.node(), d.S, shapes, starts, d.L));
        for (int64_t l = 0; l < d.L; ++l) out[static_cast<size_t>(l)] = dcn::msda_level(shapes, starts, l, d.S);
    }

    Attributes attrs_;
    int64_t im2col_step_ = 64;  // contract: kept for interoperability, no effect on the result
};

// The op's ONNX Runtime declaration: value / attention_weights / Y of T, locations float32, index
// inputs of any type (int64 or int32, checked in Compute with the contract's message).
template <class T>
struct MsdaOp : Ort::CustomOpBase<MsdaOp<T>, MsdaKernel<T>, /*WithStatus=*/true> {
    explicit MsdaOp(int api_version) { this->version = static_cast<uint32_t>(api_version); }
    OrtStatusPtr CreateKernelV2(const OrtApi&, const OrtKernelInfo* info, void** kernel) const {
        return guarded([&] { *kernel = new MsdaKernel<T>(info); });
    }
    const char* GetName() const { return dcn::kMultiScaleDeformableAttentionName; }
    size_t GetInputTypeCount() const { return 5; }
    ONNXTensorElementDataType GetInputType(size_t i) const {
        return i == 3 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
                      : (i == 1 || i == 2) ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED : element_type<T>();
    }
    size_t GetOutputTypeCount() const { return 1; }
    ONNXTensorElementDataType GetOutputType(size_t) const { return element_type<T>(); }
};

}  // namespace

void add_multi_scale_deformable_attention(Ort::CustomOpDomain& domain, int api_version) {
    static MsdaOp<float> op_f32(api_version);
    static MsdaOp<dcn::Half> op_f16(api_version);
    domain.Add(&op_f32);
    domain.Add(&op_f16);
}

}  // namespace dcn_ort
