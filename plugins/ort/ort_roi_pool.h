// What the ONNX Runtime kernels of the RoI pooling ops share: reading data, rois (float32 in both
// kernels) and the optional third input, and the output loop over (channel, bin) with the RoIs
// innermost. Used by the RoI pools' kernels (plugins/ops/<op>/<op>_ort.cpp); names no op.
#pragma once

#include "dcn_validate.h"  // plugins/common
#include "ort_common.h"

namespace dcn_ort {

// The RoI pools' inputs: data, rois (float32 in both kernels) and the optional third one (the
// per-RoI offsets), with their shapes.
struct RoIPoolInputs {
    explicit RoIPoolInputs(const Ort::KernelContext& ctx)
        : data(ctx.GetInput(0)), rois(ctx.GetInput(1)), third(optional_input(ctx, 2)), data_shape(shape_of(data)),
          rois_shape(shape_of(rois)), third_shape(third ? shape_of(third) : std::vector<int64_t>()) {}
    // The third input's shape for the validate_* functions: absent when the node leaves it out.
    dcn::ShapeRef third_ref() const { return third ? dcn::ShapeRef(third_shape) : dcn::ShapeRef(); }
    const float* roi_values() const { return rois.GetTensorData<float>(); }

    Ort::ConstValue data, rois, third;
    std::vector<int64_t> data_shape, rois_shape, third_shape;
};

// The RoI pools' output y[R, C, PH, PW]: y[r, c, ph, pw] = element(r, c, ph, pw), threaded over
// (c, ph, pw) with the RoIs innermost, so that one channel's plane (per batch item) stays in cache
// across the RoIs. element must not throw.
template <class T, class F>
void pool_rois(const Ort::KernelContext& ctx, int64_t R, int64_t C, int64_t PH, int64_t PW, T* y, const F& element) {
    const int64_t bins = PH * PW;
    parallel_for(ctx, static_cast<size_t>(C * bins), 4.0 * double(R), [&](size_t item) {
        const int64_t c = static_cast<int64_t>(item) / bins, bin = static_cast<int64_t>(item) % bins;
        const int64_t ph = bin / PW, pw = bin % PW;
        for (int64_t r = 0; r < R; ++r) y[((r * C + c) * PH + ph) * PW + pw] = element(r, c, ph, pw);
    });
}

}  // namespace dcn_ort
