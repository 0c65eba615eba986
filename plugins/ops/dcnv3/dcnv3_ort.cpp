// dcn::DCNv3 for ONNX Runtime (CPU): inputs X [N, H, W, C], offset [N, Ho, Wo, G*P*2], mask
// [N, Ho, Wo, G*P]; float32 and float16; the computation is the aggregation ops'
// (plugins/ort/ort_aggregate.h) on the layout validate_dcnv3 describes.
#include "dcnv3_math.h"
#include "ort_aggregate.h"   // plugins/ort
#include "ort_custom_op.h"   // plugins/ort
#include "ort_ops.h"         // plugins/ort

namespace dcn_ort {
namespace {

template <class T> struct DCNv3Kernel : KernelBase<DCNv3Kernel<T>> {
    DCNv3Kernel(const OrtKernelInfo* info) : attrs_(info, dcn::kDCNv3Name) {
        read_aggregate_attrs(attrs_, a_);
        check(dcn::validate_aggregate_attrs(dcn::kDCNv3Name, attrs_.node(), a_));
    }

    void Compute(OrtKernelContext* context) {
        Ort::KernelContext ctx(context);
        const Ort::ConstValue X = ctx.GetInput(0), offset = ctx.GetInput(1), mask = ctx.GetInput(2);
        const std::vector<int64_t> xs = shape_of(X), os = shape_of(offset), ms = shape_of(mask);
        dcn::AggregateDims d{};
        check(dcn::validate_dcnv3(attrs_.node(), a_, xs, os, ms, &d));
        Ort::UnownedValue Y = ctx.GetOutput(0, {d.N, d.outH, d.outW, d.C});
        if (d.N == 0) return;
        aggregate_compute<T>(ctx, X.GetTensorData<T>(), offset.GetTensorData<T>(), mask.GetTensorData<T>(), d,
                             Y.GetTensorMutableData<T>());
    }

  private:
    Attributes attrs_;
    dcn::AggregateAttrs a_;
};

struct DCNv3Spec {
    static constexpr const char* kName = dcn::kDCNv3Name;
    static constexpr size_t kNbInputs = 3;  // X, offset, mask
    static bool isFloat32Input(size_t /*index*/) { return false; }
    static bool isOptionalInput(size_t /*index*/) { return false; }
};

}  // namespace

void add_dcnv3(Ort::CustomOpDomain& domain, int api_version) {
    add_custom_op<DCNv3Kernel, DCNv3Spec>(domain, api_version);
}

}  // namespace dcn_ort
