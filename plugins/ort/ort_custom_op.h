// The ONNX Runtime glue every dcn op shares: one Ort::CustomOpBase class for all of them and
// the registration of its float32 and float16 kernels. An op's file holds its Kernel<T> (the
// attributes and Compute, deriving from KernelBase) and a Spec: kName (dcn_fields.h), kNbInputs, isFloat32Input(i)
// (inputs that are float32 in both kernels: the RoI pools' rois) and isOptionalInput(i).
#pragma once

#include "ort_common.h"

namespace dcn_ort {

// ONNX Runtime calls a kernel's ComputeV2: Kernel<T> derives from KernelBase<Kernel<T>> and
// defines Compute(OrtKernelContext*), whose exceptions become an OrtStatus (guarded).
template <class Kernel> struct KernelBase {
    OrtStatusPtr ComputeV2(OrtKernelContext* context) {
        return guarded([&] { static_cast<Kernel*>(this)->Compute(context); });
    }
};

template <template <class> class Kernel, class Spec, class T>
struct CustomOp : Ort::CustomOpBase<CustomOp<Kernel, Spec, T>, Kernel<T>, /*WithStatus=*/true> {
    explicit CustomOp(int api_version) { this->version = static_cast<uint32_t>(api_version); }

    OrtStatusPtr CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
        return guarded([&] { *kernel = new Kernel<T>(info); });
    }
    const char* GetName() const { return Spec::kName; }
    size_t GetInputTypeCount() const { return Spec::kNbInputs; }
    ONNXTensorElementDataType GetInputType(size_t index) const {
        return Spec::isFloat32Input(index) ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : element_type<T>();
    }
    OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
        return Spec::isOptionalInput(index) ? OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_OPTIONAL
                                            : OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED;
    }
    size_t GetOutputTypeCount() const { return 1; }
    ONNXTensorElementDataType GetOutputType(size_t) const { return element_type<T>(); }
};

// Adds the op's float32 and float16 kernels to the domain; OrtCustomOp::version = api_version.
template <template <class> class Kernel, class Spec>
void add_custom_op(Ort::CustomOpDomain& domain, int api_version) {
    static CustomOp<Kernel, Spec, float> op_f32(api_version);
    static CustomOp<Kernel, Spec, dcn::Half> op_f16(api_version);
    domain.Add(&op_f32);
    domain.Add(&op_f16);
}

}  // namespace dcn_ort
