// The CUDA/cuBLAS/NCCL backend of the hardware executor (DESIGN.md 7). Rank r runs on device r.
//
// Per device: one CUDA stream per Plan stream created with the lowered priority, one cuBLAS handle, scratch buffers
// filled with random bf16 data (sized by LoweredPlan::buffers, checked against free memory first), a start and an
// end event per task. Per communicator of the lowered plan and per stream that uses it, one NCCL communicator
// (ncclCommInitAll): NCCL orders the operations of a communicator, so all-to-all and allreduce streams never share
// one (ranks may launch them in different orders, as the runtime scheduler decides).
#pragma once

#include <map>
#include <memory>
#include <utility>

#include "hw/backend.hpp"

namespace lina::hw {

class CudaBackend : public Backend {
 public:
  CudaBackend();  // counts the devices; throws HwError without a usable driver
  ~CudaBackend() override;
  int device_count() const override { return devices_; }
  void setup(const Plan& plan, const LoweredPlan& lowered) override;
  void bind(int rank) override;
  void start_clock(int rank) override;
  void enqueue(int task, const std::vector<int>& waits) override;
  std::optional<Time> poll_start(int task) override;
  std::optional<Time> poll_end(int task) override;
  void finish(bool ok) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int devices_ = 0;
};

}  // namespace lina::hw
