// Calibration microbenchmarks (`lina hw calibrate`, DESIGN.md 7): measured on the GPUs, written as measurement
// records (hw/calibration_fit.hpp) from which the calibration is fitted. Every time is the median of `reps` timed
// runs (CUDA events) after `warmup` untimed ones.
//
// - launch overhead: 1000 empty kernels back to back on one stream, per kernel.
// - GEMM efficiency: bf16 GEMMs tokens x FFN x hidden (m x n x k) over the model shapes (hidden 768 to 4096, FFN
//   4x hidden, 128 to 32768 tokens) and gate GEMMs tokens x experts x hidden; attention projections use the GEMM
//   table (docs/calibration.md); attention scores are not measured (the default efficiency stays).
// - elementwise: the streaming kernel over 4 KiB to 1 GiB.
// - host_pcie: pinned host-to-device copies, 64 KiB to 256 MiB.
// - NCCL (2 GPUs or more): ring allreduce and all-to-all over all GPUs, 64 KiB to 256 MiB per rank.
// - interference: a large GEMM alone, then while an NCCL allreduce of 256 MiB runs on another stream (with one GPU
//   NCCL's allreduce is a local copy kernel: still a communication kernel taking SMs and HBM bandwidth).
#pragma once

#include "hw/calibration_fit.hpp"

namespace lina::hw {

struct MicrobenchOptions {
  int warmup = 3;
  int reps = 10;
  bool quick = false;  // fewer shapes and sizes (tests, smoke runs)
  std::string gpu;     // preset name for the records; required
  double peak_bf16_flops = 0;
};

// Runs on every visible GPU (NCCL) and on device 0 (kernels). Throws HwError naming the call and device.
Measurements run_microbenchmarks(const MicrobenchOptions& options);

}  // namespace lina::hw
