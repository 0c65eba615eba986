// deform_roi_pool_host_math.cpp: dcn::DeformRoIPool's element function (deform_roi_pool_math.h) over a whole output,
// exported with C linkage for tests/test_deform_roi_pool.py (ctypes), in float64: the
// arithmetic the CUDA kernel and the ONNX Runtime op run, held to the float64 reference.
// Test code: loops over outputs and calls the header, nothing else.
#include <cstdint>
#include <string>

#include "deform_roi_pool_math.h"
#include "host_tests.h"  // plugins/tests

// Validates shapes and attributes (and every rois[r, 0]), then fills out [R, C, PH, PW] (float64).
// offset NULL = absent. Returns 0, or 1 with the header's message in msg.
DCN_EXPORT int dcn_host_deform_roi_pool(const double* data, const int64_t* data_shape, int64_t data_rank,
                                        const double* rois, const int64_t* rois_shape, int64_t rois_rank,
                                        const double* offset, const int64_t* offset_shape, int64_t offset_rank,
                                        int64_t pooled_height, int64_t pooled_width, double spatial_scale,
                                        int64_t sampling_ratio, double gamma, const char* node, double* out,
                                        char* msg, size_t msg_size) {
    dcn::DeformRoIPoolAttrs a;
    a.pooled_height = pooled_height;
    a.pooled_width = pooled_width;
    a.spatial_scale = spatial_scale;
    a.sampling_ratio = sampling_ratio;
    a.gamma = gamma;
    dcn::DeformRoIPoolDims d{};
    const std::string name = node ? node : "";
    std::string e = dcn::validate_deform_roi_pool(
        name, a, dcn::ShapeRef(data_shape, data_rank), dcn::ShapeRef(rois_shape, rois_rank),
        offset ? dcn::ShapeRef(offset_shape, offset_rank) : dcn::ShapeRef(), &d);
    if (e.empty()) e = dcn::validate_deform_roi_pool_batch_indices(name, rois, d.R, d.N);
    if (e.empty() && out) {
        for (int64_t r = 0; r < d.R; ++r)
            for (int64_t c = 0; c < d.C; ++c)
                for (int64_t ph = 0; ph < d.pooled_height; ++ph)
                    for (int64_t pw = 0; pw < d.pooled_width; ++pw)
                        out[((r * d.C + c) * d.pooled_height + ph) * d.pooled_width + pw] =
                            dcn::deform_roi_pool_element<double>(data, rois, offset, d, r, c, ph, pw);
    }
    return dcn_host::report(e, msg, msg_size);
}
