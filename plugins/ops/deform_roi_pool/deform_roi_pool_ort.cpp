// dcn::DeformRoIPool for ONNX Runtime (CPU): mmcv's deformable RoI pooling from deform_roi_pool_math.h,
// threaded over RoIs. Per RoI, the taps of every sample of every bin (deform_roi_pool_bin /
// deform_roi_pool_taps: coordinates, RoIAlign's clamping, the four neighbours and weights) are
// computed once into RoIAlignBlocks of kLanes bins, then applied to each channel's plane
// (accumulate_roi_align_block): the element function's terms in its order, so the values equal
// deform_roi_pool_element's. RoIs with more samples than kMaxBlocks blocks hold, and maps over
// INT32_MAX values, take deform_roi_pool_element itself. float32 and float16 data (float16: math in
// float32, the map converted to float once); RoIs are float32 in both (contract: coordinates never
// in half).
#include <algorithm>
#include <memory>
#include <new>
#include <type_traits>

#include "deform_roi_pool_math.h"
#include "ort_custom_op.h"  // plugins/ort
#include "ort_ops.h"        // plugins/ort
#include "ort_roi_pool.h"   // plugins/ort

namespace dcn_ort {
namespace {

constexpr int kLanes = 4;                   // bins per taps block
constexpr int64_t kMaxBlocks = int64_t{1} << 14;  // taps blocks of one RoI (144 bytes each)

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
        const int64_t C = d.C, bins = PH * PW, groups = (bins + kLanes - 1) / kLanes;
        const bool block_ok = d.H * d.W <= INT32_MAX;
        // float16: the map in float (exact), converted once, sampled by the float path.
        constexpr bool is_float = std::is_same<T, float>::value;
        const int64_t hw = d.H * d.W;
        Scratch<float> data_float(ctx, is_float || !block_ok ? 0 : static_cast<size_t>(d.N * C * hw));
        const float* df = reinterpret_cast<const float*>(dp);
        if constexpr (!is_float) {
            parallel_for(ctx, data_float.get() ? static_cast<size_t>(d.N * C) : 0, double(hw), [&](size_t nc) {
                const T* src = dp + static_cast<int64_t>(nc) * hw;
                float* dst = data_float.get() + static_cast<int64_t>(nc) * hw;
                for (int64_t i = 0; i < hw; ++i) dst[i] = dcn::load<float>(src[i]);
            });
            df = data_float.get();
        }
        // samples per bin: sampling_ratio squared, or (adaptive: it depends on the RoI) about 4
        const double samples = a_.sampling_ratio > 0 ? double(a_.sampling_ratio) * double(a_.sampling_ratio) : 4.0;
        parallel_for(ctx, static_cast<size_t>(d.R), samples * double(C * bins), [&](size_t ri) {
            const int64_t r = static_cast<int64_t>(ri);
            T* yr = y + r * C * bins;
            // gh, gw and the batch index are the RoI's: bin (0, 0) tells them.
            const dcn::RoIPoolBin<float> first = dcn::deform_roi_pool_bin<float>(rp, op, d, r, 0, 0);
            const int64_t S = first.gh * first.gw;
            std::unique_ptr<dcn::RoIAlignBlock<float, kLanes>[]> table;
            if (first.b >= 0 && block_ok && S <= kMaxBlocks / groups)
                table.reset(new (std::nothrow) dcn::RoIAlignBlock<float, kLanes>[static_cast<size_t>(groups * S)]);
            if (!table) {  // the element function (also for b < 0: zeros)
                for (int64_t c = 0; c < C; ++c)
                    for (int64_t bin = 0; bin < bins; ++bin)
                        yr[c * bins + bin] =
                            dcn::store<T>(dcn::deform_roi_pool_element<float>(dp, rp, op, d, r, c, bin / PW, bin % PW));
                return;
            }
            // table[group * S + s]: sample s = iy * gw + ix of bins group * kLanes + lane
            for (int64_t bin = 0; bin < groups * kLanes; ++bin) {
                dcn::RoIAlignBlock<float, kLanes>* blk = table.get() + (bin / kLanes) * S;
                const int lane = static_cast<int>(bin % kLanes);
                if (bin >= bins) {  // past the last bin: a sample outside the map
                    for (int64_t s = 0; s < S; ++s) dcn::set_roi_align_taps(blk[s], lane, dcn::RoIAlignTaps<float>{});
                    continue;
                }
                const dcn::RoIPoolBin<float> b = dcn::deform_roi_pool_bin<float>(rp, op, d, r, bin / PW, bin % PW);
                for (int64_t iy = 0, s = 0; iy < b.gh; ++iy)
                    for (int64_t ix = 0; ix < b.gw; ++ix, ++s)
                        dcn::set_roi_align_taps(blk[s], lane, dcn::deform_roi_pool_taps<float>(b, d.H, d.W, iy, ix));
            }
            const float count = static_cast<float>(dcn::deform_roi_pool_count(first));
            for (int64_t c = 0; c < C; ++c) {
                const float* plane = df + (first.b * C + c) * hw;
                T* yc = yr + c * bins;
                for (int64_t g = 0; g < groups; ++g) {
                    float acc[kLanes] = {};
                    const dcn::RoIAlignBlock<float, kLanes>* blk = table.get() + g * S;
                    for (int64_t s = 0; s < S; ++s) dcn::accumulate_roi_align_block<float>(plane, blk[s], acc);
                    const int64_t n = std::min<int64_t>(kLanes, bins - g * kLanes);
                    for (int64_t l = 0; l < n; ++l) yc[g * kLanes + l] = dcn::store<T>(acc[l] / count);
                }
            }
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
