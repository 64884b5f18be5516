// Reusable slots in a vector: the engine's pending events, the network's completion batches, the collectives in
// flight and their alpha waits all keep their state in a vector and recycle the indices of finished entries, so that
// memory follows what is live, not everything ever created.
#pragma once

#include <vector>

namespace lina::sim {

// The index of a slot of `items` to use: the most recently freed one (`free`), else a new default-constructed element
// at the end. The caller pushes the index back on `free` when the slot is done.
template <typename T, typename Index>
Index take_slot(std::vector<T>& items, std::vector<Index>& free) {
  if (!free.empty()) {
    const Index i = free.back();
    free.pop_back();
    return i;
  }
  items.emplace_back();
  return static_cast<Index>(items.size() - 1);
}

}  // namespace lina::sim
