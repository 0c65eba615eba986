// The bf16x3 AMX GEMM of ort_amx_gemm.h. Compiled for any x86-64 target: the AMX and AVX-512
// code is in functions built for those extensions (target attributes), run only where
// available() found them; elsewhere available() is false and nothing here runs.
#include "ort_amx_gemm.h"

#include "ort_env.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#if defined(__x86_64__) && defined(__linux__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 11))
#define DCN_ORT_AMX 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace dcn_ort {
namespace amx {
namespace {

constexpr int kPieces = 2;  // hi, lo: each a run of the block's k (rounded up to 32) in A's rows and B's tiles
constexpr int64_t kRowGroup = 512;            // rows of A a thread's buffers hold (c3's chunks: 416)
// The magnitudes split, as the bits of |v|: from 2^-100 (kSplitTinyBits) up to, not including, 2^126
// (kSplitLimitBits), and zero. From 2^126 on hi could round to inf (and inf, NaN lie above it); below
// 2^-100 bfloat16 pieces and the tile multiply flush to zero a piece under 2^-126 (a subnormal weight
// times 5e37 gave 0 for 0.5); from 2^-100 on, lo (at least 2^-24 of the value where not zero) stays a
// normal number. One unsigned comparison: u - tiny < limit - tiny, or u zero.
constexpr uint32_t kSplitLimitBits = (126u + 127u) << 23, kSplitTinyBits = (127u - 100u) << 23;  // 2^126, 2^-100
constexpr uint32_t kSplitSpan = kSplitLimitBits - kSplitTinyBits;

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// float -> bfloat16, rounded to nearest even; zero and subnormals to a signed zero (as the
// vector conversion and the tile multiply treat subnormal inputs). Finite inputs below 2^126 only.
uint16_t to_bf16(float v) {
    uint32_t u;
    std::memcpy(&u, &v, sizeof u);
    if ((u & 0x7f800000u) == 0) return static_cast<uint16_t>((u >> 16) & 0x8000u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}
float from_bf16(uint16_t h) {
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float v;
    std::memcpy(&v, &u, sizeof v);
    return v;
}
bool splittable(float v) {  // false for inf and NaN
    uint32_t u;
    std::memcpy(&u, &v, sizeof u);
    u &= 0x7fffffffu;
    return u - kSplitTinyBits < kSplitSpan || u == 0;
}

// 64-byte aligned scratch of one thread, grown as needed.
template <class T> struct ThreadBuffer {
    T* data = nullptr;
    size_t size = 0;
    T* get(size_t n) {
        if (n > size) {
            std::free(data);
            size = 0;
            data = static_cast<T*>(std::aligned_alloc(64, round_up(static_cast<int64_t>(n * sizeof(T)), 64)));
            if (data == nullptr) throw std::bad_alloc();
            size = n;
        }
        return data;
    }
    ~ThreadBuffer() { std::free(data); }
};

#if DCN_ORT_AMX
constexpr int kArchReqXcompPerm = 0x1023;  // arch_prctl: ask for an XSAVE feature's state
constexpr int kXfeatureXtiledata = 18;      // AMX's tile data

struct Support {
    bool ok = false;
    std::string why;
};
Support probe() {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return {false, "no CPUID leaf 7"};
    const bool avx512 = (b >> 16 & 1) && (b >> 30 & 1) && (b >> 31 & 1);  // F, BW, VL
    const bool amx = (d >> 22 & 1) && (d >> 24 & 1);                    // AMX-BF16, AMX-TILE
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    const bool bf16 = __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) != 0 && (a1 >> 5 & 1);  // AVX512-BF16
    if (!(avx512 && amx && bf16)) return {false, "this CPU has no AMX-BF16 with AVX512-BF16"};
    // the OS saves the AVX-512 state (XCR0: opmask, upper ZMM halves, ZMM16-31; and SSE / AVX)
    unsigned a2 = 0, b2 = 0, c2 = 0, d2 = 0;
    if (__get_cpuid(1, &a2, &b2, &c2, &d2) == 0 || !(c2 >> 27 & 1)) return {false, "the OS has no XSAVE enabled"};
    unsigned xcr0_lo = 0, xcr0_hi = 0;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 0xe6u) != 0xe6u) return {false, "the OS does not save the AVX-512 state (XCR0)"};
    if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0)
        return {false, "the kernel refused this process AMX's tile state (arch_prctl ARCH_REQ_XCOMP_PERM)"};
    return {true, ""};
}

#define DCN_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))

// The tile palette: tiles 0-1 C (16 x 16 float: rows i and i + 16, 16 columns), 2-5 A (16 rows x
// 32 bfloat16: the two row tiles' hi and lo), 6-7 B (16 pairs of rows x 16 columns: hi, lo). Per
// 32 values of k, hi*hi + hi*lo + lo*hi for each C tile: six products from six loads. Against a
// 2 x 2 block of C tiles over one depth of three runs (hi, hi, lo against hi, lo, hi: the same
// products and loads, B's hi stored twice), measured one thread, c3 / c4 / c5 products: 0.90-0.92
// / 0.79-0.82 / 0.80-0.81 of the time, and W's pieces take 4 bytes a weight instead of 6.
struct alignas(64) TileConfig {
    uint8_t palette = 1, start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
    TileConfig() {
        for (int t = 0; t < 8; ++t) {
            colsb[t] = 64;
            rows[t] = 16;
        }
    }
};

// Floats [0, n) of src (n <= 32) into 32 bfloat16 his at dst and 32 los at dst + half (the
// pieces of floats past n zero); false if one of them is not split.
DCN_AMX_TARGET inline bool split32(const float* src, int64_t n, uint16_t* dst, int64_t half) {
    const __mmask16 m0 = static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1);
    const __mmask16 m1 = static_cast<__mmask16>(n >= 32 ? 0xffff : n <= 16 ? 0 : (1u << (n - 16)) - 1);
    const __m512 x0 = _mm512_maskz_loadu_ps(m0, src), x1 = _mm512_maskz_loadu_ps(m1, src + 16);
    // splittable lane by lane
    const __m512i magnitude = _mm512_set1_epi32(0x7fffffff), tiny = _mm512_set1_epi32(kSplitTinyBits);
    const __m512i span = _mm512_set1_epi32(static_cast<int>(kSplitSpan));
    const __m512i u0 = _mm512_and_si512(_mm512_castps_si512(x0), magnitude);
    const __m512i u1 = _mm512_and_si512(_mm512_castps_si512(x1), magnitude);
    const __mmask16 ok0 = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(u0, tiny), span) | _mm512_testn_epi32_mask(u0, u0);
    const __mmask16 ok1 = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(u1, tiny), span) | _mm512_testn_epi32_mask(u1, u1);
    if ((ok0 & m0) != m0 || (ok1 & m1) != m1) return false;
    const __m512i hi = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);  // [x0's | x1's]
    // hi back in float (the maskz forms: GCC 12 warns of the plain ones' undefined lanes)
    const __m512 h0 = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(
        0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, _mm512_maskz_extracti64x4_epi64(0xff, hi, 0)), 16));
    const __m512 h1 = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(
        0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, _mm512_maskz_extracti64x4_epi64(0xff, hi, 1)), 16));
    const __m512i lo = (__m512i)_mm512_cvtne2ps_pbh(_mm512_sub_ps(x1, h1), _mm512_sub_ps(x0, h0));
    _mm512_storeu_si512(dst, hi);
    _mm512_storeu_si512(dst + half, lo);
    return true;
}

// multiply for at most kRowGroup rows: A's pieces of one depth block at a time in a_buf (rows ad
// apart: his, then los from half on; half is a full block's k, or a shorter k rounded up to 32),
// C in c_buf (rows width apart) until the last block. False where A holds a value that is not split
// or C's block is not all finite.
DCN_AMX_TARGET bool multiply_group(const float* a, int64_t lda, int64_t rows, const PackedB& b, int64_t j0, int64_t j1,
                                   float* c, int64_t ldc) {
    static thread_local ThreadBuffer<uint16_t> a_buf;
    static thread_local ThreadBuffer<float> c_buf;
    const int64_t rows32 = round_up(rows, 32), width = round_up(j1 - j0, 32);
    const int64_t half = round_up(std::min(kBlockK, b.k), 32), ad = 2 * half;  // a row: hi run, then lo run
    uint16_t* ap = a_buf.get(static_cast<size_t>(rows32 * ad));
    float* cp = c_buf.get(static_cast<size_t>(rows32 * width));
    for (int64_t r = rows; r < rows32; ++r) std::memset(ap + r * ad, 0, static_cast<size_t>(ad) * 2);  // zero rows
    const TileConfig config;
    _tile_loadconfig(&config);
    bool ok = true;
    for (int64_t blk = 0; ok && blk < b.blocks(); ++blk) {
        const int64_t k0 = blk * kBlockK, kn = std::min(kBlockK, b.k - k0), kd = round_up(kn, 32);
        for (int64_t r = 0; ok && r < rows; ++r)
            for (int64_t q = 0; ok && q < kn; q += 32)
                ok = split32(a + r * lda + k0 + q, std::min<int64_t>(32, kn - q), ap + r * ad + q, half);
        if (!ok) break;
        for (int64_t i = 0; i < rows32; i += 32)
            for (int64_t j = 0; j < width; j += 16) {
                float* c0 = cp + i * width + j;
                float* c1 = c0 + 16 * width;
                if (blk == 0) {
                    _tile_zero(0);
                    _tile_zero(1);
                } else {
                    _tile_loadd(0, c0, width * 4);
                    _tile_loadd(1, c1, width * 4);
                }
                const uint16_t* bh = b.tile(blk, (j0 + j) / 16);
                const uint16_t* bl = bh + kd * 16;
                const uint16_t* a0 = ap + i * ad;
                const uint16_t* a1 = a0 + 16 * ad;
                for (int64_t q = 0; q < kd; q += 32) {
                    _tile_loadd(2, a0 + q, ad * 2);
                    _tile_loadd(3, a0 + half + q, ad * 2);
                    _tile_loadd(4, a1 + q, ad * 2);
                    _tile_loadd(5, a1 + half + q, ad * 2);
                    _tile_loadd(6, bh + q * 16, 64);
                    _tile_loadd(7, bl + q * 16, 64);
                    _tile_dpbf16ps(0, 2, 6);
                    _tile_dpbf16ps(0, 2, 7);
                    _tile_dpbf16ps(0, 3, 6);
                    _tile_dpbf16ps(1, 4, 6);
                    _tile_dpbf16ps(1, 4, 7);
                    _tile_dpbf16ps(1, 5, 6);
                }
                _tile_stored(0, c0, width * 4);
                _tile_stored(1, c1, width * 4);
            }
    }
    _tile_release();
    if (!ok) return false;
    // C's block out of the buffer, every value checked on the way: the pieces' float32 sums overflow
    // where float32's own product may not (hi * hi rounds up), and can give inf - inf = NaN where
    // float32 gives inf; a block that is not all finite is computed again by the caller's float32 GEMM.
    const __m512i exponent = _mm512_set1_epi32(0x7f800000);
    __mmask16 nonfinite = 0;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < j1 - j0; j += 16) {
            const __mmask16 m = static_cast<__mmask16>(j1 - j0 - j >= 16 ? 0xffff : (1u << (j1 - j0 - j)) - 1);
            const __m512 v = _mm512_maskz_loadu_ps(m, cp + r * width + j);
            _mm512_mask_storeu_ps(c + r * ldc + j0 + j, m, v);
            const __m512i e = _mm512_and_si512(_mm512_castps_si512(v), exponent);
            nonfinite |= _mm512_mask_cmpeq_epi32_mask(m, e, exponent);
        }
    return nonfinite == 0;
}

// Rows kRowGroup at a time, so that the thread's buffers stay bounded (a 9-deep layer's chunk may
// have 58000 positions): W's pieces are streamed once a group.
bool multiply_tiles(const float* a, int64_t lda, int64_t rows, const PackedB& b, int64_t j0, int64_t j1, float* c,
                    int64_t ldc) {
    for (int64_t r = 0; r < rows; r += kRowGroup)
        if (!multiply_group(a + r * lda, lda, std::min(kRowGroup, rows - r), b, j0, j1, c + r * ldc, ldc)) return false;
    return true;
}
#endif  // DCN_ORT_AMX

}  // namespace

int64_t PackedB::depth(int64_t block) const { return round_up(std::min(kBlockK, k - block * kBlockK), 32) * kPieces; }

// Every block before the last has kBlockK values of k; a tile is hi [kd / 2][16][2], then lo the
// same (kd: the block's k rounded up to 32).
int64_t PackedB::tile_offset(int64_t block, int64_t t) const {
    return block * tiles * kBlockK * kPieces * 16 + t * depth(block) * 16;
}
const uint16_t* PackedB::tile(int64_t block, int64_t t) const { return data.data() + tile_offset(block, t); }

std::unique_ptr<PackedB> pack_b(const float* b, int64_t n, int64_t k) {
    auto p = std::make_unique<PackedB>();
    p->n = n;
    p->k = k;
    p->tiles = round_up(n, 32) / 16;
    const int64_t blocks = p->blocks();
    p->data.assign(static_cast<size_t>(blocks == 0 ? 0 : p->tile_offset(blocks - 1, p->tiles)), 0);
    for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t k0 = blk * kBlockK, kn = std::min(kBlockK, k - k0), kd = round_up(kn, 32);
        for (int64_t t = 0; t < p->tiles; ++t) {
            uint16_t* tile = p->data.data() + p->tile_offset(blk, t);
            for (int64_t col = 0; col < 16 && t * 16 + col < n; ++col) {
                const float* row = b + (t * 16 + col) * k + k0;
                for (int64_t q = 0; q < kn; ++q) {
                    if (!splittable(row[q])) return nullptr;
                    // pair q / 2, half q % 2 of column col; lo past hi's kd / 2 pairs
                    const uint16_t hi = to_bf16(row[q]);
                    tile[(q / 2) * 32 + col * 2 + q % 2] = hi;
                    tile[kd * 16 + (q / 2) * 32 + col * 2 + q % 2] = to_bf16(row[q] - from_bf16(hi));
                }
            }
        }
    }
    return p;
}

bool available(std::string* why) {
#if DCN_ORT_AMX
    static const Support support = probe();
    if (why != nullptr) *why = support.why;
    return support.ok;
#else
    if (why != nullptr) *why = "this build has no AMX code (x86-64 Linux with GCC 11+ or Clang only)";
    return false;
#endif
}

bool chosen_by_env() {
    switch (env_choice("DCN_ORT_GEMM", {"auto", "bf16x3", "sgemm"})) {
    case 0:
        return available();
    case 1: {
        std::string why;
        if (!available(&why)) throw std::runtime_error("DCN_ORT_GEMM=bf16x3: not available here: " + why);
        return true;
    }
    default:
        return false;
    }
}

bool multiply(const float* a, int64_t lda, int64_t rows, const PackedB& b, int64_t j0, int64_t j1, float* c,
              int64_t ldc) {
#if DCN_ORT_AMX
    if (rows <= 0 || j1 <= j0) return true;
    return multiply_tiles(a, lda, rows, b, j0, j1, c, ldc);
#else
    (void)a, (void)lda, (void)rows, (void)b, (void)j0, (void)j1, (void)c, (void)ldc;
    return false;
#endif
}

}  // namespace amx
}  // namespace dcn_ort
