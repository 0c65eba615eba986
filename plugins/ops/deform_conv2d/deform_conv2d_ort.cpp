// dcn::DeformConv2d for ONNX Runtime (CPU): deformable im2col from deform_conv2d_math.h, then ONNX
// Runtime's own MatMul or Gemm (MLAS SGEMM, invoked through OrtApi::CreateOp / InvokeOp) for W x
// columns, or, where W is a constant and the CPU has AMX, a bf16x3 GEMM on AMX tiles
// (plugins/ort/ort_amx_gemm.h; DCN_ORT_GEMM chooses). float32 and float16 (float16: sampling, GEMM
// and bias in float32; the images converted to float once, then sampled by the float path).
//
// Chunk by chunk (images, or runs of output positions of one image, at most chunk_bytes() of
// columns or kWideChunkPositions wide: the GEMM reads them from L2 right after they are written;
// whole-image columns of a c3 layer, 19 MB, went to memory and back): per (n, offset group, kernel
// point, 128 output positions) one dcn::TapsBlock (deform_taps_block, mask folded in), then the
// columns in one of two layouts: pixel-major (group 1: per (n, 128 positions)
// apply_taps_block_channels over each offset group's channels of X copied channels-last, columns
// [positions, kH*kW*C], then Gemm with transB = 1; see kPixelMajorPositionsPerFilter and
// positions_major_gemm), else planes (per (n, run of up to kPlanes channels of one offset group)
// apply_taps_block_run over the run's planes, each block's taps loaded once for them, columns
// [C*kH*kW, positions], then the MatMul), then bias (and the chunk copied, or transposed, into Y).
// Image batches, and an image batch's chunks, run one after the other, each step spread over the
// pool, or, where there are at least as many as the CPUs, side by side: each start to end on one
// thread, with its own scratch from a pool (side_by_side_items). Planes holding inf / NaN
// (where 0 * inf would differ from "outside neighbours count zero") and maps thinner than 2 take
// deform_im2col_element instead. All threading is the session's intra-op pool (ParallelFor).
#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "deform_conv2d_math.h"
#include "deform_conv2d_ort_chunks.h"  // chunk_bytes, side_by_side_items, chunk widths, kSmallLayerValues
#include "deform_conv2d_ort_layout.h"  // to_channels_last, positions_major_gemm, from_positions_major, all_finite
#include "ort_amx_gemm.h"    // plugins/ort
#include "ort_common.h"      // plugins/ort
#include "ort_custom_op.h"   // plugins/ort
#include "ort_ops.h"         // plugins/ort
#include "ort_pool_probe.h"  // plugins/ort

namespace dcn_ort {
namespace {

// Output positions per taps block (dcn::TapsBlock: 20 bytes each).
constexpr int kTile = 128;
// Channels sampled together from one taps block (apply_taps_block_run): a sample's base index
// and weights loaded once for all of them. Measured against one channel at a time (both builds in
// one process, bench_ort_ops.py layers, interleaved, 2 MiB L2): at one thread 0.95-0.98 of the
// time on c3, 0.95-1.00 c4, 0.92-1.00 c5, 0.92-0.99 on the small layer; 0.97-1.01 at two threads.
constexpr int kPlanes = dcn::kTapsRun;
// Pixel-major columns, for group 1 (and H, W >= 2): X copied channels-last once per image (float),
// each sample's four neighbours then four runs of adjacent channels (apply_taps_block_channels:
// four channels a vector, where planes take two 8-byte loads and their unzipping per sample and
// channel), an image's columns [positions, kH*kW*C], W in float as [M, kH*kW, C], and ONNX
// Runtime's Gemm with transB = 1 (W x columns^T into Y, or columns x W^T: positions_major_gemm). W
// is made so once and kept where it is a constant (an initializer, as in exported models), else
// once per run, and then only where there are at least this many output positions (all images) per
// filter (the permutation reads M*C*kH*kW weights, the sampling saves on N*C*kH*kW*oH*oW values: c5
// at batch 1, 256 positions for 512 filters, would not gain). Measured against planes only (both
// builds side by side, bench_ort_ops.py layers with W an initializer, both session orders, 2 MiB
// L2): one thread c3 0.95-0.97, c4 0.95-0.96, c5 0.97-1.00, small 0.85-0.87, small at batch 8
// 0.78-0.89, c3 at 100x100 0.99-1.00 (5 MB channels-last: no longer in L2); two threads c3
// 0.95-0.98, c4 0.96, c5 0.98, small 0.87-0.91, c3 at 100x100 0.97-1.00. Sampling alone (c3, one
// thread): 2.3 -> 1.6 ms; the copy channels-last costs 0.2 of it.
constexpr int64_t kPixelMajorPositionsPerFilter = 4;
constexpr int kFiltersPerItem = 16;  // Y's rows per work item of from_positions_major
// Pixels of an image copied channels-last by one work item (to_channels_last).
constexpr int64_t kPixelRun = 16;
// The bf16x3 GEMM's work items where a chunk's steps are spread over the pool: runs of this many
// output positions where W's pieces fit the L2 budget (c3: 0.6 MB), else one run of filters (a
// multiple of 32) per CPU, so that each item streams only its share of W's pieces (c5: 9.4 MB).
constexpr int64_t kAmxRows = 128;

template <class T> struct DeformConv2dKernel : KernelBase<DeformConv2dKernel<T>> {
    DeformConv2dKernel(const OrtKernelInfo* info)
        : attrs_(info, dcn::kDeformConv2dName), matmul_(nullptr), gemm_t_(nullptr) {
        const auto& f = dcn::kDeformConv2dFields;
        attrs_.field(f[dcn::kDC_STRIDES], a_.strides);
        attrs_.field(f[dcn::kDC_PADS], a_.pads);
        attrs_.field(f[dcn::kDC_DILATIONS], a_.dilations);
        attrs_.field(f[dcn::kDC_KERNEL_SHAPE], a_.kernel_shape);
        attrs_.field(f[dcn::kDC_GROUP], a_.group);
        attrs_.field(f[dcn::kDC_OFFSET_GROUP], a_.offset_group);
        check(dcn::validate_deform_conv2d_attrs(attrs_.node(), a_));
        const char* names[] = {"T"};
        const ONNXTensorElementDataType types[] = {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT};
        matmul_ = Ort::Op::Create(info, "MatMul", "", 13, names, types, 1, nullptr, 0, 2, 1);
        // every attribute given (no defaults are filled in here); ints read as an int (ONNX
        // Runtime's CreateOpAttr) or an int64: the same value either way
        const int64_t zero = 0, one = 1;
        const float unit = 1.0f;
        const Ort::OpAttr gemm_attrs[] = {Ort::OpAttr("transA", &zero, 1, OrtOpAttrType::ORT_OP_ATTR_INT),
                                          Ort::OpAttr("transB", &one, 1, OrtOpAttrType::ORT_OP_ATTR_INT),
                                          Ort::OpAttr("alpha", &unit, 1, OrtOpAttrType::ORT_OP_ATTR_FLOAT),
                                          Ort::OpAttr("beta", &unit, 1, OrtOpAttrType::ORT_OP_ATTR_FLOAT)};
        gemm_t_ = Ort::Op::Create(info, "Gemm", "", 13, names, types, 1, gemm_attrs, 4, 2, 1);
        int is_constant = 0;
        Ort::ConstKernelInfo(info).GetTensorConstantInput(1, &is_constant);
        w_constant_ = is_constant != 0;
        use_amx_ = amx::chosen_by_env();
    }

    void Compute(OrtKernelContext* context) {
        Ort::KernelContext ctx(context);
        const Ort::ConstValue X = ctx.GetInput(0), Wt = ctx.GetInput(1), offset = ctx.GetInput(2);
        const Ort::ConstValue B = optional_input(ctx, 3), mask = optional_input(ctx, 4);
        const std::vector<int64_t> xs = shape_of(X), ws = shape_of(Wt), os = shape_of(offset);
        const std::vector<int64_t> bs = B ? shape_of(B) : std::vector<int64_t>();
        const std::vector<int64_t> ms = mask ? shape_of(mask) : std::vector<int64_t>();
        dcn::DeformConvDims d{};
        check(dcn::validate_deform_conv2d(attrs_.node(), a_, xs, ws, os, B ? dcn::ShapeRef(bs) : dcn::ShapeRef(),
                                          mask ? dcn::ShapeRef(ms) : dcn::ShapeRef(), &d));
        Ort::UnownedValue Y = ctx.GetOutput(0, {d.N, d.M, d.outH, d.outW});
        if (d.N == 0 || d.M == 0) return;

        const T* x = X.GetTensorData<T>();
        const T* w = Wt.GetTensorData<T>();
        const T* off = offset.GetTensorData<T>();
        const T* msk = mask ? mask.GetTensorData<T>() : nullptr;
        const T* bias = B ? B.GetTensorData<T>() : nullptr;
        T* y = Y.GetTensorMutableData<T>();

        const int64_t kk = d.kH * d.kW, L = d.outH * d.outW, Cog = d.C / d.offsetGroup, Cg = d.C / d.group;
        const int64_t Mg = d.M / d.group, Kg = Cg * kk;
        if (Kg == 0) {  // no input channels: Y = B
            parallel_for(ctx, static_cast<size_t>(d.N * d.M), double(L), [&](size_t nm) {
                const T b = bias ? bias[static_cast<int64_t>(nm) % d.M] : dcn::store<T>(0.0f);
                std::fill(y + static_cast<int64_t>(nm) * L, y + (static_cast<int64_t>(nm) + 1) * L, b);
            });
            return;
        }
        constexpr bool is_float = std::is_same<T, float>::value;  // float16: GEMM and bias in float
        const bool block_ok = dcn::block_sampling_ok(d.H, d.W);
        const bool pixel_major =
            block_ok && d.group == 1 && (w_constant_ || d.N * L >= kPixelMajorPositionsPerFilter * d.M);

        // W in float: [group, Mg, Kg] (copied only for float16), or pixel-major [M, kH*kW, C]: made
        // once and kept where W is a constant (an initializer), else made per call.
        const bool keep_w = pixel_major && w_constant_;
        Scratch<float> w_buf(ctx, (is_float && !pixel_major) || keep_w ? 0 : static_cast<size_t>(d.M * Kg));
        const float* wf = reinterpret_cast<const float*>(w);
        const auto to_pixel_major = [&](float* dst) {
            parallel_for(ctx, static_cast<size_t>(d.M), double(Kg), [&](size_t m) {
                const T* src = w + static_cast<int64_t>(m) * Kg;
                float* row = dst + static_cast<int64_t>(m) * Kg;
                for (int64_t c = 0; c < d.C; ++c)
                    for (int64_t k = 0; k < kk; ++k) row[k * d.C + c] = dcn::load<float>(src[c * kk + k]);
            });
        };
        if (keep_w) {
            std::call_once(w_kept_once_, [&] {
                std::vector<float> kept(static_cast<size_t>(d.M * Kg));
                to_pixel_major(kept.data());
                if (use_amx_) w_packed_ = amx::pack_b(kept.data(), d.M, Kg);  // null: W holds inf / NaN / huge / tiny
                w_kept_shape_ = ws;
                w_kept_ = std::move(kept);
            });
            if (w_kept_shape_ != ws)  // a constant does not change: this is a fault of ours
                throw std::logic_error(attrs_.node() + ": constant W changed shape between runs");
            wf = w_kept_.data();
        } else if (pixel_major) {
            to_pixel_major(w_buf.get());
            wf = w_buf.get();
        } else if constexpr (!is_float) {
            parallel_for(ctx, static_cast<size_t>(d.M), double(Kg), [&](size_t m) {
                for (int64_t q = 0; q < Kg; ++q) w_buf.get()[m * Kg + q] = dcn::load<float>(w[m * Kg + q]);
            });
            wf = w_buf.get();
        }
        // W's bf16x3 pieces (kept with W): the GEMM on AMX tiles, columns x W^T into [pn, M]
        const amx::PackedB* const packed = keep_w ? w_packed_.get() : nullptr;

        // Chunks of columns: images [n0, n0 + cnt) x output positions [p0, p0 + pn), at most
        // chunk_bytes() of columns (or kWideChunkPositions wide), so that the GEMM reads them from
        // L2 right after sampling.
        const int64_t K = d.C * kk;  // column rows of one image (all groups)
        const int64_t budget = static_cast<int64_t>(chunk_bytes() / sizeof(float));
        const int64_t cpus = side_by_side_items();
        const double values = static_cast<double>(d.N * K * L);  // column values of the layer
        int64_t nb = 1, P = L;
        // the width of `parts` equal runs of L's positions, a multiple of 16 positions
        const auto run_width = [L](int64_t parts) { return std::min<int64_t>(L, ((L + parts - 1) / parts + 15) / 16 * 16); };
        if (K * L <= budget) {
            nb = std::max<int64_t>(1, std::min<int64_t>(d.N, budget / (K * L)));
            if (d.N >= cpus) {
                nb = std::min(nb, d.N / cpus);  // a batch of images for every CPU
            } else if (values < kSmallLayerValues && values >= kSerialWork && L >= 2 * kMinChunkPositions) {
                // a small layer: a run of positions for every CPU, side by side (see kSmallLayerValues)
                P = run_width(cpus);
            }
        } else {
            // as many chunks as the budget needs, of equal size (a multiple of 16 positions), none
            // narrower than kWideChunkPositions where 8 MiB of columns hold that many
            const int64_t wide =
                std::min<int64_t>(kWideChunkPositions, static_cast<int64_t>(kMaxChunkBytes / sizeof(float)) / K);
            const int64_t most = std::max({kMinChunkPositions, wide, budget / K});
            const int64_t chunks = (L + most - 1) / most;
            P = run_width(chunks);
        }
        const bool split = P < L;  // the GEMM writes a scratch [cnt, M, pn], copied into Y
        // pixel-major GEMM columns x W^T, writing [cnt, pn, M], transposed into Y
        const bool positions_major = pixel_major && (packed != nullptr || positions_major_gemm(d.M, P));
        const int64_t chunks = (L + P - 1) / P;  // of one image batch
        const int64_t tiles = (P + kTile - 1) / kTile;
        const int64_t batches = (d.N + nb - 1) / nb;
        // One image batch's scratch: which planes hold inf / NaN (they take the element function,
        // see above: one look per plane) and the images in float (exact) as the sampling reads
        // them: pixel-major, channels-last [cnt, H*W, C]; else, for float16, the planes.
        struct BatchScratch {
            Scratch<uint8_t> finite;
            Scratch<float> x_float;
            BatchScratch(const Ort::KernelContext& c, size_t n_finite, size_t n_float)
                : finite(c, n_finite), x_float(c, n_float) {}
        };
        ScratchPool<BatchScratch> batch_pool;
        const auto make_batch_scratch = [&] {
            return std::make_unique<BatchScratch>(
                ctx, block_ok ? static_cast<size_t>(nb * d.C) : 0,
                (is_float && !pixel_major) || !block_ok ? 0 : static_cast<size_t>(nb * d.C * d.H * d.W));
        };
        // One chunk's scratch: its columns ([cnt, C*kH*kW, pn], pixel-major [cnt, pn, kH*kW*C]), the
        // GEMM's output where it does not go straight into Y (positions_major: [cnt, pn, M]), and its
        // taps blocks; one set per chunk being worked on at once.
        struct ChunkScratch {
            Scratch<float> cols, out;
            Scratch<dcn::TapsBlock<float, kTile>> blocks;
            ChunkScratch(const Ort::KernelContext& c, size_t n_cols, size_t n_out, size_t n_blocks)
                : cols(c, n_cols), out(c, n_out), blocks(c, n_blocks) {}
        };
        ScratchPool<ChunkScratch> chunk_pool;
        const auto make_chunk_scratch = [&] {
            return std::make_unique<ChunkScratch>(
                ctx, static_cast<size_t>(nb * K * P),
                is_float && !split && !positions_major ? 0 : static_cast<size_t>(nb * d.M * P),
                block_ok ? static_cast<size_t>(nb * d.offsetGroup * kk * tiles) : 0);
        };

        // A small layer whose images or runs would go side by side: on the pool, or on this thread
        // where that has been the faster (serial; PoolProbe), the run timed.
        const bool small = values < kSmallLayerValues && (batches >= cpus || chunks >= cpus);
        const bool serial = small && probe_.serial_now();
        // The loops of one image batch or chunk: on the pool, or on this thread (batches or chunks
        // side by side, one per thread).
        const auto loop = [&](bool parallel, size_t total, double work, const auto& f) {
            if (parallel) return parallel_for(ctx, total, work, f);
            for (size_t i = 0; i < total; ++i) f(i);
        };
        // Images [n0, n0 + cnt).
        const auto batch = [&](int64_t n0, bool parallel) {
            const int64_t cnt = std::min(nb, d.N - n0);
            const typename ScratchPool<BatchScratch>::Lease b(batch_pool, make_batch_scratch);
            uint8_t* const finite = b->finite.get();
            float* const x_float = b->x_float.get();
            const int64_t hw = d.H * d.W;
            if (pixel_major) {  // finite planes; the images channels-last, kPixelRun pixels an item
                loop(parallel, static_cast<size_t>(cnt * d.C), double(hw), [&](size_t nc) {
                    finite[nc] = all_finite(x + (n0 * d.C + static_cast<int64_t>(nc)) * hw, hw);
                });
                const int64_t runs = (hw + kPixelRun - 1) / kPixelRun;
                loop(parallel, static_cast<size_t>(cnt * runs), double(kPixelRun * d.C), [&](size_t item) {
                    const int64_t n = static_cast<int64_t>(item) / runs, i0 = static_cast<int64_t>(item) % runs * kPixelRun;
                    const int64_t i1 = std::min(hw, i0 + kPixelRun);
                    to_channels_last(x + (n0 + n) * d.C * hw, x_float + n * hw * d.C, d.C, hw, i0, i1);
                });
            } else {
                loop(parallel, block_ok ? static_cast<size_t>(cnt * d.C) : 0, double(hw), [&](size_t nc) {
                    const T* src = x + (n0 * d.C + static_cast<int64_t>(nc)) * hw;
                    if constexpr (is_float) {
                        finite[nc] = all_finite(src, hw);
                    } else {
                        float* dst = x_float + static_cast<int64_t>(nc) * hw;
                        for (int64_t i = 0; i < hw; ++i) dst[i] = dcn::load<float>(src[i]);
                        finite[nc] = all_finite(dst, hw);
                    }
                });
            }
            // The chunk of output positions [p0, p0 + pn) of the batch's images.
            const auto chunk = [&](int64_t p0, bool parallel_steps) {
                const auto steps = [&](size_t total, double work, const auto& f) { loop(parallel_steps, total, work, f); };
                const typename ScratchPool<ChunkScratch>::Lease s(chunk_pool, make_chunk_scratch);
                const int64_t pn = std::min(P, L - p0);
                const int64_t tn = (pn + kTile - 1) / kTile;  // tiles of this chunk
                dcn::TapsBlock<float, kTile>* blocks = s->blocks.get();
                // 1. Taps (mask folded in) of every (n, offset group, kernel point, tile of positions),
                //    shared by the C/offset_group channels of the group.
                const size_t taps_items = block_ok ? static_cast<size_t>(cnt * d.offsetGroup * kk * tn) : 0;
                steps(taps_items, 8.0 * kTile, [&](size_t item) {
                    const int64_t it = static_cast<int64_t>(item);
                    const int64_t tile = it % tn, k = (it / tn) % kk;
                    const int64_t g = (it / (tn * kk)) % d.offsetGroup, n = it / (tn * kk * d.offsetGroup);
                    const int64_t q0 = p0 + tile * kTile;
                    const int qn = static_cast<int>(std::min<int64_t>(kTile, p0 + pn - q0));
                    dcn::deform_taps_block<float>(off, msk, d, n0 + n, g, k, q0, qn, blocks[it]);
                });
                // 2. Columns. Pixel-major [cnt, pn, kH*kW*C]; work item (n, tile of positions): every
                //    offset group's channels of the tile's positions from the image channels-last,
                //    then the planes holding inf / NaN by the element function.
                if (pixel_major) {
                    steps(static_cast<size_t>(cnt * tn), double(kTile * K), [&](size_t item) {
                        const int64_t n = static_cast<int64_t>(item) / tn, tile = static_cast<int64_t>(item) % tn;
                        const int64_t q = tile * kTile;
                        const int qn = static_cast<int>(std::min<int64_t>(kTile, pn - q));
                        const float* image = x_float + n * d.H * d.W * d.C;
                        float* col = s->cols.get() + (n * pn + q) * K;
                        const dcn::TapsBlock<float, kTile>* block = blocks + n * d.offsetGroup * kk * tn + tile;
                        for (int64_t g = 0; g < d.offsetGroup; ++g)
                            for (int64_t k = 0; k < kk; ++k)
                                dcn::apply_taps_block_channels(image + g * Cog, d.C, Cog, d.W, block[(g * kk + k) * tn],
                                                               qn, col + k * d.C + g * Cog, K);
                        for (int64_t c = 0; c < d.C; ++c) {
                            if (finite[n * d.C + c]) continue;
                            for (int64_t k = 0; k < kk; ++k)
                                for (int p = 0; p < qn; ++p) {
                                    const int64_t pos = p0 + q + p;
                                    col[p * K + k * d.C + c] = dcn::deform_im2col_element<float>(
                                        x, off, msk, d, n0 + n, c, k / d.kW, k % d.kW, pos / d.outW, pos % d.outW);
                                }
                        }
                    });
                }
                //    Else [cnt, C*kH*kW, pn]; work item (n, run of up to kPlanes channels of one offset
                //    group): the run's kH*kW rows each, sampled block by block from the run's planes
                //    together where they are all finite, else channel by channel.
                const int64_t runs = (Cog + kPlanes - 1) / kPlanes;  // per offset group
                steps(pixel_major ? 0 : static_cast<size_t>(cnt * d.offsetGroup * runs), double(kPlanes * kk * pn), [&](size_t item) {
                    const int64_t it = static_cast<int64_t>(item);
                    const int64_t n = it / (d.offsetGroup * runs), g = (it / runs) % d.offsetGroup;
                    const int64_t c0 = g * Cog + (it % runs) * kPlanes;
                    const int nc = static_cast<int>(std::min<int64_t>(kPlanes, (g + 1) * Cog - c0));
                    const int64_t hw = d.H * d.W, rows = kk * pn;  // one channel's plane; its columns
                    float* col = s->cols.get() + (n * d.C + c0) * rows;
                    const float* plane = nullptr;
                    bool together = block_ok;
                    if (block_ok) {
                        plane = is_float ? reinterpret_cast<const float*>(x) + ((n0 + n) * d.C + c0) * hw
                                         : x_float + (n * d.C + c0) * hw;
                        for (int j = 0; j < nc; ++j) together = together && finite[n * d.C + c0 + j];
                    }
                    // planes [pl, pl + count * hw) sampled block by block into their rows at out
                    const auto by_blocks = [&](int64_t count, const float* pl, float* out) {
                        const dcn::TapsBlock<float, kTile>* block = blocks + (n * d.offsetGroup + g) * kk * tn;
                        for (int64_t k = 0; k < kk; ++k)
                            for (int64_t tile = 0; tile < tn; ++tile) {
                                const int64_t q = tile * kTile;
                                dcn::apply_taps_block_run(count, pl, hw, d.W, block[k * tn + tile],
                                                          static_cast<int>(std::min<int64_t>(kTile, pn - q)),
                                                          out + k * pn + q, rows);
                            }
                    };
                    if (together) return by_blocks(nc, plane, col);
                    for (int j = 0; j < nc; ++j) {
                        const int64_t c = c0 + j;
                        float* cj = col + j * rows;
                        if (block_ok && finite[n * d.C + c]) {
                            by_blocks(1, plane + j * hw, cj);
                        } else {  // inf / NaN in the plane: the element function, whose outside neighbours read nothing
                            for (int64_t k = 0; k < kk; ++k)
                                for (int64_t q = 0; q < pn; ++q) {
                                    const int64_t pos = p0 + q;
                                    cj[k * pn + q] = dcn::deform_im2col_element<float>(
                                        x, off, msk, d, n0 + n, c, k / d.kW, k % d.kW, pos / d.outW, pos % d.outW);
                                }
                        }
                    }
                });
                // 3. out[n, grp] = W[grp] (Mg x Kg) x columns[n, grp] (Kg x pn): ONNX Runtime's MatMul, one
                //    call; pixel-major out[n] = W (M x K) x columns[n]^T (columns[n]: pn x K), or
                //    positions_major columns[n] x W^T ([pn, M]): its Gemm (transB = 1), one call an image.
                float* out = is_float && !split && !positions_major ? reinterpret_cast<float*>(y) + n0 * d.M * L : s->out.get();
                if (packed != nullptr) {
                    // bf16x3 on AMX tiles: out[n] = columns[n] x W^T, one item an image, or, where the
                    // steps are spread over the pool, by runs of positions or of filters (kAmxRows);
                    // an item whose columns hold a value the split refuses, or whose product is not all
                    // finite, takes the Gemm instead.
                    const bool by_filters = parallel_steps && packed->data.size() * 2 > chunk_bytes();
                    const int64_t rows = parallel_steps && !by_filters ? kAmxRows : pn;
                    const int64_t cols = by_filters ? ((d.M + cpus - 1) / cpus + 31) / 32 * 32 : d.M;
                    const int64_t rparts = (pn + rows - 1) / rows, cparts = (d.M + cols - 1) / cols;
                    steps(static_cast<size_t>(cnt * rparts * cparts), double(rows * cols * K), [&](size_t item) {
                        const int64_t it = static_cast<int64_t>(item), n = it / (rparts * cparts);
                        const int64_t r0 = it / cparts % rparts * rows, j0 = it % cparts * cols;
                        const int64_t rn = std::min(rows, pn - r0), jn = std::min(d.M, j0 + cols) - j0;
                        const float* a = s->cols.get() + (n * pn + r0) * K;
                        float* c = out + (n * pn + r0) * d.M + j0;
                        if (amx::multiply(a, K, rn, *packed, j0, j0 + jn, c - j0, d.M)) return;
                        std::vector<float> part(static_cast<size_t>(rn * jn));
                        invoke(gemm_t_, ctx, a, {rn, K}, wf + j0 * K, {jn, K}, part.data(), {rn, jn});
                        for (int64_t r = 0; r < rn; ++r)
                            std::memcpy(c + r * d.M, part.data() + r * jn, static_cast<size_t>(jn) * sizeof(float));
                    });
                } else if (positions_major) {
                    for (int64_t n = 0; n < cnt; ++n)
                        invoke(gemm_t_, ctx, s->cols.get() + n * pn * K, {pn, K}, wf, {d.M, K}, out + n * pn * d.M, {pn, d.M});
                } else if (pixel_major) {
                    for (int64_t n = 0; n < cnt; ++n)
                        invoke(gemm_t_, ctx, wf, {d.M, K}, s->cols.get() + n * pn * K, {pn, K}, out + n * d.M * pn, {d.M, pn});
                } else {
                    invoke(matmul_, ctx, wf, {d.group, Mg, Kg}, s->cols.get(), {cnt, d.group, Kg, pn}, out,
                           {cnt, d.group, Mg, pn});
                }
                // 4. Bias, and the chunk into Y (float16: added in float, then rounded); positions_major
                //    transposed into Y, kFiltersPerItem rows of Y an item.
                const int64_t row_items = (d.M + kFiltersPerItem - 1) / kFiltersPerItem;
                steps(positions_major ? static_cast<size_t>(cnt * row_items) : 0, double(kFiltersPerItem * pn), [&](size_t item) {
                    const int64_t n = static_cast<int64_t>(item) / row_items;
                    const int64_t m0 = static_cast<int64_t>(item) % row_items * kFiltersPerItem;
                    from_positions_major(out + n * pn * d.M, d.M, pn, m0, std::min(d.M, m0 + kFiltersPerItem), bias,
                                         y + (n0 + n) * d.M * L + p0, L);
                });
                steps(positions_major || (is_float && !split && !bias) ? 0 : static_cast<size_t>(cnt * d.M), double(pn), [&](size_t nm) {
                    const float b = bias ? dcn::load<float>(bias[static_cast<int64_t>(nm) % d.M]) : 0.0f;
                    float* row = out + static_cast<int64_t>(nm) * pn;
                    if (is_float && !split) {
                        for (int64_t l = 0; l < pn; ++l) row[l] += b;
                    } else {
                        T* dst = y + (n0 * d.M + static_cast<int64_t>(nm)) * L + p0;
                        for (int64_t l = 0; l < pn; ++l) dst[l] = dcn::store<T>(row[l] + b);
                    }
                });
            };
            if (!parallel || chunks < cpus) {
                for (int64_t p0 = 0; p0 < L; p0 += P) chunk(p0, parallel);
            } else {  // each chunk on one thread, start to end (its columns stay in that core's L2)
                parallel_for(ctx, static_cast<size_t>(chunks), double(cnt * K * P),
                             [&](size_t i) { chunk(static_cast<int64_t>(i) * P, false); });
            }
        };
        const int64_t t_start = small ? PoolProbe::now_ns() : 0;
        if (serial) {  // a small layer, its images and runs one after the other on this thread
            for (int64_t n0 = 0; n0 < d.N; n0 += nb) batch(n0, false);
        } else if (batches < cpus) {
            for (int64_t n0 = 0; n0 < d.N; n0 += nb) batch(n0, true);
        } else {  // each image batch on one thread, start to end
            parallel_for(ctx, static_cast<size_t>(batches), double(nb * K * P),
                         [&](size_t i) { batch(static_cast<int64_t>(i) * nb, false); });
        }
        if (small) probe_.report(serial, PoolProbe::now_ns() - t_start, values);
    }

  private:
    // y = op(a, b), float32, y preallocated: matmul_ (ONNX MatMul: a x b, batch dimensions
    // broadcast) or gemm_t_ (ONNX Gemm, transB = 1: a x b^T).
    static void invoke(Ort::Op& op, const Ort::KernelContext& ctx, const float* a, std::vector<int64_t> as,
                       const float* b, std::vector<int64_t> bs, float* y, std::vector<int64_t> ys) {
        auto count = [](const std::vector<int64_t>& s) {
            int64_t c = 1;
            for (int64_t v : s) c *= v;
            return static_cast<size_t>(c);
        };
        const OrtMemoryInfo& cpu = cpu_memory_info();
        Ort::Value av = Ort::Value::CreateTensor<float>(&cpu, const_cast<float*>(a), count(as), as.data(), as.size());
        Ort::Value bv = Ort::Value::CreateTensor<float>(&cpu, const_cast<float*>(b), count(bs), bs.data(), bs.size());
        Ort::Value yv = Ort::Value::CreateTensor<float>(&cpu, y, count(ys), ys.data(), ys.size());
        const OrtValue* inputs[] = {av, bv};
        OrtValue* outputs[] = {yv};
        op.Invoke(ctx.GetOrtKernelContext(), inputs, 2, outputs, 1);
    }

    Attributes attrs_;
    dcn::DeformConvAttrs a_;
    Ort::Op matmul_, gemm_t_;
    // W held as a constant: its pixel-major float form, made by the first run that takes that layout
    // (runs may come from several threads at once: call_once).
    bool w_constant_ = false;
    std::once_flag w_kept_once_;
    std::vector<int64_t> w_kept_shape_;
    std::vector<float> w_kept_;
    // DCN_ORT_GEMM chose bf16x3 (amx::chosen_by_env); then W's pieces, kept with it (null where W
    // holds a value the split refuses: the Gemm then).
    bool use_amx_ = false;
    std::unique_ptr<amx::PackedB> w_packed_;
    // Small layers: side by side on the pool, or on the calling thread (ort_pool_probe.h).
    PoolProbe probe_;
};

struct DeformConv2dSpec {
    static constexpr const char* kName = dcn::kDeformConv2dName;
    static constexpr size_t kNbInputs = 5;  // X, W, offset, B, mask
    static bool isFloat32Input(size_t /*index*/) { return false; }
    static bool isOptionalInput(size_t index) { return index >= 3; }  // B, mask
};

}  // namespace

void add_deform_conv2d(Ort::CustomOpDomain& domain, int api_version) {
    add_custom_op<DeformConv2dKernel, DeformConv2dSpec>(domain, api_version);
}

}  // namespace dcn_ort
