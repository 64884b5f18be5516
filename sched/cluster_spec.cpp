#include "sched/cluster_spec.hpp"

#include <fmt/format.h>

#include <filesystem>

#include "sched/error.hpp"
#include "sched/presets.hpp"

namespace lina {
namespace {

using nlohmann::json;
using D = Dimension;
using T = ParamType;

ParamDef q(std::string path, D dim, json def, std::string doc, double min = 0, double max = 1e308) {
  return ParamDef{std::move(path), T::kQuantity, dim, std::move(def), std::move(doc), min, max, {}};
}
ParamDef obj(std::string path, std::string doc, json def = json::object()) {
  return ParamDef{std::move(path), T::kObject, D::kNumber, std::move(def), std::move(doc), -1e308, 1e308, {}};
}
ParamDef choice(std::string path, std::vector<std::string> choices, json def, std::string doc) {
  return ParamDef{std::move(path), T::kChoice, D::kNumber, std::move(def),
                  std::move(doc),  -1e308,     1e308,      std::move(choices)};
}
ParamDef integer(std::string path, json def, std::string doc, double min, double max = 1e308) {
  return ParamDef{std::move(path), T::kInteger, D::kNumber, std::move(def), std::move(doc), min, max, {}};
}
ParamDef text(std::string path, json def, std::string doc) {
  return ParamDef{std::move(path), T::kString, D::kNumber, std::move(def), std::move(doc), -1e308, 1e308, {}};
}

const std::vector<ParamDef>& gpu_table() {
  static const std::vector<ParamDef> t = {
      text("gpu.name", "custom", "GPU type name, for reports"),
      text("gpu.source", "", "where the numbers come from (datasheet, calibration run)"),
      q("gpu.peak_fp32", D::kFlopsPerSecond, nullptr, "peak dense FP32 FLOP/s (no tensor cores)", 1),
      q("gpu.peak_tf32", D::kFlopsPerSecond, 0, "peak dense TF32 tensor-core FLOP/s (0: unsupported)"),
      q("gpu.peak_fp16", D::kFlopsPerSecond, nullptr, "peak dense FP16/BF16 tensor-core FLOP/s", 1),
      q("gpu.peak_fp8", D::kFlopsPerSecond, 0, "peak dense FP8 tensor-core FLOP/s (0: unsupported)"),
      q("gpu.hbm_bandwidth", D::kBytesPerSecond, nullptr, "HBM bandwidth", 1),
      q("gpu.memory", D::kBytes, nullptr, "GPU memory capacity", 1),
      q("gpu.launch_overhead", D::kSeconds, "4us", "fixed cost of launching one kernel"),
  };
  return t;
}

LinkSpec read_link(SpecReader& r) {
  LinkSpec l;
  l.bytes_per_s = r.quantity("bandwidth");
  l.latency = r.time("latency");
  return l;
}

}  // namespace

double GpuSpec::peak_flops(const std::string& dtype) const {
  double v = dtype == "fp32"                        ? peak_fp32_flops
             : dtype == "tf32"                      ? peak_tf32_flops
             : (dtype == "fp16" || dtype == "bf16") ? peak_fp16_flops
             : dtype == "fp8"                       ? peak_fp8_flops
                                                    : -1;
  if (v < 0) throw InputError(fmt::format("unknown dtype '{}': expected fp32, tf32, fp16, bf16 or fp8", dtype));
  if (v == 0) throw InputError(fmt::format("GPU {} has no {} peak FLOP/s (unsupported dtype)", name, dtype));
  return v;
}

const std::vector<ParamDef>& cluster_params() {
  static const std::vector<ParamDef> t = [] {
    std::vector<ParamDef> v = {
        text("cluster.base", "",
             "a cluster preset name or file to start from: the other fields replace its fields (objects such as nic "
             "field by field)"),
        text("cluster.name", "", "a short name for reports and plot labels (a swept cluster object is labelled by it)"),
        text("cluster.description", "", "free text shown in reports"),
        integer("cluster.nodes", nullptr, "number of nodes", 1, 1 << 20),
        integer("cluster.gpus_per_node", nullptr, "GPUs per node", 1, 1024),
        obj("cluster.gpu", "GPU type: a preset name (A100-40GB, H100-SXM, H200), a JSON file or an object (gpu.*)",
            nullptr),
        obj("cluster.intra_node", "fabric inside a node: each GPU has one full-duplex link to its node's switch"),
        choice("cluster.intra_node.kind", {"nvswitch", "pcie"}, "nvswitch",
               "NVLink through an NVSwitch, or a PCIe switch (same shape, lower bandwidth)"),
        q("cluster.intra_node.bandwidth", D::kBytesPerSecond, "300GB/s",
          "per-GPU link bandwidth to the node switch, per direction", 1),
        q("cluster.intra_node.latency", D::kSeconds, "1us", "per-link latency inside a node"),
        obj("cluster.nic", "network interfaces towards the inter-node fabric"),
        choice("cluster.nic.per", {"gpu", "node"}, "gpu",
               "one NIC per GPU, or one NIC per node shared by its GPUs (reached through the node switch)"),
        q("cluster.nic.bandwidth", D::kBytesPerSecond, "100Gbps", "NIC bandwidth per direction", 1),
        q("cluster.nic.latency", D::kSeconds, "2us", "NIC link latency"),
        obj("cluster.fabric", "the fabric between nodes"),
        choice("cluster.fabric.kind", {"switch", "leaf_spine"}, "switch",
               "one non-blocking switch (no capacity limit, no latency), or leaf-spine with ECMP"),
        ParamDef{"cluster.fabric.oversubscription",
                 T::kNumber,
                 D::kNumber,
                 1.0,
                 "leaf-spine: leaf down-link bandwidth over up-link bandwidth (1 = non-blocking)",
                 1,
                 1e6,
                 {}},
        integer("cluster.fabric.spines", 4, "leaf-spine: number of spine switches (ECMP by hash of src, dst)", 1, 4096),
        q("cluster.fabric.latency", D::kSeconds, "0us", "leaf-spine: latency added per fabric link"),
        obj("cluster.host_pcie", "host memory to GPU PCIe link (expert weights loaded from host)"),
        q("cluster.host_pcie.bandwidth", D::kBytesPerSecond, "24GB/s", "host-to-GPU bandwidth per GPU", 1),
        q("cluster.host_pcie.latency", D::kSeconds, "2us", "host-to-GPU latency"),
        text("cluster.calibration", "",
             "calibration file written by `lina hw calibrate` (docs/calibration.md), relative to the spec; empty: "
             "datasheet numbers and default efficiencies"),
        q("cluster.collective_alpha", D::kSeconds, "10us",
          "per-step protocol overhead of a collective (NCCL launch and setup); calibrate with `lina hw calibrate`"),
        choice("cluster.sharing", {"collective", "flow"}, "collective",
               "how concurrent collectives share a link: collective (each collective step gets one share on its "
               "busiest link, however many flows it has; NCCL multiplexes peers over a few channels) or flow "
               "(max-min over flows: a collective with more flows gets more)"),
        ParamDef{"cluster.price_usd_per_gpu_hour",
                 T::kNumber,
                 D::kNumber,
                 0,
                 "what one GPU of the cluster costs per hour, in US dollars (a rental price); with it, results report "
                 "usd_per_million_tokens. 0: no price, no cost reported",
                 0,
                 1e6,
                 {}},
        choice("cluster.ring_model", {"steps", "pipelined"}, "steps",
               "how ring collectives are simulated: steps (each of the 2(P-1) steps of an allreduce on its own, ranks "
               "in lockstep: O(P^2) flows) or pipelined (each phase of a ring as one transfer per edge with the "
               "steps' overheads and latencies paid up front: the same time alone, O(P) flows; for thousands of "
               "GPUs; docs/network.md)"),
    };
    for (const auto& g : gpu_table()) v.push_back(g);
    return v;
  }();
  return t;
}

std::optional<double> usd_per_million_tokens(const ClusterSpec& c, double tokens_per_s) {
  if (c.price_usd_per_gpu_hour <= 0 || tokens_per_s <= 0) return std::nullopt;
  const double usd_per_s = c.price_usd_per_gpu_hour * c.gpu_count() / 3600.0;
  return usd_per_s / tokens_per_s * 1e6;
}

std::optional<ClusterSpec::RingModel> ring_model_named(std::string_view name) {
  if (name == "steps") return ClusterSpec::RingModel::kSteps;
  if (name == "pipelined") return ClusterSpec::RingModel::kPipelined;
  return std::nullopt;
}

GpuSpec gpu_from_json(const json& j, const std::string& file, const std::string& pointer) {
  SpecReader r(j, file, pointer, gpu_table(), "gpu");
  GpuSpec g;
  g.name = r.string("name");
  r.string("source");
  g.peak_fp32_flops = r.quantity("peak_fp32");
  g.peak_tf32_flops = r.quantity("peak_tf32");
  g.peak_fp16_flops = r.quantity("peak_fp16");
  g.peak_fp8_flops = r.quantity("peak_fp8");
  g.hbm_bytes_per_s = r.quantity("hbm_bandwidth");
  g.memory_bytes = r.quantity("memory");
  g.launch_overhead = r.time("launch_overhead");
  r.finish();
  return g;
}

GpuSpec load_gpu(const json& ref, const std::string& file, const std::string& pointer) {
  auto [j, origin] = resolve_spec_reference(ref, file, pointer, "experiments/gpus", "GPU");
  return gpu_from_json(j, origin, origin == file ? pointer : "");
}

ClusterSpec cluster_from_json(const json& j_in, const std::string& file, const std::string& pointer) {
  // "base": a cluster preset or file with some fields changed (a sweep over clusters that differ in one respect).
  const json j =
      merge_over_base(j_in, file, pointer, "experiments/clusters", "cluster",
                      [](const json& b, const std::string& f, const std::string& p) { cluster_from_json(b, f, p); });
  SpecReader r(j, file, pointer, cluster_params(), "cluster");
  ClusterSpec c;
  r.string("base");
  c.name = r.string("name");
  r.string("description");
  c.nodes = static_cast<int>(r.integer("nodes"));
  c.gpus_per_node = static_cast<int>(r.integer("gpus_per_node"));
  c.gpu = load_gpu(r.raw("gpu"), file, r.pointer("gpu"));
  {
    SpecReader s = r.child("intra_node");
    c.intra_kind = s.choice("kind") == "pcie" ? ClusterSpec::IntraKind::kPcie : ClusterSpec::IntraKind::kNvSwitch;
    c.intra = read_link(s);
    s.finish();
  }
  {
    SpecReader s = r.child("nic");
    c.nic_per = s.choice("per") == "node" ? ClusterSpec::NicPer::kNode : ClusterSpec::NicPer::kGpu;
    c.nic = read_link(s);
    s.finish();
  }
  {
    SpecReader s = r.child("fabric");
    c.fabric_kind =
        s.choice("kind") == "leaf_spine" ? ClusterSpec::FabricKind::kLeafSpine : ClusterSpec::FabricKind::kSwitch;
    c.oversubscription = s.quantity("oversubscription");
    c.spines = static_cast<int>(s.integer("spines"));
    c.fabric_latency = s.time("latency");
    s.finish();
  }
  {
    SpecReader s = r.child("host_pcie");
    c.host_pcie = read_link(s);
    s.finish();
  }
  c.collective_alpha = r.time("collective_alpha");
  c.sharing = r.choice("sharing") == "flow" ? ClusterSpec::Sharing::kFlow : ClusterSpec::Sharing::kCollective;
  c.ring_model = *ring_model_named(r.choice("ring_model"));  // the choice is one of the two
  c.price_usd_per_gpu_hour = r.quantity("price_usd_per_gpu_hour");
  c.calibration = r.string("calibration");
  if (!c.calibration.empty()) {
    std::filesystem::path p = resolve_relative(c.calibration, file);
    if (!std::filesystem::exists(p)) {
      r.fail("calibration", fmt::format("calibration file '{}' not found", c.calibration));
    }
    c.calibration = p.string();
  }
  r.finish();
  if (static_cast<int64_t>(c.nodes) * c.gpus_per_node > (1 << 22)) {
    throw InputError(format_location(file, pointer, "more than 4M GPUs is not supported"));
  }
  return c;
}

ClusterSpec load_cluster(const json& ref, const std::string& file, const std::string& pointer) {
  auto [j, origin] = resolve_spec_reference(ref, file, pointer, "experiments/clusters", "cluster");
  ClusterSpec c = cluster_from_json(j, origin, origin == file ? pointer : "");
  if (c.name.empty()) {
    c.name = ref.is_string() ? ref.get<std::string>()
             : ref.is_object() && ref.contains("base") && ref["base"].is_string()
                 ? ref["base"].get<std::string>() + " (changed)"
                 : "inline";
  }
  return c;
}

ClusterSpec load_cluster_preset_or_file(const std::string& name_or_path) {
  return load_cluster(json(name_or_path), "", "");
}

}  // namespace lina
