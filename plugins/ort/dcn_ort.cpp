// libdcn_ort: ONNX Runtime custom ops dcn::DeformConv2d, dcn::DeformPSROIPool and dcn::DeformRoIPool (CPU).
// Load with SessionOptions.register_custom_ops_library(path) (Python) or
// RegisterCustomOpsLibrary / Ort::CustomOpConfigs (C/C++); the entry point is RegisterCustomOps.
#include <cstdio>
#include <string>

#include "ort_common.h"
#include "ort_ops.h"

namespace {
constexpr const char* kDomain = "dcn";
}

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
    // The newest C API both these headers and the running ONNX Runtime know (ONNX Runtime 1.N
    // serves API versions 1..N; asking for a newer one makes it print an error). The ops need
    // dcn_ort::kMinOrtApiVersion; the API table only grows, so any version from there works.
    int version = ORT_API_VERSION;
    const char* running = api_base->GetVersionString();
    int major = 0, minor = 0;
    if (running && std::sscanf(running, "%d.%d", &major, &minor) == 2 && major == 1 && minor < version)
        version = minor;
    const OrtApi* api = nullptr;
    while (version >= dcn_ort::kMinOrtApiVersion && (api = api_base->GetApi(version)) == nullptr) --version;
    if (api == nullptr) {
        const std::string msg = std::string("libdcn_ort needs ONNX Runtime >= 1.") +
                                std::to_string(dcn_ort::kMinOrtApiVersion) + " (C API version " +
                                std::to_string(dcn_ort::kMinOrtApiVersion) + "), this process runs " +
                                (running ? running : "an unknown version");
        return api_base->GetApi(1)->CreateStatus(ORT_FAIL, msg.c_str());
    }
    Ort::InitApi(api);
    return dcn_ort::guarded([&] {
        // One domain for every session of the process: it must outlive them all, so it is never
        // released (no ORT call during static destruction either).
        static Ort::CustomOpDomain* const domain = [&] {
            auto* d = new Ort::CustomOpDomain(kDomain);
            dcn_ort::add_deform_conv2d(*d, version);
            dcn_ort::add_deform_psroi_pool(*d, version);
            dcn_ort::add_deform_roi_pool(*d, version);
            dcn_ort::add_multi_scale_deformable_attention(*d, version);
            return d;
        }();
        Ort::UnownedSessionOptions(options).Add(*domain);
    });
}
