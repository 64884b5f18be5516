// GPU compute model (DESIGN.md 2.5): how long one operator takes on one GPU.
//
//   duration = launch overhead + max(FLOPs / (peak(dtype) * e_c), bytes / (HBM bandwidth * e_m)), rounded up to the
//   tick (Time::from_seconds_ceil), times the interference factor while communication kernels run (see below).
//
// e_c and e_m are efficiencies in (0, 1]. With a calibration file (docs/calibration.md, written by `lina hw
// calibrate`), e_c (GEMM-like kinds, over FLOPs) or e_m (memory-bound kinds, over bytes) is interpolated in
// log(size) from the measured table of the operator kind. Otherwise, and for the other term, the default:
//
//   e(x) = e_max * x / (x + x_half),  x_half = e_max * rate * t_ramp
//
// which is the same as an affine time t = t_ramp + x / (e_max * rate): a fixed ramp (filling the SMs with one wave of
// tiles, the memory pipeline's latency) plus streaming at e_max of the peak. Defaults per kind (kDefault* below):
//   - GEMM-like (gemm, attention_proj, gate): e_max 0.70 of dense tensor-core peak, t_ramp 2 us. Large cuBLAS GEMMs
//     reach roughly 70-80% of peak on A100/H100; Megatron-LM sustains 52% end to end (163 of 312 TFLOP/s per A100,
//     Narayanan et al. SC'21, arXiv 2104.04473), which includes everything that is not a large GEMM.
//   - attention_scores: e_max 0.50: FlashAttention-2 reaches 50-73% of A100 peak in the forward pass (Dao 2023,
//     arXiv 2307.08691); the unfused form is limited by its score-matrix traffic (the bytes term) anyway.
//   - memory term (all kinds): e_max 0.80 of HBM bandwidth, t_ramp 1 us: streaming kernels (STREAM-like copy/triad)
//     typically sustain 80-90% of the HBM peak; 1 us is of the order of a DRAM round trip plus a kernel's tail.
//   - elementwise and embedding run on CUDA cores: their compute peak is the GPU's FP32 peak, whatever the dtype.
// These are coarse; `lina hw calibrate` replaces them with measured tables.
//
// Interference: communication kernels (NCCL) running on the same GPU take SMs and memory bandwidth from compute
// (DESIGN.md 2.5). Compute running while a communication kernel is active is slowed by `interference` (>= 1; the
// compute part of a duration is multiplied by it). Default 1.0 (none): the Lina paper does not report it, and a
// guessed slowdown would bias the comparison of policies that overlap communication with compute; a calibration
// file sets the measured factor.
#pragma once

#include <array>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sched/cluster_spec.hpp"
#include "sched/flops.hpp"
#include "sched/plan.hpp"
#include "sched/time.hpp"

namespace lina::sim {

// A measured curve: (size, efficiency) points with strictly increasing size; linear in log(size) between points,
// constant beyond the ends.
class EfficiencyTable {
 public:
  EfficiencyTable() = default;
  explicit EfficiencyTable(std::vector<std::pair<double, double>> points);  // checked by the loader
  double at(double size) const;
  bool empty() const { return points_.empty(); }
  const std::vector<std::pair<double, double>>& points() const { return points_; }

 private:
  std::vector<std::pair<double, double>> points_;
};

// Default efficiency of one term (see the file comment).
struct DefaultEfficiency {
  double max;     // fraction of peak reached by large operators
  double ramp_s;  // fixed time before streaming at `max`: sets the size at which half of `max` is reached
};
inline constexpr DefaultEfficiency kDefaultGemm{0.70, 2e-6};
inline constexpr DefaultEfficiency kDefaultAttentionScores{0.50, 2e-6};
inline constexpr DefaultEfficiency kDefaultElementwiseCompute{0.70, 1e-6};  // CUDA-core FLOPs of memory-bound kinds
inline constexpr DefaultEfficiency kDefaultMemory{0.80, 1e-6};

struct LinkCalibration {
  Time alpha;              // fixed cost per message (latency and protocol setup)
  double bytes_per_s = 0;  // sustained bandwidth (beta = 1 / bytes_per_s seconds per byte)
};

// A calibration file (docs/calibration.md; schema "lina.calibration/1").
struct Calibration {
  std::string gpu;     // the GPU it was measured on (checked against the cluster's GPU name when both are set)
  std::string source;  // how it was measured (host, date, library versions)
  std::optional<Time> launch_overhead;           // measured; replaces the GPU preset's
  std::optional<double> hbm_bytes_per_s;         // measured peak streaming bandwidth; replaces the preset's
  std::map<OpKind, EfficiencyTable> compute;     // x: FLOPs (GEMM-like kinds) or bytes (elementwise, embedding)
  std::map<std::string, LinkCalibration> links;  // "intra_node", "nic", "host_pcie"
  std::optional<double> interference;            // >= 1
};

// Parses a calibration object / file. Errors are InputError "FILE: /json/pointer: message".
Calibration calibration_from_json(const nlohmann::json& j, const std::string& file);
Calibration load_calibration(const std::string& path);
// The link classes a calibration may name (the link fields of a cluster spec).
const std::vector<std::string>& calibration_link_classes();
// Replaces the cluster's link bandwidths and latencies with the calibrated ones (classes present in `cal`) and the
// GPU's launch overhead and HBM bandwidth when measured.
void apply_calibration(ClusterSpec& cluster, const Calibration& cal);

// A cluster with its calibration (cluster.calibration) applied: the measured link numbers replace the preset's in
// the copy, and the calibration is returned for the ComputeModel. Without a calibration file: the cluster as given.
struct CalibratedCluster {
  ClusterSpec cluster;
  std::optional<Calibration> calibration;
};
CalibratedCluster calibrate_cluster(const ClusterSpec& cluster);

class ComputeModel {
 public:
  // `interference` overrides the calibration's factor when set (an experiment parameter).
  explicit ComputeModel(GpuSpec gpu, std::optional<Calibration> calibration = std::nullopt,
                        std::optional<double> interference = std::nullopt);

  // Duration of one kernel. `dtype` is the tensor-core mode for GEMM-like kinds (the model's compute_dtype); it is
  // ignored for elementwise and embedding (CUDA-core FP32 peak). `with_communication`: a communication kernel runs
  // concurrently for the whole operator (the executor handles partial overlap with interference()).
  Time duration(OpKind kind, double flops, double bytes, const std::string& dtype,
                bool with_communication = false) const;
  Time duration(const OpCost& cost, const std::string& dtype, bool with_communication = false) const {
    return duration(cost.kind, cost.flops, cost.bytes, dtype, with_communication);
  }
  // A plan task's duration: host work takes its seconds (rounded up to the tick), a compute task duration() above.
  // Communication tasks are timed by the network, not here (zero).
  Time task_duration(const Task& t, const std::string& dtype) const;
  // The compute part of a duration (without launch overhead) in seconds, unrounded: for executors that slow it down
  // over part of its run.
  double busy_seconds(OpKind kind, double flops, double bytes, const std::string& dtype) const;

  double compute_efficiency(OpKind kind, double flops, const std::string& dtype) const;
  double memory_efficiency(OpKind kind, double bytes) const;
  double peak_flops(OpKind kind, const std::string& dtype) const;
  double interference() const { return interference_; }
  Time launch_overhead() const { return launch_; }
  double hbm_bytes_per_s() const { return hbm_bytes_per_s_; }
  const GpuSpec& gpu() const { return gpu_; }

 private:
  GpuSpec gpu_;
  std::optional<Calibration> cal_;
  double interference_ = 1.0;
  Time launch_;
  double hbm_bytes_per_s_ = 0;
};

}  // namespace lina::sim
