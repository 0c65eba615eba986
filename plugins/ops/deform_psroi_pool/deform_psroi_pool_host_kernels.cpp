// deform_psroi_pool_host_kernels.cpp: dcn::DeformPSROIPool's CUDA launch in the TensorRT plugin,
// emulated on the host, with C linkage for tests/test_host_kernels.py (ctypes; part of libdcn_host_tests):
// the kernel's thread-index mapping and per-thread body (deform_psroi_pool_launch.h) for every
// (block, thread) of the launcher's grid (plugins/tests/host_tests.h), and the math
// (deform_psroi_pool_math.h); nothing copied.
//
// dtype codes: 0 = float64, 1 = float32, 2 = float16 storage (dcn::Half bits). Outputs are
// in the storage type, as on the GPU. index_mode: 0 = as the launcher (int32 when the grid-stride
// loop and fits_psroi_int32 allow), 1 = int32, 2 = int64. max_blocks > 0 caps the grid (exercises
// the grid-stride loop).
// Entry points return 0 when fine, 1 with a message in msg otherwise (contract validation
// message from the header, or an emulation check that failed).
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "deform_psroi_pool_launch.h"
#include "host_tests.h"  // plugins/tests

namespace {

using dcn::DeformPSROIPoolDims;
using namespace dcn_host;

template <class T>
void psroi(const DeformPSROIPoolDims& d, int index_mode, int64_t max_blocks, const void* datav, const void* roisv,
           const void* transv, void* Yv, int64_t* stats) {
    using TR = typename std::conditional<std::is_same<T, double>::value, double, float>::type;  // rois: float32
    const T* data = static_cast<const T*>(datav);
    const TR* rois = static_cast<const TR*>(roisv);
    const T* trans = static_cast<const T*>(transv);
    T* Y = static_cast<T*>(Yv);
    const int64_t total = launch::psroi_total(d);
    for (int64_t q = 0; q < total; ++q) Y[q] = sentinel<T>();
    int64_t blocks = 0;
    const bool i32 = use_int32(index_mode, total, max_blocks) && (index_mode != 0 || launch::fits_psroi_int32(d));
    if (total > 0) {
        if (i32)
            blocks = emulate_grid<int32_t>(total, max_blocks, [&](int32_t tid, int32_t nt) {
                launch::deform_psroi_pool_thread<T, int32_t>(tid, nt, data, rois, trans, d, Y);
            });
        else
            blocks = emulate_grid<int64_t>(total, max_blocks, [&](int64_t tid, int64_t nt) {
                launch::deform_psroi_pool_thread<T, int64_t>(tid, nt, data, rois, trans, d, Y);
            });
    }
    int64_t unwritten = 0;
    for (int64_t q = 0; q < total; ++q) unwritten += is_sentinel(Y[q]) ? 1 : 0;
    if (stats) {
        stats[0] = blocks;
        stats[1] = i32 ? 32 : 64;
        stats[2] = unwritten;
    }
}

}  // namespace

DCN_EXPORT int dcn_emu_deform_psroi_pool(int dtype, int index_mode, int64_t max_blocks, const void* data,
                                             const int64_t* data_shape, const void* rois, const int64_t* rois_shape,
                                             const void* trans, const int64_t* trans_shape, double spatial_scale,
                                             int64_t output_dim, int64_t group_size, int64_t pooled_size,
                                             int64_t part_size, int64_t sample_per_part, double trans_std,
                                             int64_t no_trans, void* Y, int64_t* stats, char* msg, size_t msg_size) {
    const dcn::DeformPSROIPoolAttrs a{spatial_scale, output_dim,      group_size, pooled_size,
                                      part_size,     sample_per_part, trans_std,  no_trans};  // declaration order
    DeformPSROIPoolDims d{};
    const std::string e = dcn::validate_deform_psroi_pool("emu", a, dcn::ShapeRef(data_shape, 4),
                                                          dcn::ShapeRef(rois_shape, 2), opt_shape(trans, trans_shape, 4), &d);
    if (!e.empty()) return report(e, msg, msg_size);
    switch (dtype) {
        case 0: psroi<double>(d, index_mode, max_blocks, data, rois, trans, Y, stats); break;
        case 1: psroi<float>(d, index_mode, max_blocks, data, rois, trans, Y, stats); break;
        case 2: psroi<dcn::Half>(d, index_mode, max_blocks, data, rois, trans, Y, stats); break;
        default: return report("dtype code " + std::to_string(dtype) + ", expected 0, 1 or 2", msg, msg_size);
    }
    return 0;
}

// out[4*idx ...] = r, ctop, ph, pw.
DCN_EXPORT void dcn_emu_psroi_coords(int64_t output_dim, int64_t pooled_size, int64_t total, int64_t* out) {
    for (int64_t idx = 0; idx < total; ++idx) {
        const launch::PoolCoord q = launch::psroi_coord<int64_t>(idx, output_dim, pooled_size);
        const int64_t v[4] = {q.r, q.ctop, q.ph, q.pw};
        std::memcpy(out + 4 * idx, v, sizeof v);
    }
}

// launch::fits_psroi_int32 for these sizes (1: the element may index in int32).
DCN_EXPORT int dcn_emu_psroi_fits_int32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t R, int64_t num_classes,
                                        int64_t part_size) {
    DeformPSROIPoolDims d{};
    d.N = N;
    d.C = C;
    d.H = H;
    d.W = W;
    d.R = R;
    d.num_classes = num_classes;
    d.part_size = part_size;
    return launch::fits_psroi_int32(d) ? 1 : 0;
}
