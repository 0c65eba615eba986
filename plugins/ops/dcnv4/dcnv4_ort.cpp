// dcn::DCNv4 for ONNX Runtime (CPU): inputs X [N, H, W, C] and offset_mask [N, Ho, Wo, K >= G*P*3]
// (per group P (dx, dy) pairs then P raw masks; channels past G*P*3 ignored); float32 and float16; the
// computation is the aggregation ops' (plugins/ort/ort_aggregate.h), offsets and masks read from one tensor.
#include "dcnv4_math.h"
#include "ort_aggregate.h"   // plugins/ort
#include "ort_custom_op.h"   // plugins/ort
#include "ort_ops.h"         // plugins/ort

namespace dcn_ort {
namespace {

template <class T> struct DCNv4Kernel : KernelBase<DCNv4Kernel<T>> {
    DCNv4Kernel(const OrtKernelInfo* info) : attrs_(info, dcn::kDCNv4Name) {
        read_aggregate_attrs(attrs_, a_);
        check(dcn::validate_aggregate_attrs(dcn::kDCNv4Name, attrs_.node(), a_));
    }

    void Compute(OrtKernelContext* context) {
        Ort::KernelContext ctx(context);
        const Ort::ConstValue X = ctx.GetInput(0), om = ctx.GetInput(1);
        const std::vector<int64_t> xs = shape_of(X), oms = shape_of(om);
        dcn::AggregateDims d{};
        check(dcn::validate_dcnv4(attrs_.node(), a_, xs, oms, &d));
        Ort::UnownedValue Y = ctx.GetOutput(0, {d.N, d.outH, d.outW, d.C});
        if (d.N == 0) return;
        const T* packed = om.GetTensorData<T>();
        aggregate_compute<T>(ctx, X.GetTensorData<T>(), packed, packed, d, Y.GetTensorMutableData<T>());
    }

  private:
    Attributes attrs_;
    dcn::AggregateAttrs a_;
};

struct DCNv4Spec {
    static constexpr const char* kName = dcn::kDCNv4Name;
    static constexpr size_t kNbInputs = 2;  // X, offset_mask
    static bool isFloat32Input(size_t /*index*/) { return false; }
    static bool isOptionalInput(size_t /*index*/) { return false; }
};

}  // namespace

void add_dcnv4(Ort::CustomOpDomain& domain, int api_version) {
    add_custom_op<DCNv4Kernel, DCNv4Spec>(domain, api_version);
}

}  // namespace dcn_ort
