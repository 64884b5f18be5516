// Calibration fitting (DESIGN.md 7, docs/calibration.md): from measurement records (what `lina hw calibrate`
// measured, schema "lina.measurements/1", saved beside the calibration) to the calibration file the simulator reads
// ("lina.calibration/1"). Pure host code: tested on recorded measurements without a GPU.
//
// Fitting, as docs/calibration.md defines an efficiency:
// - launch overhead: measured directly (back-to-back empty kernels).
// - hbm_bandwidth: the best streaming rate, max over memory-kernel records of bytes / (t - launch).
// - GEMM-like kinds: e_c = FLOPs / (peak_bf16 * (t - launch)); memory-bound kinds: e_m = bytes / (hbm * (t - launch)),
//   t the median of the repeated runs. Records are grouped in quarter-decade bins of size (geometric mean size, mean
//   efficiency) so that the table's sizes increase strictly; efficiencies are clamped to [1e-4, 1].
// - links: per class, t = steps * a + wire_bytes / B by least squares over the records (a >= 0; a = 0 refit when the
//   unconstrained intercept is negative). `steps` counts latency-bearing steps (ring allreduce 2(P-1), direct
//   all-to-all 1, a copy 1) and `wire_bytes` the bytes that cross one GPU's link one after the other (ring
//   allreduce 2(P-1)/P * S, all-to-all (P-1)/P * S, copy S): the simulator's closed forms (sim/collectives.hpp).
//   The simulator charges a step collective_alpha plus the latency of each link on the route (2 inside a node: GPU to
//   switch to GPU; 1 for host_pcie), so the file's alpha = max(0, a - collective_alpha) / hops for NCCL classes
//   and a for host_pcie.
// - interference: median(GEMM time under concurrent NCCL traffic) / median(GEMM time alone), at least 1.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hw/lowering.hpp"
#include "sched/flops.hpp"

namespace lina::hw {

inline constexpr const char* kMeasurementsSchema = "lina.measurements/1";

struct KernelMeasurement {
  OpKind op = OpKind::kGemm;
  GemmShape shape;  // GEMM-like kinds (m = 0 for memory kernels)
  double flops = 0;
  double bytes = 0;
  std::vector<double> seconds;  // repeated timed runs after warm-up
};

struct LinkMeasurement {
  std::string link_class;  // "intra_node", "nic", "host_pcie"
  std::string op;          // "allreduce", "alltoall", "copy"
  int gpus = 1;
  double bytes = 0;       // nccl-tests convention: one rank's buffer
  double steps = 1;       // latency-bearing steps (see the file comment)
  double wire_bytes = 0;  // bytes serialised on one GPU's link
  std::vector<double> seconds;
};

struct Measurements {
  std::string gpu;          // GPU preset name ("H200") the calibration is for
  std::string device_name;  // as CUDA reports it
  std::string source;       // host, date, library versions
  double peak_bf16_flops = 0;
  double launch_overhead_s = 0;
  std::vector<KernelMeasurement> kernels;
  std::vector<LinkMeasurement> links;
  std::vector<double> gemm_alone_s, gemm_with_comm_s;  // interference
};

nlohmann::json to_json(const Measurements& m);
// Errors are lina::InputError "FILE: /pointer: message".
Measurements measurements_from_json(const nlohmann::json& j, const std::string& file);
Measurements load_measurements(const std::string& path);

// Ring allreduce and direct all-to-all steps and wire bytes over P GPUs for a buffer of S bytes.
LinkMeasurement ring_allreduce_record(int gpus, double bytes);
LinkMeasurement alltoall_record(int gpus, double bytes);

double median(std::vector<double> v);

struct AlphaBeta {
  double alpha_s = 0;      // per step
  double bytes_per_s = 0;  // sustained
};
// Least squares of t = steps * alpha + wire_bytes / bandwidth over the records' medians. Throws InputError when the
// records do not determine a positive bandwidth.
AlphaBeta fit_alpha_beta(const std::vector<LinkMeasurement>& records);

struct FitOptions {
  double collective_alpha_s = 0;  // the cluster spec's collective_alpha the calibration will be used with
  int intra_hops = 2;             // links on an intra-node route
};

// The calibration file ("lina.calibration/1") fitted from the measurements.
nlohmann::json fit_calibration(const Measurements& m, const FitOptions& options = {});

}  // namespace lina::hw
