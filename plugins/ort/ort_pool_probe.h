// Whether small work spread over the session's intra-op pool pays off (the ONNX Runtime ops).
// The pool's idle workers spin a while by default, and then items side by side take about half
// the time; a session with session.intra_op.allow_spinning = 0 (or workers busy elsewhere) lets
// them sleep, and waking one costs more than small work saves. Measured on bench_ort_ops.py's
// "small" row (74k values of work, two threads, this 2-vCPU VM, us): workers spinning, side by
// side 54-58 and on the calling thread 70-77; sleeping, side by side 92-102 and on the calling
// thread 69-75 (caches cleared before each run: spinning 125-136 / 157-163, sleeping 187-199 /
// 142-160). An op cannot read its session's settings through the C API it is built against (API
// 21; KernelInfo_GetConfigEntries came with 1.24), so PoolProbe measures: each way's wall time per
// value over its last kSamples runs (the median), the faster way taken, and every kProbeEvery
// runs two the other way, so that a change (workers going to sleep, or waking up) is seen. A run
// right after one the other way is not counted: the first run on the pool after runs on this
// thread finds its workers asleep even where they spin between runs.
// Each item is the same arithmetic either way: the choice never changes a result.
//
// DCN_ORT_SMALL_WORK, read when a kernel is made: "auto" (or unset) as above, "pool" always side
// by side, "serial" always on the calling thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>

#include "ort_env.h"  // plugins/ort

namespace dcn_ort {

class PoolProbe {
  public:
    enum class Mode { kAuto, kPool, kSerial };  // DCN_ORT_SMALL_WORK's words, in order
    static constexpr int kSamples = 3;
    static constexpr int64_t kProbeEvery = 32;

    PoolProbe() : mode_(mode_by_env()) {}

    static Mode mode_by_env() {
        return static_cast<Mode>(env_choice("DCN_ORT_SMALL_WORK", {"auto", "pool", "serial"}));
    }

    // Whether this run takes its items on the calling thread: each way first measured kSamples
    // times (the pool first), then the faster, the other for two runs every kProbeEvery.
    bool serial_now() {
        if (mode_ != Mode::kAuto) return mode_ == Mode::kSerial;
        std::lock_guard<std::mutex> lock(mutex_);
        ++runs_;
        if (way_[kPoolWay].count < kSamples) return false;
        if (way_[kSerialWay].count < kSamples) return true;
        const bool serial_faster = way_[kSerialWay].median() < way_[kPoolWay].median();
        return runs_ % kProbeEvery < 2 ? !serial_faster : serial_faster;
    }

    // How a run went: on this thread or not, its wall time (ns) and its work (values); counted
    // where the run before went the same way.
    void report(bool serial, int64_t wall_ns, double values) {
        if (mode_ != Mode::kAuto || values <= 0) return;
        std::lock_guard<std::mutex> lock(mutex_);
        if (last_ == (serial ? kSerialWay : kPoolWay)) way_[last_].add(static_cast<double>(wall_ns) / values);
        last_ = serial ? kSerialWay : kPoolWay;
    }

    static int64_t now_ns() {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }

  private:
    static constexpr int kPoolWay = 0, kSerialWay = 1;
    struct Way {  // the last kSamples times per value, a ring
        double ns[kSamples] = {};
        int count = 0, next = 0;
        void add(double v) {
            ns[next] = v;
            next = (next + 1) % kSamples;
            count = std::min(count + 1, kSamples);
        }
        double median() const {
            double s[kSamples];
            std::copy(ns, ns + kSamples, s);
            std::sort(s, s + kSamples);
            return s[kSamples / 2];
        }
    };
    Mode mode_;
    std::mutex mutex_;
    int64_t runs_ = 0;
    int last_ = -1;  // the way the last run reported went
    Way way_[2];
};

}  // namespace dcn_ort
