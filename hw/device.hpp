// GPUs visible to the hardware backend.
#pragma once

#include <string>

namespace lina::hw {

struct DeviceQuery {
  int count = 0;       // number of CUDA devices visible
  std::string reason;  // why none is usable, when count == 0 ("no CUDA driver", ...)
};

// Never throws: a machine with the toolkit but no driver or GPU reports count 0 and the CUDA error text.
DeviceQuery query_devices();

}  // namespace lina::hw
