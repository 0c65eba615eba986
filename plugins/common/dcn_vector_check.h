// dcn_vector_check.h: the host emulation's check of the kernels' vector accesses. On a GPU the
// kernels load and store 8 to 32 bytes at once (float4, uint4, half2 ...), which faults where the
// address is not a multiple of the access size; on the host the same thread functions copy element
// by element, so nothing would show such an address. note_vector_access (called by the host branch
// of every vector load / store helper) counts them; the host tests read and reset the count
// (dcn_host_misaligned_vector_accesses) and expect none for the launchers' choices. Not compiled
// into device code; only the CUDA launch headers' helpers call it (where a load helper is math
// shared with an ONNX Runtime op, its op's launch header checks the addresses per thread item).
#pragma once

#include <cstdint>

namespace dcn {

#if !defined(__CUDA_ARCH__)
inline int64_t& misaligned_vector_accesses() {
    static thread_local int64_t n = 0;  // the host emulation runs on the calling thread
    return n;
}
// p: the address a GPU would access `bytes` (a power of two) at once.
inline void note_vector_access(const void* p, int64_t bytes) {
    if (bytes > 1 && reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes) != 0) ++misaligned_vector_accesses();
}
#endif

}  // namespace dcn
