// dcn::DeformPSROIPool for ONNX Runtime (CPU): one dcn_math.h element per output value,
// threaded over (output channel, bin), RoIs innermost. float32 and float16 (float16: math in float32);
// rois are float32 in both (contract: coordinates never in half).
#include "ort_common.h"
#include "ort_ops.h"

namespace dcn_ort {
namespace {

template <class T> struct DeformPSROIPoolKernel {
    DeformPSROIPoolKernel(const OrtKernelInfo* info) : attrs_(info, dcn::kDeformPSROIPoolName) {
        const auto& f = dcn::kDeformPSROIPoolFields;
        attrs_.field(f[dcn::kPS_SPATIAL_SCALE], a_.spatial_scale);
        attrs_.field(f[dcn::kPS_OUTPUT_DIM], a_.output_dim);
        attrs_.field(f[dcn::kPS_GROUP_SIZE], a_.group_size);
        attrs_.field(f[dcn::kPS_POOLED_SIZE], a_.pooled_size);
        attrs_.field(f[dcn::kPS_PART_SIZE], a_.part_size);
        attrs_.field(f[dcn::kPS_SAMPLE_PER_PART], a_.sample_per_part);
        attrs_.field(f[dcn::kPS_TRANS_STD], a_.trans_std);
        attrs_.field(f[dcn::kPS_NO_TRANS], a_.no_trans);
        check(dcn::validate_deform_psroi_pool_attrs(attrs_.node(), a_));
    }

    void Compute(OrtKernelContext* context) {
        Ort::KernelContext ctx(context);
        const Ort::ConstValue data = ctx.GetInput(0), rois = ctx.GetInput(1), trans = optional_input(ctx, 2);
        const std::vector<int64_t> ds = shape_of(data), rs = shape_of(rois);
        const std::vector<int64_t> ts = trans ? shape_of(trans) : std::vector<int64_t>();
        dcn::DeformPSROIPoolDims d{};
        check(dcn::validate_deform_psroi_pool(attrs_.node(), a_, ds, rs, trans ? dcn::ShapeRef(ts) : dcn::ShapeRef(),
                                              &d));
        const float* rp = rois.GetTensorData<float>();
        check(dcn::validate_deform_psroi_pool_batch_indices(attrs_.node(), rp, d.R, d.N));
        const int64_t P = d.pooled_size;
        Ort::UnownedValue Y = ctx.GetOutput(0, {d.R, d.output_dim, P, P});
        if (d.R == 0 || d.output_dim == 0) return;
        const T* dp = data.GetTensorData<T>();
        const T* tp = d.no_trans ? nullptr : trans.GetTensorData<T>();
        T* y = Y.GetTensorMutableData<T>();
        // Work item (ctop, ph, pw): one input channel (per batch item) for every RoI, so that its
        // plane stays in cache across the RoIs.
        const int64_t bins = P * P;
        parallel_for(ctx, static_cast<size_t>(d.output_dim * bins), [&](size_t item) {
            const int64_t ctop = static_cast<int64_t>(item) / bins, ph = (static_cast<int64_t>(item) % bins) / P;
            const int64_t pw = static_cast<int64_t>(item) % P;
            for (int64_t r = 0; r < d.R; ++r)
                y[((r * d.output_dim + ctop) * P + ph) * P + pw] =
                    dcn::store<T>(dcn::deform_psroi_pool_element<float>(dp, rp, tp, d, r, ctop, ph, pw));
        });
    }

    OrtStatusPtr ComputeV2(OrtKernelContext* context) {
        return guarded([&] { Compute(context); });
    }

  private:
    Attributes attrs_;
    dcn::DeformPSROIPoolAttrs a_;
};

template <class T>
struct DeformPSROIPoolOp : Ort::CustomOpBase<DeformPSROIPoolOp<T>, DeformPSROIPoolKernel<T>, /*WithStatus=*/true> {
    explicit DeformPSROIPoolOp(int api_version) { this->version = static_cast<uint32_t>(api_version); }

    OrtStatusPtr CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
        return guarded([&] { *kernel = new DeformPSROIPoolKernel<T>(info); });
    }
    const char* GetName() const { return dcn::kDeformPSROIPoolName; }
    size_t GetInputTypeCount() const { return 3; }  // data, rois, trans
    ONNXTensorElementDataType GetInputType(size_t index) const {
        return index == 1 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : element_type<T>();
    }
    OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
        return index == 2 ? OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_OPTIONAL
                          : OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED;
    }
    size_t GetOutputTypeCount() const { return 1; }
    ONNXTensorElementDataType GetOutputType(size_t) const { return element_type<T>(); }
};

}  // namespace

void add_deform_psroi_pool(Ort::CustomOpDomain& domain, int api_version) {
    static DeformPSROIPoolOp<float> op_f32(api_version);
    static DeformPSROIPoolOp<dcn::Half> op_f16(api_version);
    domain.Add(&op_f32);
    domain.Add(&op_f16);
}

}  // namespace dcn_ort
