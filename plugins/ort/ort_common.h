// Shared plumbing of the ONNX Runtime custom ops: API version, errors as OrtStatus,
// attribute reading with the contract's names and defaults, ParallelFor over the
// session's intra-op thread pool. No math here: that is each op's <op>_math.h on
// plugins/common/dcn_math.h.
#pragma once

#define ORT_API_MANUAL_INIT
#include "onnxruntime_cxx_api.h"
#undef ORT_API_MANUAL_INIT

#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "dcn_fields.h"    // plugins/common
#include "dcn_math.h"      // plugins/common
#include "dcn_validate.h"  // plugins/common

namespace dcn_ort {

// The lowest ONNX Runtime C API version the ops need: KernelContext_ParallelFor (1.17),
// CreateKernelV2 / KernelComputeV2 (1.16), KernelInfo_GetNodeName and
// KernelContext_GetAllocator (1.15), CreateOp / InvokeOp (1.12).
constexpr int kMinOrtApiVersion = 17;

// A contract violation (bad attribute or input): reported as ORT_INVALID_ARGUMENT.
struct InvalidArgument : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Runs f, turning any exception into an OrtStatus (nullptr when f returns normally).
template <class F> OrtStatusPtr guarded(F&& f) noexcept {
    try {
        f();
        return nullptr;
    } catch (const InvalidArgument& e) {
        return Ort::GetApi().CreateStatus(ORT_INVALID_ARGUMENT, e.what());
    } catch (const Ort::Exception& e) {
        return Ort::GetApi().CreateStatus(e.GetOrtErrorCode(), e.what());
    } catch (const std::exception& e) {
        return Ort::GetApi().CreateStatus(ORT_FAIL, e.what());
    } catch (...) {
        return Ort::GetApi().CreateStatus(ORT_FAIL, "dcn_ort: unknown exception");
    }
}

inline void check(const std::string& message) {
    if (!message.empty()) throw InvalidArgument(message);
}

// Reads node attributes by the contract's names; a missing required attribute or one of
// the wrong type is an InvalidArgument naming op type, node and attribute.
class Attributes {
  public:
    Attributes(const OrtKernelInfo* info, const char* op_type) : info_(info), op_type_(op_type) {
        node_ = Ort::ConstKernelInfo(info).GetNodeName();
    }
    const std::string& node() const { return node_; }

    int64_t get_int(const char* name, const int64_t* fallback) const {
        int64_t v = 0;
        if (ok(Ort::GetApi().KernelInfoGetAttribute_int64(info_, name, &v))) return v;
        absent_or_wrong(name, "an INT", fallback != nullptr);  // throws unless there is a fallback
        return *fallback;
    }
    int64_t get_int(const char* name, int64_t fallback) const { return get_int(name, &fallback); }
    int64_t get_int(const char* name) const { return get_int(name, nullptr); }

    double get_float(const char* name, const double* fallback) const {
        float v = 0;
        if (ok(Ort::GetApi().KernelInfoGetAttribute_float(info_, name, &v))) return v;
        absent_or_wrong(name, "a FLOAT", fallback != nullptr);  // throws unless there is a fallback
        return *fallback;
    }
    double get_float(const char* name, double fallback) const { return get_float(name, &fallback); }
    double get_float(const char* name) const { return get_float(name, nullptr); }

    // INTS; `fallback` when absent (an empty vector for an optional one without default).
    std::vector<int64_t> get_ints(const char* name, std::vector<int64_t> fallback) const {
        size_t n = 0;
        if (ok(Ort::GetApi().KernelInfoGetAttributeArray_int64(info_, name, nullptr, &n))) {
            // ONNX Runtime reads an attribute of another type as 0 ints: look closer.
            if (n == 0 && other_than_empty_ints(name))
                throw InvalidArgument(dcn::attribute_type_message(op_type_, node_, name, "an INTS list"));
            std::vector<int64_t> v(n);
            if (n) Ort::ThrowOnError(Ort::GetApi().KernelInfoGetAttributeArray_int64(info_, name, v.data(), &n));
            return v;
        }
        absent_or_wrong(name, "an INTS list", true);
        return fallback;
    }

    // By the contract's table (dcn_fields.h): the field's name, and its default unless it
    // has none (required, or optional without default: an empty INTS list).
    int64_t get(const dcn::FieldSpec& f, int64_t*) const {
        return f.hasDefault ? get_int(f.name, static_cast<int64_t>(f.defaults[0])) : get_int(f.name);
    }
    double get(const dcn::FieldSpec& f, double*) const {
        return f.hasDefault ? get_float(f.name, f.defaults[0]) : get_float(f.name);
    }
    std::vector<int64_t> get(const dcn::FieldSpec& f, std::vector<int64_t>*) const {
        std::vector<int64_t> fallback;
        if (f.hasDefault)
            for (int32_t i = 0; i < f.length; ++i) fallback.push_back(static_cast<int64_t>(f.defaults[i]));
        return get_ints(f.name, fallback);
    }
    // field(table[i], out): reads the attribute into `out` by the table's name and default.
    template <class V> void field(const dcn::FieldSpec& f, V& out) const { out = get(f, static_cast<V*>(nullptr)); }

  private:
    static bool ok(OrtStatus* s) {
        if (!s) return true;
        Ort::GetApi().ReleaseStatus(s);
        return false;
    }
    // The attribute reads as an empty INTS list but holds something else (a scalar, FLOATS, a string).
    bool other_than_empty_ints(const char* name) const {
        const OrtApi& api = Ort::GetApi();
        int64_t i;
        float f;
        size_t n = 0, nf = 0;
        return ok(api.KernelInfoGetAttribute_int64(info_, name, &i)) ||
               ok(api.KernelInfoGetAttribute_float(info_, name, &f)) ||
               ok(api.KernelInfoGetAttribute_string(info_, name, nullptr, &n)) ||
               (ok(api.KernelInfoGetAttributeArray_float(info_, name, nullptr, &nf)) && nf > 0);
    }
    // The attribute could not be read as `kind`: throws if it is present with another type,
    // or absent and required.
    void absent_or_wrong(const char* name, const char* kind, bool has_default) const {
        const OrtApi& api = Ort::GetApi();
        int64_t i;
        float f;
        size_t n = 0;
        const bool present = ok(api.KernelInfoGetAttribute_int64(info_, name, &i)) ||
                             ok(api.KernelInfoGetAttribute_float(info_, name, &f)) ||
                             ok(api.KernelInfoGetAttribute_string(info_, name, nullptr, &n)) ||
                             ok(api.KernelInfoGetAttributeArray_int64(info_, name, nullptr, &n)) ||
                             ok(api.KernelInfoGetAttributeArray_float(info_, name, nullptr, &n));
        if (present) throw InvalidArgument(dcn::attribute_type_message(op_type_, node_, name, kind));
        if (!has_default) throw InvalidArgument(dcn::missing_attribute_message(op_type_, node_, name, kind));
    }

    const OrtKernelInfo* info_;
    const char* op_type_;
    std::string node_;
};

inline std::vector<int64_t> shape_of(const Ort::ConstValue& v) {
    return v.GetTensorTypeAndShapeInfo().GetShape();
}

// The optional input `index`, or an empty value when the node leaves it out.
inline Ort::ConstValue optional_input(const Ort::KernelContext& ctx, size_t index) {
    if (index >= ctx.GetInputCount()) return Ort::ConstValue(nullptr);
    return ctx.GetInput(index);
}

// A loop of fewer inner steps than this in all runs on the calling thread: waking the pool's
// workers (ORT sessions let idle workers sleep, or spin a while) costs more than they would save.
// Measured: an 8-channel 8x8 DeformConv2d took 39 us at two threads and 19 us at one (its five small
// loops each woke the pool), ORT's native DeformConv 20 us at both; with this rule, 19 us at both.
constexpr double kSerialWork = 16384.0;

// The items of a loop on the pool (parallel_for): run(f) runs f and keeps the first exception any
// item threw; rethrow() after the loop throws it on the calling thread (an exception must not leave
// an item: it would unwind through ONNX Runtime's C callback on a pool thread).
class FirstError {
  public:
    template <class F> void run(const F& f) noexcept {
        try {
            f();
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!error_) error_ = std::current_exception();
        }
    }
    void rethrow() const {
        if (error_) std::rethrow_exception(error_);
    }

  private:
    std::mutex mutex_;
    std::exception_ptr error_;
};

// f(i) for i in [0, total) on the session's intra-op thread pool; work: about how many inner-loop
// steps (a sampled or converted value) one i takes, so that small loops stay on this thread. Where
// items throw, the first exception is thrown here once the loop is done.
template <class F> void parallel_for(const Ort::KernelContext& ctx, size_t total, double work, const F& f) {
    if (total == 0) return;
    if (total == 1 || static_cast<double>(total) * work < kSerialWork) {
        for (size_t i = 0; i < total; ++i) f(i);
        return;
    }
    struct Loop {
        explicit Loop(const F& fn) : f(fn) {}
        const F& f;
        FirstError error;
    } loop(f);
    ctx.ParallelFor(
        [](void* user, size_t i) {
            Loop& l = *static_cast<Loop*>(user);
            l.error.run([&] { l.f(i); });
        },
        total, 0, &loop);
    loop.error.rethrow();
}

// CPU memory info, created once and never released (no ORT call during static destruction).
inline const OrtMemoryInfo& cpu_memory_info() {
    static const OrtMemoryInfo* info = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault).release();
    return *info;
}

// A scratch buffer from the session's CPU allocator (its arena keeps it for the next run).
// The allocator handle KernelContext_GetAllocator returns is released with the buffer.
template <class T> class Scratch {
  public:
    Scratch(const Ort::KernelContext& ctx, size_t count) {
        if (count == 0) return;
        alloc_ = ctx.GetAllocator(cpu_memory_info());
        if (!alloc_) throw std::runtime_error("dcn_ort: no CPU allocator in the kernel context");
        data_ = static_cast<T*>(alloc_->Alloc(alloc_, count * sizeof(T)));
        if (!data_) {
            Ort::GetApi().ReleaseAllocator(alloc_);
            throw std::bad_alloc();
        }
    }
    ~Scratch() {
        if (data_) alloc_->Free(alloc_, data_);
        if (alloc_) Ort::GetApi().ReleaseAllocator(alloc_);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    T* get() const { return data_; }

  private:
    OrtAllocator* alloc_ = nullptr;
    T* data_ = nullptr;
};

// Scratch for the items of a parallel_for, one set per item running at once: take() hands out a
// free set (made by make() when none is free), give() returns it (Lease: both, for a scope). So
// one thread reuses one set, still in its cache, and n threads make n sets.
template <class B> class ScratchPool {
  public:
    class Lease {
      public:
        template <class Make> Lease(ScratchPool& pool, const Make& make) : pool_(pool), b_(pool.take(make)) {}
        ~Lease() { pool_.give(b_); }
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        B* operator->() const { return b_; }

      private:
        ScratchPool& pool_;
        B* b_;
    };

    template <class Make> B* take(const Make& make) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!free_.empty()) {
            B* b = free_.back();
            free_.pop_back();
            return b;
        }
        all_.push_back(make());
        return all_.back().get();
    }
    void give(B* b) {
        std::lock_guard<std::mutex> lock(mutex_);
        free_.push_back(b);
    }

  private:
    std::mutex mutex_;
    std::vector<std::unique_ptr<B>> all_;
    std::vector<B*> free_;
};

// The element type tag of T for the custom-op type constraint.
template <class T> constexpr ONNXTensorElementDataType element_type();
template <> constexpr ONNXTensorElementDataType element_type<float>() { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
template <> constexpr ONNXTensorElementDataType element_type<dcn::Half>() {
    return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
}

// An element type as ONNX / numpy spell it (messages).
inline const char* element_type_name(ONNXTensorElementDataType t) {
    switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return "bfloat16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "float64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return "int8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
    default: return "another type";
    }
}

}  // namespace dcn_ort
