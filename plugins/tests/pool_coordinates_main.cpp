// pool_coordinates_main.cpp: DeformRoIPool's and DeformPSROIPool's element functions over a scan of RoIs
// whose samples fall on the map's edges and whose sizes divide into whole grids (spatial scales that are
// no powers of two), one value a line. tests/test_fma_contraction.py builds it twice, as the host
// libraries are built (-ffp-contract=off) and as nvcc builds the device (products and sums contracted
// into fmas, with DCN_FMA_CONTRACTION_TEST), and asks the same values of both: the pools' coordinates
// decide whole samples, so they must not depend on contraction (dcn_math.h mul_rn / add_rn).
#include <cstdio>
#include <vector>

#include "deform_psroi_pool_math.h"
#include "deform_roi_pool_math.h"

int main() {
    const int64_t H = 8, W = 8;
    std::vector<float> data(H * W);
    for (int64_t i = 0; i < H * W; ++i) data[i] = static_cast<float>(i % W) + 0.25f * static_cast<float>(i / W);
    const double scales[] = {0.0625, 0.1, 1.0 / 12, 1.0 / 3, 0.125};
    const float offsets[2 * 2 * 2] = {0.1f, -0.3f, 0.7f, 0.2f, -0.05f, 0.45f, 0.3f, -0.6f};  // [1, 2, 2, 2]
    for (double scale : scales) {
        for (int x1 = 0; x1 <= 40; x1 += 3) {
            for (int x2 = x1; x2 <= x1 + 480; x2 += 17) {
                const float roi[5] = {0.f, static_cast<float>(x1), 1.f, static_cast<float>(x2), 21.f};
                for (int adaptive = 0; adaptive < 2; ++adaptive) {
                    for (int off = 0; off < 2; ++off) {
                        const int64_t P = off ? 2 : 7;
                        dcn::DeformRoIPoolDims d{1, 1, H, W, 1, P, P, scale, adaptive ? 0 : 2, 0.1, off == 1};
                        for (int64_t ph = 0; ph < P; ++ph)
                            for (int64_t pw = 0; pw < P; ++pw)
                                std::printf("%.9g\n", static_cast<double>(dcn::deform_roi_pool_element<float, float, float>(
                                                          data.data(), roi, off ? offsets : nullptr, d, 0, 0, ph, pw)));
                    }
                }
                dcn::DeformPSROIPoolDims p{};
                p.N = 1; p.C = 1; p.H = H; p.W = W; p.R = 1; p.spatial_scale = scale; p.output_dim = 1;
                p.group_size = 1; p.pooled_size = 7; p.part_size = 7; p.sample_per_part = 4; p.trans_std = 0.1;
                p.num_classes = 1; p.no_trans = true;
                for (int64_t ph = 0; ph < 7; ++ph)
                    for (int64_t pw = 0; pw < 7; ++pw)
                        std::printf("%.9g\n", static_cast<double>(dcn::deform_psroi_pool_element<float, float, float, int64_t>(
                                                  data.data(), roi, static_cast<const float*>(nullptr), p, 0, 0, ph, pw)));
            }
        }
    }
    return 0;
}
