// harness_side.cpp: the functions of harness_side.h (TensorRT's side of the plugin interface).
#include "harness_side.h"

#include <cstring>
#include <map>
#include <memory>
#include <mutex>

// ---- the plugin library's entry points (plugin_entry.cpp)
extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

namespace dcn_harness {

int copyOut(std::string const& s, char* buf, size_t n)
{
    if (buf && n)
    {
        size_t const k = s.size() < n - 1 ? s.size() : n - 1;
        std::memcpy(buf, s.data(), k);
        buf[k] = '\0';
    }
    return static_cast<int>(s.size());
}

std::string jsonString(char const* s)
{
    std::string o = "\"";
    for (char const* p = s ? s : ""; *p; ++p)
    {
        if (*p == '"' || *p == '\\')
        {
            o += '\\';
        }
        o += *p;
    }
    return o + "\"";
}

IPluginCreatorV3One* findCreator(char const* name)
{
    int32_t nb = 0;
    IPluginCreatorInterface* const* list = getCreators(nb);
    for (int32_t i = 0; i < nb; ++i)
    {
        auto* c = static_cast<IPluginCreatorV3One*>(list[i]);
        if (std::strcmp(c->getPluginName(), name) == 0)
        {
            return c;
        }
    }
    return nullptr;
}

Recorder gRecorder;

ResourceContext* resourceContext(int32_t id)
{
    static std::map<int32_t, std::unique_ptr<ResourceContext>> contexts;
    static std::mutex m;
    std::lock_guard<std::mutex> lock(m);
    auto& c = contexts[id];
    if (!c)
    {
        c.reset(new ResourceContext(&gRecorder));
    }
    return c.get();
}
Handle* wrap(IPluginV3* p)
{
    if (p == nullptr)
    {
        return nullptr;
    }
    auto* h = new Handle;
    h->plugin = p;
    h->core = static_cast<IPluginV3OneCore*>(p->getCapabilityInterface(PluginCapabilityType::kCORE));
    h->build = static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
    h->runtime = static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    return h;
}

Dims makeDims(int32_t rank, int64_t const* d)
{
    Dims r{};
    r.nbDims = rank;
    for (int32_t i = 0; i < rank; ++i)
    {
        r.d[i] = d[i];
    }
    return r;
}

// Tensor descriptions from flat arrays: ranks[i], dims[i*8 + k], types[i] (DataType), format linear.
std::vector<DynamicPluginTensorDesc> dynDescs(int32_t n, int32_t const* ranks, int64_t const* dims, int32_t const* types)
{
    std::vector<DynamicPluginTensorDesc> v(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i)
    {
        Dims const d = makeDims(ranks[i], dims + 8 * i);
        v[i].desc.dims = d;
        v[i].desc.type = static_cast<DataType>(types[i]);
        v[i].desc.format = TensorFormat::kLINEAR;
        v[i].desc.scale = -1.F;
        v[i].min = d;
        v[i].opt = d;
        v[i].max = d;
    }
    return v;
}

} // namespace dcn_harness
