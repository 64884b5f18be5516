// A cluster: nodes of GPUs, the fabric inside a node, NICs and the fabric between nodes (DESIGN.md 2.2).
//
// All quantities are in base units: bytes, bytes/s, seconds (as Time), FLOP/s. The JSON form and every field's
// documentation are in the parameter table (cluster_params(), `lina params`); presets live in
// experiments/clusters/*.json and GPU presets in experiments/gpus/*.json.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sched/params.hpp"
#include "sched/time.hpp"

namespace lina {

struct GpuSpec {
  std::string name;            // "A100-40GB"
  double peak_fp32_flops = 0;  // FLOP/s, dense, without tensor cores
  double peak_tf32_flops = 0;  // FLOP/s, tensor cores
  double peak_fp16_flops = 0;  // FLOP/s, fp16 and bf16 tensor cores, dense
  double peak_fp8_flops = 0;   // FLOP/s, 0 where unsupported
  double hbm_bytes_per_s = 0;  // bytes/s
  double memory_bytes = 0;     // bytes
  Time launch_overhead;        // per kernel
  // Peak FLOP/s for a dtype name ("fp32", "tf32", "fp16", "bf16", "fp8"); throws InputError when 0 or unknown.
  double peak_flops(const std::string& dtype) const;
};

struct LinkSpec {
  double bytes_per_s = 0;
  Time latency;
};

struct ClusterSpec {
  std::string name;  // "name" when given, else the preset name or file it came from (for reports)
  int nodes = 1;
  int gpus_per_node = 1;
  GpuSpec gpu;

  enum class IntraKind { kNvSwitch, kPcie };
  // nvswitch: each GPU has one full-duplex link of `intra` to its node's switch; route GPU -> switch -> GPU.
  // pcie: each GPU has one full-duplex link of `intra` to its node's PCIe switch (same shape, lower bandwidth).
  IntraKind intra_kind = IntraKind::kNvSwitch;
  LinkSpec intra;

  enum class NicPer { kGpu, kNode };
  // gpu: one full-duplex NIC link per GPU to the fabric; inter-node route GPU -> fabric -> GPU over two NIC links.
  // node: one NIC link per node, shared by its GPUs; inter-node route GPU -> node switch (intra link) -> NIC ->
  // fabric -> NIC -> node switch -> GPU, so the shared NIC is the bottleneck and the intra links are also crossed.
  NicPer nic_per = NicPer::kGpu;
  LinkSpec nic;

  enum class FabricKind { kSwitch, kLeafSpine };
  // switch: one non-blocking switch, no capacity limit and no added latency.
  // leaf_spine: one leaf per node (its NICs are the leaf's down links), `spines` spines; each leaf has one up link
  // to every spine of bandwidth nic_total / (oversubscription * spines); ECMP picks a spine by hash of (src, dst).
  FabricKind fabric_kind = FabricKind::kSwitch;
  double oversubscription = 1.0;
  int spines = 1;
  Time fabric_latency;  // added per switch hop of the fabric (leaf or spine)

  LinkSpec host_pcie;  // host memory <-> GPU, for expert weights loaded from host (one per GPU)

  // NCCL-style per-message overhead (protocol setup) added to each collective step, seconds.
  Time collective_alpha;

  // How concurrent collectives share a link (sim/collectives.hpp). collective: every collective step has the same
  // total weight on its busiest link, whatever its number of flows (NCCL multiplexes a collective's peers over a
  // few channels, so a 12-peer all-to-all does not take 12 shares from a 1-channel ring). flow: every flow has
  // weight 1 (plain max-min over flows).
  enum class Sharing { kCollective, kFlow };
  Sharing sharing = Sharing::kCollective;

  // How ring algorithms are simulated (sim/collectives.hpp). steps: each of a ring's steps on its own, every rank
  // waiting for its send and its receive before the next (2(P-1) steps of P flows for an allreduce over P ranks).
  // pipelined: each phase of consecutive ring steps between the same neighbours as one transfer of all their bytes,
  // its steps' overheads and latencies paid up front, as NCCL's pipelined chunks keep every ring edge busy: the same
  // time for a collective alone, P flows instead of O(P^2), and no per-step lockstep under contention.
  enum class RingModel { kSteps, kPipelined };
  RingModel ring_model = RingModel::kSteps;

  // A calibration file (lina.calibration/1, docs/calibration.md) measured on this cluster: compute efficiency
  // tables, launch overhead, link alpha/bandwidth. Empty: datasheet numbers and default efficiencies. Stored as
  // given after resolving it against the spec's folder.
  std::string calibration;

  // Rental price of one GPU per hour, US dollars; 0 when not given (no cost is reported).
  double price_usd_per_gpu_hour = 0;

  int gpu_count() const { return nodes * gpus_per_node; }
  int node_of(int gpu) const { return gpu / gpus_per_node; }
  int local_of(int gpu) const { return gpu % gpus_per_node; }
};

// What a million tokens cost at `tokens_per_s` on the whole cluster (all its GPUs rented for the time it takes), US
// dollars; nullopt without a price (or without throughput).
std::optional<double> usd_per_million_tokens(const ClusterSpec& c, double tokens_per_s);

// "steps" or "pipelined" (cluster.ring_model); nullopt for anything else.
std::optional<ClusterSpec::RingModel> ring_model_named(std::string_view name);

// Parses a cluster spec object. `file` and `pointer` locate it for error messages.
ClusterSpec cluster_from_json(const nlohmann::json& j, const std::string& file, const std::string& pointer);
// Resolves a preset name ("dgx-a100"), a path to a JSON file, or an inline object.
ClusterSpec load_cluster(const nlohmann::json& ref, const std::string& file, const std::string& pointer);
ClusterSpec load_cluster_preset_or_file(const std::string& name_or_path);

GpuSpec gpu_from_json(const nlohmann::json& j, const std::string& file, const std::string& pointer);
GpuSpec load_gpu(const nlohmann::json& ref, const std::string& file, const std::string& pointer);

// Parameter documentation for `lina params` (cluster.* and gpu.*).
const std::vector<ParamDef>& cluster_params();

}  // namespace lina
