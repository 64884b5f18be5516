#include "hw/check.hpp"

#include <fmt/format.h>

namespace lina::hw {

std::string format_hw_error(const std::string& call, int device, const std::string& task, const std::string& what) {
  std::string name = call.substr(0, call.find('('));
  if (task.empty()) return fmt::format("{} failed on device {}: {}", name, device, what);
  return fmt::format("{} failed on device {} (task '{}'): {}", name, device, task, what);
}

void check(cudaError_t e, const char* call, const Where& w) {
  if (e == cudaSuccess) return;
  throw HwError(
      format_hw_error(call, w.device, w.task, fmt::format("{} ({})", cudaGetErrorString(e), cudaGetErrorName(e))));
}

void check(cublasStatus_t e, const char* call, const Where& w) {
  if (e == CUBLAS_STATUS_SUCCESS) return;
  throw HwError(format_hw_error(call, w.device, w.task, cublasGetStatusString(e)));
}

void check(ncclResult_t e, const char* call, const Where& w, ncclComm_t comm) {
  if (e == ncclSuccess) return;
  std::string what = ncclGetErrorString(e);
  const char* last = ncclGetLastError(comm);
  if (last && *last) what += fmt::format(" ({})", last);
  throw HwError(format_hw_error(call, w.device, w.task, what));
}

}  // namespace lina::hw
