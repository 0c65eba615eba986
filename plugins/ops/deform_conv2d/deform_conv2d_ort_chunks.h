// The DeformConv2d ONNX Runtime op's chunking (deform_conv2d_ort.cpp only): how many columns one
// GEMM call takes (the L2 budget, chunk widths) and from how many items on they run side by side
// (the CPUs this process may run on).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <thread>
#if __has_include(<unistd.h>)
#include <unistd.h>  // sysconf: the L2 cache size
#endif
#if defined(__linux__)
#include <sched.h>  // sched_getaffinity: the CPUs this process may run on
#endif

namespace dcn_ort {

// Columns of at most one core's L2 cache per GEMM call (sysconf; 1 MiB where it is not known),
// within [256 KiB, 8 MiB]: images, or runs of output positions of one image, sampled and then
// multiplied while the columns are still in L2. Measured (bench_ort_ops.py layers, 2 MiB L2):
// 1 and 2 MiB equal at one thread; at two threads 2 MiB took 0.79 / 0.92 of ORT's DeformConv
// time on c3 / c4 where 1 MiB took 0.86 / 0.96 (fewer, larger chunks; past the L2 size, 4 and 8 MiB
// gained little more at two threads and lost at one).
constexpr size_t kDefaultChunkBytes = size_t{1} << 20;
constexpr size_t kMinChunkBytes = size_t{256} << 10;
constexpr size_t kMaxChunkBytes = size_t{8} << 20;
inline size_t chunk_bytes() {
    static const size_t bytes = [] {
        long l2 = -1;
#if defined(_SC_LEVEL2_CACHE_SIZE)
        l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
        return l2 <= 0 ? kDefaultChunkBytes : std::clamp(static_cast<size_t>(l2), kMinChunkBytes, kMaxChunkBytes);
    }();
    return bytes;
}
// The fewest output positions of a chunk (very deep inputs: C*kH*kW*16 floats over the budget).
constexpr int64_t kMinChunkPositions = 16;
// Runs of output positions at least this wide where their columns stay within kMaxChunkBytes,
// even past the L2 budget: MLAS's GEMM runs narrow right-hand sides slower (ONNX Runtime's MatMul
// of c5's 512 x 4608 weights, 2 MiB L2, one thread: 123 GFLOP/s on runs of 96 positions, 144 on
// 256). Measured ours / ORT DeformConv (bench_ort_ops.py layers, median of 3 interleaved runs):
// c5 0.99 -> 0.95 at one thread and 1.02 -> 0.97 at two (one chunk of 256 positions instead of
// three of 96), c4 0.82 -> 0.81 and 1.01 -> 1.01 (256 instead of 208), c3 unchanged (416 already).
constexpr int64_t kWideChunkPositions = 256;
// Image batches, or the chunks of one image batch, run side by side, each sampled and multiplied
// start to end by one thread (its columns stay in that core's L2; one MatMul call per thread,
// nested in the pool's loop), where there are at least this many of them: as many as this
// process may run on (its CPU affinity, else the hardware threads; at least 2), so that every
// core gets one (an op cannot read its session's thread count through ONNX Runtime's C API;
// images that fit the budget together are batched no more than N / this, so that every core
// gets a batch). Fewer run one after the other, each step spread over the pool. Either way each
// output value is the same arithmetic (bit for bit the same at one thread). Measured (bench_ort_ops.py layers, two threads,
// 2 MiB L2, both builds side by side, two runs): c3 (10 chunks) 0.86-0.87, c4 (4 chunks)
// 0.89-0.91, c3 at 100x100 0.87 of the time of one after the other; one thread 0.99-1.01 (the
// same work). On a machine with 512 KiB of L2 (AMD EPYC) the same idea had measured 0.90-0.98
// at two threads.
inline int64_t side_by_side_items() {
    static const int64_t n = [] {
        int64_t cpus = std::thread::hardware_concurrency();
#if defined(__linux__) && defined(CPU_COUNT)
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
#endif
        return std::max<int64_t>(2, cpus);
    }();
    return n;
}

// Layers of fewer column values than this (and at least kSerialWork, ort_common.h) and fewer
// images than CPUs: their positions in one run per CPU, the runs side by side, each start to end
// on one thread (one wake of the pool, where the steps of a single chunk wake it each: taps,
// columns, GEMM). Measured against one chunk (32ch and 64ch 16x16, batch 1, two threads, 2 MiB
// L2): idle workers spinning (ONNX Runtime's default; each library in its own process) 0.83-0.96
// of the time, not spinning (both in one process, interleaved) 0.75-0.82. Layers this small
// whose images or runs would go side by side take them on the calling thread, one after the
// other, where the pool does not pay off (its workers asleep: PoolProbe, ort_pool_probe.h).
constexpr double kSmallLayerValues = 262144.0;

}  // namespace dcn_ort
