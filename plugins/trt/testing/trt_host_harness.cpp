// trt_host_harness.cpp: the dcn TensorRT plugins driven on the host, without TensorRT's
// library or a GPU, for tests/test_trt_contract.py (ctypes).
//
// Built (scripts/check_cuda_build.sh, DCN_TRT_CHECK_ONLY=ON + DCN_TRT_HOST_HARNESS=ON) from
// the real plugin sources, the real CUDA kernels, the CUDA runtime and cuBLAS, against real
// TensorRT headers. TensorRT's library is replaced by what the plugins need of it:
// getLogger() (a logger that keeps the messages) and getPluginRegistry() (a registry that
// records creator registrations and implements the plugin resource calls,
// acquirePluginResource / releasePluginResource, with TensorRT's documented semantics;
// dcn_harness_use_registry(0) makes it null). The harness stands in for TensorRT's side of the
// plugin interface: it calls getCreators(), createPlugin() with fields built by the
// test, getFieldsToSerialize(), getOutputShapes() with an IExprBuilder whose expressions
// carry a value (symbolic or constant), supportsFormatCombination(), getOutputDataTypes(),
// configurePlugin(), getWorkspaceSize(), onShapeChange(), attachToContext() with an error
// recorder and one resource context per execution context id, and enqueue() (which, with
// no GPU, must fail with a reported, non-zero status). Device mode (a CUDA device present):
// dcn_harness_enqueue() runs enqueue on device buffers and a stream the caller owns
// (tests/trt_device.py: torch CUDA tensors, CUDA graphs, two contexts on two streams).
// Test code only; not part of the plugin library.
//
// Files: harness_nvinfer.* (the libnvinfer stand-in), harness_side.* (TensorRT's side: expressions,
// recorder, resource contexts, handles), this file (the C API the test calls). Nothing here names
// an op: the test passes op types and fields, and getCreators() lists every registered op.
#include "NvInferRuntime.h"

#include "cublas_resource.h"
#include "harness_nvinfer.h"
#include "harness_side.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

using namespace nvinfer1;
using namespace dcn_harness;

#define HARNESS_API extern "C" __attribute__((visibility("default")))

extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

// PluginFieldType / DataType codes by name, so the test hardcodes no enum value.
HARNESS_API int dcn_harness_enum(char const* name)
{
    struct E
    {
        char const* n;
        int v;
    } const table[] = {
        {"kFLOAT32", static_cast<int>(PluginFieldType::kFLOAT32)},
        {"kFLOAT64", static_cast<int>(PluginFieldType::kFLOAT64)},
        {"kINT32", static_cast<int>(PluginFieldType::kINT32)},
        {"kINT64", static_cast<int>(PluginFieldType::kINT64)},
        {"kFLOAT16", static_cast<int>(PluginFieldType::kFLOAT16)},
        {"kCHAR", static_cast<int>(PluginFieldType::kCHAR)},
        {"FP32", static_cast<int>(DataType::kFLOAT)},
        {"FP16", static_cast<int>(DataType::kHALF)},
        {"INT32", static_cast<int>(DataType::kINT32)},
        {"INT64", static_cast<int>(DataType::kINT64)},
        {"INT8", static_cast<int>(DataType::kINT8)},
        {"BF16", static_cast<int>(DataType::kBF16)},
        {"LINEAR", static_cast<int>(TensorFormat::kLINEAR)},
        {"CHW32", static_cast<int>(TensorFormat::kCHW32)},
    };
    for (E const& e : table)
    {
        if (std::strcmp(e.n, name) == 0)
        {
            return e.v;
        }
    }
    return -1000;
}

HARNESS_API int dcn_harness_trt_version()
{
    return NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH;
}

// JSON: [{"name", "version", "namespace", "interface", "fields": [{"name", "type", "length"}]}]
HARNESS_API int dcn_harness_describe(char* buf, size_t n)
{
    int32_t nb = 0;
    IPluginCreatorInterface* const* list = getCreators(nb);
    std::string o = "[";
    for (int32_t i = 0; i < nb; ++i)
    {
        auto* c = static_cast<IPluginCreatorV3One*>(list[i]);
        InterfaceInfo const info = c->getInterfaceInfo();
        o += std::string(i ? "," : "") + "{\"name\":" + jsonString(c->getPluginName())
            + ",\"version\":" + jsonString(c->getPluginVersion()) + ",\"namespace\":" + jsonString(c->getPluginNamespace())
            + ",\"interface\":" + jsonString(info.kind) + ",\"interface_major\":" + std::to_string(info.major)
            + ",\"fields\":[";
        PluginFieldCollection const* fc = c->getFieldNames();
        for (int32_t f = 0; fc && f < fc->nbFields; ++f)
        {
            PluginField const& pf = fc->fields[f];
            char const* type = pf.type == PluginFieldType::kINT32 ? "kINT32"
                : pf.type == PluginFieldType::kFLOAT32          ? "kFLOAT32"
                                                                : "other";
            o += std::string(f ? "," : "") + "{\"name\":" + jsonString(pf.name) + ",\"type\":" + jsonString(type)
                + ",\"length\":" + std::to_string(pf.length) + ",\"data_is_null\":" + (pf.data ? "false" : "true")
                + "}";
        }
        o += "]}";
    }
    o += "]";
    return copyOut(o, buf, n);
}

// createPlugin(layer, fields) in the given phase (0 build, 1 runtime); null on error (see the log).
HARNESS_API void* dcn_harness_create(char const* op, char const* layer, int32_t nbFields, char const* const* names,
    int32_t const* types, int32_t const* lengths, void const* const* data, int32_t phase)
{
    IPluginCreatorV3One* c = findCreator(op);
    if (c == nullptr)
    {
        gLogger.log(ILogger::Severity::kERROR, (std::string("harness: no creator ") + op).c_str());
        return nullptr;
    }
    std::vector<PluginField> fields;
    for (int32_t i = 0; i < nbFields; ++i)
    {
        fields.emplace_back(names[i], data[i], static_cast<PluginFieldType>(types[i]), lengths[i]);
    }
    PluginFieldCollection fc;
    fc.nbFields = nbFields;
    fc.fields = fields.data();
    return wrap(c->createPlugin(layer, &fc, phase ? TensorRTPhase::kRUNTIME : TensorRTPhase::kBUILD));
}

// getFieldsToSerialize() -> createPlugin(kRUNTIME) with exactly those fields (deserialization).
HARNESS_API void* dcn_harness_roundtrip(void* handle, char const* layer)
{
    auto* h = static_cast<Handle*>(handle);
    PluginFieldCollection const* fc = h->runtime->getFieldsToSerialize();
    if (fc == nullptr)
    {
        return nullptr;
    }
    IPluginCreatorV3One* c = findCreator(h->core->getPluginName());
    return wrap(c->createPlugin(layer, fc, TensorRTPhase::kRUNTIME));
}

// JSON {"name","version","namespace","metadata","fields":[{"name","type","length","values"}]}
HARNESS_API int dcn_harness_serialize(void* handle, char* buf, size_t n)
{
    auto* h = static_cast<Handle*>(handle);
    PluginFieldCollection const* fc = h->runtime->getFieldsToSerialize();
    std::string o = "{\"name\":" + jsonString(h->core->getPluginName()) + ",\"version\":"
        + jsonString(h->core->getPluginVersion()) + ",\"namespace\":" + jsonString(h->core->getPluginNamespace())
        + ",\"metadata\":" + jsonString(h->build->getMetadataString()) + ",\"fields\":[";
    for (int32_t f = 0; fc && f < fc->nbFields; ++f)
    {
        PluginField const& pf = fc->fields[f];
        std::string values;
        for (int32_t k = 0; k < pf.length; ++k)
        {
            values += k ? "," : "";
            if (pf.type == PluginFieldType::kFLOAT32)
            {
                char tmp[64];
                std::snprintf(tmp, sizeof tmp, "%.9g", static_cast<double>(static_cast<float const*>(pf.data)[k]));
                values += tmp;
            }
            else if (pf.type == PluginFieldType::kINT32)
            {
                values += std::to_string(static_cast<int32_t const*>(pf.data)[k]);
            }
        }
        o += std::string(f ? "," : "") + "{\"name\":" + jsonString(pf.name) + ",\"type\":"
            + jsonString(pf.type == PluginFieldType::kINT32 ? "kINT32" : pf.type == PluginFieldType::kFLOAT32 ? "kFLOAT32" : "other")
            + ",\"length\":" + std::to_string(pf.length) + ",\"values\":[" + values + "]}";
    }
    o += "]}";
    return copyOut(o, buf, n);
}

// getOutputShapes: inputs given as ranks / dims (8 per input) / symbolic flags (8 per input).
// Writes the output's rank, values and constness; returns the plugin's status.
HARNESS_API int dcn_harness_output_shapes(void* handle, int32_t nbInputs, int32_t const* ranks, int64_t const* dims,
    int32_t const* symbolic, int32_t* outRank, int64_t* outDims, int32_t* outConst, char* err, size_t errSize)
{
    auto* h = static_cast<Handle*>(handle);
    Builder b;
    std::vector<DimsExprs> in(static_cast<size_t>(nbInputs));
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        in[i].nbDims = ranks[i];
        for (int32_t k = 0; k < ranks[i]; ++k)
        {
            in[i].d[k] = b.make(symbolic[8 * i + k] == 0, dims[8 * i + k]);
        }
    }
    DimsExprs out{};
    int32_t const rc = h->build->getOutputShapes(in.data(), nbInputs, nullptr, 0, &out, 1, b);
    *outRank = out.nbDims;
    for (int32_t k = 0; rc == 0 && k < out.nbDims; ++k)
    {
        outDims[k] = static_cast<Dim const*>(out.d[k])->value();
        outConst[k] = out.d[k]->isConstant() ? 1 : 0;
    }
    copyOut(b.error, err, errSize);
    return rc;
}

HARNESS_API int dcn_harness_supports(void* handle, int32_t pos, int32_t nbInputs, int32_t nbOutputs,
    int32_t const* types, int32_t const* formats)
{
    auto* h = static_cast<Handle*>(handle);
    std::vector<DynamicPluginTensorDesc> io(static_cast<size_t>(nbInputs + nbOutputs));
    for (int32_t i = 0; i < nbInputs + nbOutputs; ++i)
    {
        io[i].desc.type = static_cast<DataType>(types[i]);
        io[i].desc.format = static_cast<TensorFormat>(formats[i]);
    }
    return h->build->supportsFormatCombination(pos, io.data(), nbInputs, nbOutputs) ? 1 : 0;
}

HARNESS_API int dcn_harness_output_types(void* handle, int32_t nbInputs, int32_t const* types, int32_t* outType)
{
    auto* h = static_cast<Handle*>(handle);
    std::vector<DataType> in(static_cast<size_t>(nbInputs));
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        in[i] = static_cast<DataType>(types[i]);
    }
    DataType out = DataType::kINT8;
    int const rc = h->build->getOutputDataTypes(&out, 1, in.data(), nbInputs);
    *outType = static_cast<int32_t>(out);
    return rc;
}

// configurePlugin + getWorkspaceSize for a profile from minDims (null: the given dims) to the
// given dims (opt = max); output dims given too (the largest).
HARNESS_API int dcn_harness_configure_range(void* handle, int32_t nbInputs, int32_t const* ranks,
    int64_t const* minDims, int64_t const* dims, int32_t const* types, int32_t outRank, int64_t const* outDims,
    int64_t* workspace)
{
    auto* h = static_cast<Handle*>(handle);
    std::vector<DynamicPluginTensorDesc> in = dynDescs(nbInputs, ranks, dims, types);
    for (int32_t i = 0; minDims != nullptr && i < nbInputs; ++i)
    {
        in[i].min = makeDims(ranks[i], minDims + 8 * i);
    }
    std::vector<DynamicPluginTensorDesc> out = dynDescs(1, &outRank, outDims, types);
    int const rc = h->build->configurePlugin(in.data(), nbInputs, out.data(), 1);
    *workspace = static_cast<int64_t>(h->build->getWorkspaceSize(in.data(), nbInputs, out.data(), 1));
    return rc;
}

// configurePlugin + getWorkspaceSize with min = opt = max = the given dims; output dims given too.
HARNESS_API int dcn_harness_configure(void* handle, int32_t nbInputs, int32_t const* ranks, int64_t const* dims,
    int32_t const* types, int32_t outRank, int64_t const* outDims, int64_t* workspace)
{
    return dcn_harness_configure_range(handle, nbInputs, ranks, nullptr, dims, types, outRank, outDims, workspace);
}

// attachToContext (with the harness's error recorder) -> a new handle for the runtime clone.
HARNESS_API void* dcn_harness_attach(void* handle)
{
    auto* h = static_cast<Handle*>(handle);
    return wrap(h->runtime->attachToContext(resourceContext(0)));
}

// The same for execution context `contextId` (its own IPluginResourceContext).
HARNESS_API void* dcn_harness_attach_context(void* handle, int32_t contextId)
{
    auto* h = static_cast<Handle*>(handle);
    return wrap(h->runtime->attachToContext(resourceContext(contextId)));
}

// IPluginV3::clone() -> a new handle.
HARNESS_API void* dcn_harness_clone(void* handle)
{
    return wrap(static_cast<Handle*>(handle)->plugin->clone());
}

// 1: getPluginRegistry() returns the harness registry (default); 0: null (the plugins then
// use their process-local registry, as a library built without libnvinfer does).
HARNESS_API void dcn_harness_use_registry(int32_t on)
{
    gUseRegistry = on != 0;
}

// JSON {"live": cuBLAS resources alive, "registered", "deregistered", "acquires", "releases",
// "keys": {key: reference count}} of the harness registry.
HARNESS_API int dcn_harness_resources(char* buf, size_t n)
{
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    std::string o = "{\"live\":" + std::to_string(dcn::trt::liveCublasResources()) + ",\"registered\":"
        + std::to_string(r.registered) + ",\"deregistered\":" + std::to_string(r.deregistered) + ",\"acquires\":"
        + std::to_string(r.acquires) + ",\"releases\":" + std::to_string(r.releases) + ",\"keys\":{";
    bool first = true;
    for (auto const& kv : r.resources)
    {
        o += std::string(first ? "" : ",") + jsonString(kv.first.c_str()) + ":" + std::to_string(kv.second.second);
        first = false;
    }
    o += "}}";
    return copyOut(o, buf, n);
}

// onShapeChange with the given dims (runtime clone). Returns its status.
HARNESS_API int dcn_harness_shape_change(void* handle, int32_t nbInputs, int32_t const* ranks, int64_t const* dims,
    int32_t const* types, int32_t outRank, int64_t const* outDims)
{
    auto* h = static_cast<Handle*>(handle);
    std::vector<DynamicPluginTensorDesc> in = dynDescs(nbInputs, ranks, dims, types);
    std::vector<DynamicPluginTensorDesc> out = dynDescs(1, &outRank, outDims, types);
    std::vector<PluginTensorDesc> inD(static_cast<size_t>(nbInputs));
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        inD[i] = in[i].desc;
    }
    PluginTensorDesc outD = out[0].desc;
    return h->runtime->onShapeChange(inD.data(), nbInputs, &outD, 1);
}

// enqueue on the caller's buffers and stream (device pointers; `stream` a cudaStream_t,
// null for the legacy default stream), with the given descriptors; outType is the output's
// DataType. Returns enqueue's status. Nothing is synchronised here.
HARNESS_API int dcn_harness_enqueue(void* handle, int32_t nbInputs, int32_t const* ranks, int64_t const* dims,
    int32_t const* types, int32_t outRank, int64_t const* outDims, int32_t outType, void const* const* inputs,
    void* output, void* workspace, void* stream)
{
    auto* h = static_cast<Handle*>(handle);
    std::vector<DynamicPluginTensorDesc> in = dynDescs(nbInputs, ranks, dims, types);
    std::vector<DynamicPluginTensorDesc> out = dynDescs(1, &outRank, outDims, &outType);
    std::vector<PluginTensorDesc> inD(static_cast<size_t>(nbInputs));
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        inD[i] = in[i].desc;
    }
    PluginTensorDesc outD = out[0].desc;
    void* outputs[1] = {output};
    return h->runtime->enqueue(inD.data(), &outD, inputs, outputs, workspace, static_cast<cudaStream_t>(stream));
}

// onShapeChange with the given dims, then enqueue with null device pointers (no GPU here:
// the plugin must fail with a non-zero status, reported). Returns enqueue's status, or
// onShapeChange's when that fails (in *stage: 1 onShapeChange, 2 enqueue).
HARNESS_API int dcn_harness_run(void* handle, int32_t nbInputs, int32_t const* ranks, int64_t const* dims,
    int32_t const* types, int32_t outRank, int64_t const* outDims, int32_t* stage)
{
    auto* h = static_cast<Handle*>(handle);
    std::vector<DynamicPluginTensorDesc> in = dynDescs(nbInputs, ranks, dims, types);
    std::vector<DynamicPluginTensorDesc> out = dynDescs(1, &outRank, outDims, types);
    std::vector<PluginTensorDesc> inD(static_cast<size_t>(nbInputs));
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        inD[i] = in[i].desc;
    }
    PluginTensorDesc outD = out[0].desc;
    *stage = 1;
    int rc = h->runtime->onShapeChange(inD.data(), nbInputs, &outD, 1);
    if (rc != 0)
    {
        return rc;
    }
    *stage = 2;
    std::vector<void const*> inputs(static_cast<size_t>(nbInputs), nullptr);
    void* outputs[1] = {nullptr};
    return h->runtime->enqueue(inD.data(), &outD, inputs.data(), outputs, nullptr, nullptr);
}

HARNESS_API void dcn_harness_destroy(void* handle)
{
    auto* h = static_cast<Handle*>(handle);
    if (h != nullptr)
    {
        delete h->plugin;
        delete h;
    }
}

// The log (all messages since the last call) and the error recorder's errors, then clears both.
HARNESS_API int dcn_harness_take_log(char* buf, size_t n)
{
    std::string s = gLogger.text;
    for (auto const& e : gRecorder.mErrors)
    {
        s += "RECORDER(" + std::to_string(static_cast<int>(e.first)) + "): " + e.second + "\n";
    }
    gLogger.text.clear();
    gRecorder.clear();
    return copyOut(s, buf, n);
}
