#include "sim/collective_backend.hpp"

#include <memory>
#include <stdexcept>
#include <vector>

namespace lina::sim {

void NetworkCollectives::start(const Collective& c, std::function<void(int)> on_rank_done) {
  if (c.kind == CommKind::kHostLoad) {
    network_.start_host_flow(c.ranks.at(0), c.bytes.at(0), c.priority_class, 1.0,
                             [cb = std::move(on_rank_done)](Network::FlowId) { cb(0); });
    return;
  }
  // Collectives reports completion per GPU; the executor wants the participant's position.
  auto position = std::make_shared<std::vector<int>>(static_cast<size_t>(gpus_), -1);
  for (size_t i = 0; i < c.ranks.size(); ++i) (*position)[static_cast<size_t>(c.ranks[i])] = static_cast<int>(i);
  auto done = [position, cb = std::move(on_rank_done)](int gpu) { cb((*position)[static_cast<size_t>(gpu)]); };
  Collectives& grad = gradient_collectives_ ? *gradient_collectives_ : collectives_;
  Collectives::CollId id = 0;
  switch (c.kind) {
    case CommKind::kAllToAll:
      id = collectives_.alltoallv(c.ranks, c.bytes,
                                  c.hierarchical ? Collectives::Algo::kHierarchical : Collectives::Algo::kDirect,
                                  c.priority_class, done);
      break;
    case CommKind::kAllReduce:
      // NCCL picks its allreduce algorithm by size (tree for small messages, ring for large); so does kAuto.
      id = grad.allreduce(c.ranks, c.bytes.at(0),
                          c.hierarchical ? Collectives::Algo::kHierarchical : Collectives::Algo::kAuto,
                          c.priority_class, done);
      break;
    case CommKind::kReduceScatter:
      id = grad.reduce_scatter(c.ranks, c.bytes.at(0), c.priority_class, done);
      break;
    case CommKind::kAllGather:
      id = grad.all_gather(c.ranks, c.bytes.at(0), c.priority_class, done);
      break;
    case CommKind::kHostLoad:
      break;  // handled above
  }
  (c.kind == CommKind::kAllToAll ? collectives_ : grad).launch_all(id);
}

}  // namespace lina::sim
