// dcn::DeformPSROIPool for ONNX Runtime (CPU): one deform_psroi_pool_math.h element per output value,
// threaded over (output channel, bin), RoIs innermost. float32 and float16 (float16: math in float32);
// rois are float32 in both (contract: coordinates never in half).
#include "deform_psroi_pool_math.h"
#include "ort_custom_op.h"  // plugins/ort
#include "ort_ops.h"        // plugins/ort
#include "ort_roi_pool.h"   // plugins/ort

namespace dcn_ort {
namespace {

template <class T> struct DeformPSROIPoolKernel : KernelBase<DeformPSROIPoolKernel<T>> {
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
        const RoIPoolInputs in(ctx);  // data, rois, trans
        dcn::DeformPSROIPoolDims d{};
        check(dcn::validate_deform_psroi_pool(attrs_.node(), a_, in.data_shape, in.rois_shape, in.third_ref(), &d));
        const float* rp = in.roi_values();
        check(dcn::validate_deform_psroi_pool_batch_indices(attrs_.node(), rp, d.R, d.N));
        const int64_t P = d.pooled_size;
        Ort::UnownedValue Y = ctx.GetOutput(0, {d.R, d.output_dim, P, P});
        if (d.R == 0 || d.output_dim == 0) return;
        const T* dp = in.data.GetTensorData<T>();
        const T* tp = d.no_trans ? nullptr : in.third.GetTensorData<T>();
        T* y = Y.GetTensorMutableData<T>();
        pool_rois(ctx, d.R, d.output_dim, P, P, y, [&](int64_t r, int64_t ctop, int64_t ph, int64_t pw) {
            return dcn::store<T>(dcn::deform_psroi_pool_element<float>(dp, rp, tp, d, r, ctop, ph, pw));
        });
    }

  private:
    Attributes attrs_;
    dcn::DeformPSROIPoolAttrs a_;
};

struct DeformPSROIPoolSpec {
    static constexpr const char* kName = dcn::kDeformPSROIPoolName;
    static constexpr size_t kNbInputs = 3;  // data, rois, trans
    static constexpr const char* kInputs[] = {"data", "rois", "trans"};
    static bool isFloat32Input(size_t index) { return index == 1; }  // rois
    static bool isOptionalInput(size_t index) { return index == 2; }  // trans
};

}  // namespace

void add_deform_psroi_pool(Ort::CustomOpDomain& domain, int api_version) {
    add_custom_op<DeformPSROIPoolKernel, DeformPSROIPoolSpec>(domain, api_version);
}

}  // namespace dcn_ort
