// dcn::DeformRoIPool for ONNX Runtime (CPU): mmcv's deformable RoI pooling, one deform_roi_pool_math.h element
// per output value, threaded over (channel, bin), RoIs innermost. float32 and float16 data
// (float16: math in float32); RoIs are float32 in both (contract: coordinates never in half).
#include "deform_roi_pool_math.h"
#include "ort_custom_op.h"  // plugins/ort
#include "ort_ops.h"        // plugins/ort
#include "ort_roi_pool.h"   // plugins/ort

namespace dcn_ort {
namespace {

template <class T> struct DeformRoIPoolKernel : KernelBase<DeformRoIPoolKernel<T>> {
    DeformRoIPoolKernel(const OrtKernelInfo* info) : attrs_(info, dcn::kDeformRoIPoolName) {
        const auto& f = dcn::kDeformRoIPoolFields;
        attrs_.field(f[dcn::kRP_POOLED_HEIGHT], a_.pooled_height);
        attrs_.field(f[dcn::kRP_POOLED_WIDTH], a_.pooled_width);
        attrs_.field(f[dcn::kRP_SPATIAL_SCALE], a_.spatial_scale);
        attrs_.field(f[dcn::kRP_SAMPLING_RATIO], a_.sampling_ratio);
        attrs_.field(f[dcn::kRP_GAMMA], a_.gamma);
        check(dcn::validate_deform_roi_pool_attrs(attrs_.node(), a_));
    }

    void Compute(OrtKernelContext* context) {
        Ort::KernelContext ctx(context);
        const RoIPoolInputs in(ctx);  // data, rois, offset
        dcn::DeformRoIPoolDims d{};
        check(dcn::validate_deform_roi_pool(attrs_.node(), a_, in.data_shape, in.rois_shape, in.third_ref(), &d));
        const float* rp = in.roi_values();
        check(dcn::validate_deform_roi_pool_batch_indices(attrs_.node(), rp, d.R, d.N));
        const int64_t PH = d.pooled_height, PW = d.pooled_width;
        Ort::UnownedValue Y = ctx.GetOutput(0, {d.R, d.C, PH, PW});
        if (d.R == 0 || d.C == 0) return;
        const T* dp = in.data.GetTensorData<T>();
        const T* op = d.has_offset ? in.third.GetTensorData<T>() : nullptr;
        T* y = Y.GetTensorMutableData<T>();
        pool_rois(ctx, d.R, d.C, PH, PW, y, [&](int64_t r, int64_t c, int64_t ph, int64_t pw) {
            return dcn::store<T>(dcn::deform_roi_pool_element<float>(dp, rp, op, d, r, c, ph, pw));
        });
    }

  private:
    Attributes attrs_;
    dcn::DeformRoIPoolAttrs a_;
};

struct DeformRoIPoolSpec {
    static constexpr const char* kName = dcn::kDeformRoIPoolName;
    static constexpr size_t kNbInputs = 3;  // data, rois, offset
    static constexpr const char* kInputs[] = {"data", "rois", "offset"};
    static bool isFloat32Input(size_t index) { return index == 1; }  // rois
    static bool isOptionalInput(size_t index) { return index == 2; }  // offset
};

}  // namespace

void add_deform_roi_pool(Ort::CustomOpDomain& domain, int api_version) {
    add_custom_op<DeformRoIPoolKernel, DeformRoIPoolSpec>(domain, api_version);
}

}  // namespace dcn_ort
