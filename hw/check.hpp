// Checking every CUDA, cuBLAS and NCCL return code (DESIGN.md 7): a failure names the call, the task and the device.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <stdexcept>
#include <string>

namespace lina::hw {

class HwError : public std::runtime_error {
 public:
  explicit HwError(const std::string& m) : std::runtime_error(m) {}
};

// "CALL failed on device D (task 'T'): WHAT"; the task part is omitted when `task` is empty.
std::string format_hw_error(const std::string& call, int device, const std::string& task, const std::string& what);

// What a check is about, for the message: the device and the task (empty outside a task: setup, calibration).
struct Where {
  int device = -1;
  std::string task;
};

void check(cudaError_t e, const char* call, const Where& w);
void check(cublasStatus_t e, const char* call, const Where& w);
void check(ncclResult_t e, const char* call, const Where& w, ncclComm_t comm = nullptr);

// Checks a call, naming it by its source text: LINA_CHECK(cudaMalloc(&p, n), where).
#define LINA_CHECK(expr, ...) ::lina::hw::check((expr), #expr, __VA_ARGS__)

}  // namespace lina::hw
