// host_pool_probe.cpp: the ONNX Runtime ops' choice between the pool and the calling thread for
// small work (plugins/ort/ort_pool_probe.h), driven over scripted run times, exported with C
// linkage for tests/test_ort_pool_probe.py (ctypes). Test code: it only loops and calls the header.
#include <cstdint>
#include <exception>

#include "host_tests.h"      // plugins/tests
#include "ort_pool_probe.h"  // plugins/ort

// A PoolProbe made now (DCN_ORT_SMALL_WORK read as a kernel would), over `runs` runs: run i asks
// which way to go (serial[i] = 1: the calling thread), then reports its wall time for one value of
// work: serial_ns[i], or pool_ns[i] plus wake_ns where the run before went the other way (workers
// that slept meanwhile). 0 when fine, 1 with a message in msg.
DCN_EXPORT int dcn_host_pool_probe(const double* pool_ns, const double* serial_ns, double wake_ns, int64_t runs,
                                   uint8_t* serial, char* msg, size_t msg_size) {
    try {
        dcn_ort::PoolProbe probe;
        for (int64_t i = 0; i < runs; ++i) {
            const bool s = probe.serial_now();
            serial[i] = s ? 1 : 0;
            const double pool = pool_ns[i] + (i > 0 && serial[i - 1] ? wake_ns : 0.0);
            probe.report(s, static_cast<int64_t>(s ? serial_ns[i] : pool), 1.0);
        }
        return dcn_host::report("", msg, msg_size);
    } catch (const std::exception& e) {
        return dcn_host::report(e.what(), msg, msg_size);
    }
}
