// GPUs visible to the hardware backend.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace lina::hw {

struct DeviceQuery {
  int count = 0;       // number of CUDA devices visible
  std::string reason;  // why none is usable, when count == 0 ("no CUDA driver", ...)
};

// Never throws: a machine with the toolkit but no driver or GPU reports count 0 and the CUDA error text.
DeviceQuery query_devices();

struct DeviceInfo {
  int index = 0;
  std::string name;  // "NVIDIA H200"
  double memory_bytes = 0;
  int cc_major = 0, cc_minor = 0, sms = 0;
  std::string pci_bus;
};

struct SystemInfo {
  DeviceQuery query;
  std::vector<DeviceInfo> devices;
  // links[i][j] (i != j): "nvlink" (peer access with native atomics, which PCIe lacks), "pcie" (peer access
  // without), "none" (no peer access: staged through the host).
  std::vector<std::vector<std::string>> links;
  int driver_version = 0, runtime_version = 0, nccl_version = 0;  // CUDA ints: 12040 = 12.4; NCCL 22809 = 2.28.9
  int cublas_version = 0;
};
SystemInfo system_info();                    // never throws; what it could not query stays 0/empty
std::string version_text(int cuda_version);  // 12040 -> "12.4"

// CUDA's stream priorities {least, greatest} on the current device ({0, 0} without one).
std::pair<int, int> stream_priority_range();

// The GPU preset (experiments/gpus) matching a CUDA device name ("NVIDIA H200" -> "H200"), or "" when none does.
std::string gpu_preset_for(const std::string& device_name, double memory_bytes);

}  // namespace lina::hw
