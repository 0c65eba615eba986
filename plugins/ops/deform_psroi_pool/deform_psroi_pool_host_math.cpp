// deform_psroi_pool_host_math.cpp: dcn::DeformPSROIPool's math header (deform_psroi_pool_math.h)
// over whole tensors, exported with C linkage for tests/test_math_header.py (ctypes). Test code: it
// only loops over outputs and calls the header.
//
// dtype codes: 0 = float64 (Acc double), 1 = float32 (Acc float), 2 = float16 bits (Acc float).
// Outputs are in Acc: double for 0, float for 1 and 2 (half results are not rounded).
// Every entry point validates with the header first and returns 0 when fine, 1 with the
// message in msg (NUL-terminated, truncated to msg_size) when not.
#include <cstdint>
#include <string>
#include <type_traits>

#include "deform_psroi_pool_math.h"
#include "host_tests.h"  // plugins/tests

namespace {

using namespace dcn_host;

template <class T>
void psroi(const dcn::DeformPSROIPoolDims& d, const void* datav, const void* roisv, const void* transv,
           void* outv) {
    using Acc = typename dcn::AccOf<T>::type;
    using TR = typename std::conditional<std::is_same<T, double>::value, double, float>::type;  // rois: float32
    const T* data = static_cast<const T*>(datav);
    const TR* rois = static_cast<const TR*>(roisv);
    const T* trans = static_cast<const T*>(transv);
    Acc* out = static_cast<Acc*>(outv);
    const int64_t P = d.pooled_size;
    for (int64_t r = 0; r < d.R; ++r)
        for (int64_t ctop = 0; ctop < d.output_dim; ++ctop)
            for (int64_t ph = 0; ph < P; ++ph)
                for (int64_t pw = 0; pw < P; ++pw)
                    out[((r * d.output_dim + ctop) * P + ph) * P + pw] =
                        dcn::deform_psroi_pool_element<Acc>(data, rois, trans, d, r, ctop, ph, pw);
}

}  // namespace

// Validates (shapes, attributes and, when check_batch_indices, every rois[r, 0]), then
// (when out != NULL) computes Y [R, output_dim, P, P]. trans NULL = absent.
DCN_EXPORT int dcn_host_deform_psroi_pool(int dtype, const void* data, const int64_t* data_shape, int64_t data_rank,
                                          const void* rois, const int64_t* rois_shape, int64_t rois_rank,
                                          const void* trans, const int64_t* trans_shape, int64_t trans_rank,
                                          double spatial_scale, int64_t output_dim, int64_t group_size,
                                          int64_t pooled_size, int64_t part_size, int64_t sample_per_part,
                                          double trans_std, int64_t no_trans, int check_batch_indices,
                                          const char* node, void* out, char* msg, size_t msg_size) {
    dcn::DeformPSROIPoolAttrs a;
    a.spatial_scale = spatial_scale;
    a.output_dim = output_dim;
    a.group_size = group_size;
    a.pooled_size = pooled_size;
    a.part_size = part_size;
    a.sample_per_part = sample_per_part;
    a.trans_std = trans_std;
    a.no_trans = no_trans;
    dcn::DeformPSROIPoolDims d{};
    const std::string name = node ? node : "";
    std::string e = dcn::validate_deform_psroi_pool(name, a, dcn::ShapeRef(data_shape, data_rank),
                                                    dcn::ShapeRef(rois_shape, rois_rank),
                                                    opt_shape(trans, trans_shape, trans_rank), &d);
    if (e.empty() && check_batch_indices) {
        switch (dtype) {
            case 0: e = dcn::validate_deform_psroi_pool_batch_indices(name, static_cast<const double*>(rois), d.R, d.N); break;
            case 1: e = dcn::validate_deform_psroi_pool_batch_indices(name, static_cast<const float*>(rois), d.R, d.N); break;
            case 2: e = dcn::validate_deform_psroi_pool_batch_indices(name, static_cast<const float*>(rois), d.R, d.N); break;
            default: break;
        }
    }
    if (!e.empty()) return report(e, msg, msg_size);
    if (out) {
        switch (dtype) {
            case 0: psroi<double>(d, data, rois, trans, out); break;
            case 1: psroi<float>(d, data, rois, trans, out); break;
            case 2: psroi<dcn::Half>(d, data, rois, trans, out); break;
            default: return report("dcn_host_deform_psroi_pool: dtype " + std::to_string(dtype) + ", expected 0, 1 or 2", msg, msg_size);
        }
    }
    return report("", msg, msg_size);
}
