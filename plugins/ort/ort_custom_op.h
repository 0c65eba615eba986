// The ONNX Runtime glue every dcn op shares: one Ort::CustomOpBase class for all of them and
// the registration of its float32 and float16 kernels. An op's file holds its Kernel<T> (the
// attributes and Compute, deriving from KernelBase) and a Spec: kName (dcn_fields.h), kNbInputs, kInputs
// (the contract's input names, for messages; optional), isFloat32Input(i) (inputs that are float32 in both kernels: the RoI
// pools' rois) and isOptionalInput(i).
//
// A float32 input is declared with any element type, so that a wrong one (float16 RoIs in a float16
// graph) is refused by the kernel's creation with the contract's one-line message rather than ONNX
// Runtime's "Type 'tensor(float16)' of input parameter ... is invalid".
#pragma once

#include <string>
#include <type_traits>

#include "ort_common.h"

namespace dcn_ort {

// ONNX Runtime calls a kernel's ComputeV2: Kernel<T> derives from KernelBase<Kernel<T>> and
// defines Compute(OrtKernelContext*), whose exceptions become an OrtStatus (guarded).
template <class Kernel> struct KernelBase {
    OrtStatusPtr ComputeV2(OrtKernelContext* context) {
        return guarded([&] { static_cast<Kernel*>(this)->Compute(context); });
    }
};

// The contract's name of input i: Spec::kInputs[i] where the Spec lists them, else "input <i>".
template <class Spec, class = void> struct InputName {
    static std::string of(size_t i) { return "input " + std::to_string(i); }
};
template <class Spec> struct InputName<Spec, std::void_t<decltype(Spec::kInputs)>> {
    static std::string of(size_t i) { return Spec::kInputs[i]; }
};

template <template <class> class Kernel, class Spec, class T>
struct CustomOp : Ort::CustomOpBase<CustomOp<Kernel, Spec, T>, Kernel<T>, /*WithStatus=*/true> {
    explicit CustomOp(int api_version) { this->version = static_cast<uint32_t>(api_version); }

    OrtStatusPtr CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
        return guarded([&] {
            check_float32_inputs(info);
            *kernel = new Kernel<T>(info);
        });
    }
    const char* GetName() const { return Spec::kName; }
    size_t GetInputTypeCount() const { return Spec::kNbInputs; }
    ONNXTensorElementDataType GetInputType(size_t index) const {
        return Spec::isFloat32Input(index) ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED : element_type<T>();
    }
    OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
        return Spec::isOptionalInput(index) ? OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_OPTIONAL
                                            : OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED;
    }
    size_t GetOutputTypeCount() const { return 1; }
    ONNXTensorElementDataType GetOutputType(size_t) const { return element_type<T>(); }

  private:
    // Every input the contract fixes to float32 that the node gives: float32, else the contract's message.
    static void check_float32_inputs(const OrtKernelInfo* info) {
        const Ort::ConstKernelInfo ki(info);
        const size_t n = ki.GetInputCount() < Spec::kNbInputs ? ki.GetInputCount() : Spec::kNbInputs;
        for (size_t i = 0; i < n; ++i) {
            if (!Spec::isFloat32Input(i) || ki.GetInputName(i).empty()) continue;
            const ONNXTensorElementDataType got = ki.GetInputTypeInfo(i).GetTensorTypeAndShapeInfo().GetElementType();
            if (got != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
                throw InvalidArgument(dcn::op_prefix(Spec::kName, ki.GetNodeName()) + InputName<Spec>::of(i) +
                                      " has element type " + element_type_name(got) +
                                      ", expected float32 (RoIs and other coordinates are float32, also in "
                                      "float16 models)");
        }
    }
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
