// A float32 GEMM on Intel AMX tiles from bfloat16 pieces ("bf16x3"), for the ONNX Runtime ops
// (CPU): each float32 value v split into hi = bf16(v) and lo = bf16(v - hi) (rounded to nearest
// even), and hi*hi + hi*lo + lo*hi summed by TDPBF16PS in float32. What is left out (lo*lo, and
// the bits below lo) is at most about 2^-17 of each product: on a c5-like product (4608 deep) the
// error was 4.7e-6 of the output's largest magnitude where SGEMM's was 4.8e-7, and float32's
// tolerance (dcn_base/tolerance.py) is 1e-4. PyTorch calls the same split its "high" float32
// matmul precision. Per 32 values of k, three tile products into each C tile: A's hi x B's hi,
// A's hi x B's lo, A's lo x B's hi. Measured (one core of this Xeon, 2 MiB L2): 0.9-1.1 TFLOP/s of
// bfloat16 with the split (the c4 / c5 products; the tiles' peak 3.0), MLAS's SGEMM 150-170
// GFLOP/s of float32. Six products (three pieces a side, float32's full
// accuracy) would run at about SGEMM's speed: not offered.
//
// C[rows, n] = A[rows, k] x B[n, k]^T with B packed once (PackedB, kept by the caller: a
// constant's pieces) and A split block by block while multiplying. Values that are not finite or
// whose magnitude reaches 2^126 (hi could round to inf; inf - inf in the split), and non-zero
// magnitudes below 2^-100 (a piece under 2^-126 flushes to zero), are not split: pack_b returns null
// and multiply returns false (C then undefined), and the caller takes its float32 GEMM (which gives
// inf and NaN their float32 meaning). So does a product whose C block is not all finite: the
// pieces' float32 sums overflow where float32's own product may not (hi * hi rounds up), and give
// inf - inf = NaN where float32 gives inf. Products below 2^-126 flush to zero, as the tiles do.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dcn_ort {
namespace amx {

// The CPU has AMX-TILE, AMX-BF16 and AVX512-BF16, and the kernel granted this process the tile
// state (arch_prctl ARCH_REQ_XCOMP_PERM; asked once). Else the reason, in `why`.
bool available(std::string* why = nullptr);

// DCN_ORT_GEMM, read when an op's kernel is made: "auto" (or unset) bf16x3 where available(),
// else SGEMM; "bf16x3" bf16x3, an error where it is not available; "sgemm" ONNX Runtime's float32
// SGEMM always (bit for bit what the op computed before this GEMM existed). True for bf16x3. Throws
// std::runtime_error naming the variable, what it holds and what is expected.
bool chosen_by_env();

// B's pieces, by depth blocks of kBlockK values of k (the last one shorter): per block and
// column tile of 16, hi then lo, each [kd / 2][16][2] bfloat16 (AMX's pairs of rows), kd = the
// block's k rounded up to 32; zeros past n and past the block's k.
// 128 measured (one thread, the c3 / c4 / c5 chunks' products, one interleaved run): 64 took
// 1.13 / 1.09 / 1.00 of its time, 192 0.96 / 1.01 / 0.99, 256 1.08 / 1.04 / 1.02.
constexpr int64_t kBlockK = 128;
struct PackedB {
    int64_t n = 0, k = 0;  // B is n x k
    int64_t tiles = 0;     // column tiles of 16: n rounded up to 32, over 16
    std::vector<uint16_t> data;
    int64_t blocks() const { return (k + kBlockK - 1) / kBlockK; }
    int64_t depth(int64_t block) const;           // a block's tile depth, hi and lo: 2 * kd
    int64_t tile_offset(int64_t block, int64_t t) const;  // column tile t of a block, in data
    const uint16_t* tile(int64_t block, int64_t t) const;
};
// B's pieces (b: n rows of k, ld k); null where B holds a value that is not split (see above).
std::unique_ptr<PackedB> pack_b(const float* b, int64_t n, int64_t k);

// C[r, j] = sum_k A[r, k] * B[j, k] for r < rows and j in [j0, j1) (A rows lda apart, C rows ldc
// apart; j0 a multiple of 32, j1 <= n). False, with those C values undefined, where A holds a value
// that is not split or a value of C is not finite (see above). Only where available().
bool multiply(const float* a, int64_t lda, int64_t rows, const PackedB& b, int64_t j0, int64_t j1, float* c,
              int64_t ldc);

}  // namespace amx
}  // namespace dcn_ort
