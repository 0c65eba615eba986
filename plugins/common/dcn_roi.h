// dcn_roi.h: what the RoI pooling ops share (rois [R, 5] = (batch_index, x1, y1, x2, y2), float32
// for float32 and float16 data): reading rois[r, 0] as a batch index, and (host only) the check of
// data [N, C, H, W] and rois [R, 5] and of every batch index.
//
//   template<class Acc> DCN_HD int64_t psroi_batch_index(Acc v, int64_t N);  -1 if not in [0, N)
//   std::string validate_roi_pool_inputs(p, data, rois, data_layout, N, C, H, W, R);
//   template<class Acc, class RT> std::string validate_roi_batch_indices(op_type, node, rois, R, N);
#pragma once

#include "dcn_math.h"
#include "dcn_validate.h"

namespace dcn {

// rois[r, 0] as a batch index (truncated toward zero, as the original operator's int cast);
// -1 when it is not in [0, N) (or NaN).
template <class Acc> DCN_HD int64_t psroi_batch_index(Acc v, int64_t N) {
    if (!(v > Acc(-1) && v < Acc(N))) return -1;
    const int64_t b = static_cast<int64_t>(v);
    return (b >= 0 && b < N) ? b : -1;
}

#if !defined(__CUDA_ARCH__)

// The RoI pools' data [N, C, H, W] (data_layout: how the message spells it) and rois [R, 5]:
// "" with N, C, H, W, R set, else the message (p: op_prefix).
inline std::string validate_roi_pool_inputs(const std::string& p, ShapeRef data, ShapeRef rois, const char* data_layout,
                                            int64_t& N, int64_t& C, int64_t& H, int64_t& W, int64_t& R) {
    if (data.rank != 4) return p + "data has rank " + std::to_string(data.rank) + ", expected 4 (" + data_layout + ")";
    if (rois.rank != 2 || rois[1] != 5) return p + "rois has shape " + shape_str(rois) + ", expected [R, 5]";
    for (int q = 0; q < 4; ++q)
        if (data[q] < 0) return p + "data has shape " + shape_str(data) + ", expected non-negative dimensions";
    N = data[0];
    C = data[1];
    H = data[2];
    W = data[3];
    R = rois[0];
    return "";
}

// Data check of the RoI pools, host memory: every rois[r, 0] (read as Acc) must be a batch index in [0, N).
template <class Acc, class RT>
inline std::string validate_roi_batch_indices(const char* op_type, const std::string& node, const RT* rois, int64_t R,
                                              int64_t N) {
    for (int64_t r = 0; r < R; ++r) {
        const Acc v = load<Acc>(rois[r * 5]);
        if (psroi_batch_index<Acc>(v, N) < 0)
            return op_prefix(op_type, node) + "rois[" + std::to_string(r) + ", 0] = " +
                   float_str(static_cast<double>(v)) + ", expected a batch index in [0, N) = [0, " +
                   std::to_string(N) + ")";
    }
    return "";
}

#endif  // !__CUDA_ARCH__

}  // namespace dcn
