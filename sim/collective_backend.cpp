#include "sim/collective_backend.hpp"

#include <stdexcept>

namespace lina::sim {

// A collective in progress: a list of phases, each a set of flows that must all finish before the next phase.
struct NetworkCollectives::Run {
  struct Flow {
    int src, dst;
    double bytes;
  };
  std::vector<std::vector<Flow>> phases;
  size_t phase = 0;
  size_t outstanding = 0;
  int priority_class = 0;
  int positions = 0;
  // Direct all-to-all only: per position, flows not yet finished (sends + receives); -1 when phases are
  // synchronised and every rank ends with the last phase.
  std::vector<int> open_per_position;
  std::vector<int> position_of_gpu;  // gpu -> position, for direct all-to-all bookkeeping
  std::function<void(int)> on_rank_done;
};

void NetworkCollectives::start(const Collective& c, std::function<void(int)> on_rank_done) {
  auto run = std::make_shared<Run>();
  run->priority_class = c.priority_class;
  run->positions = static_cast<int>(c.ranks.size());
  run->on_rank_done = std::move(on_rank_done);
  const int P = run->positions;
  const auto& ranks = c.ranks;
  if (c.kind == CommKind::kAllToAll) {
    bool hier = c.hierarchical;
    if (hier) {
      // Hierarchical: phase 1 moves (a, x) -> (b, y) data to (a, y) inside node a; phase 2 moves it from (a, y)
      // to (b, y) across nodes. Positions whose local peer is not in the group fall back to direct sends.
      std::vector<std::vector<double>> p1(static_cast<size_t>(P), std::vector<double>(static_cast<size_t>(P), 0));
      std::vector<std::vector<double>> p2 = p1;
      std::vector<int> pos_of(static_cast<size_t>(cluster_.gpu_count()), -1);
      for (int i = 0; i < P; ++i) pos_of[static_cast<size_t>(ranks[static_cast<size_t>(i)])] = i;
      for (int i = 0; i < P; ++i) {
        for (int j = 0; j < P; ++j) {
          double b = c.bytes[static_cast<size_t>(i) * P + j];
          if (b <= 0 || i == j) continue;
          int src = ranks[static_cast<size_t>(i)], dst = ranks[static_cast<size_t>(j)];
          int a = cluster_.node_of(src), bn = cluster_.node_of(dst);
          if (a == bn) {
            p1[static_cast<size_t>(i)][static_cast<size_t>(j)] += b;
            continue;
          }
          int relay = a * cluster_.gpus_per_node + cluster_.local_of(dst);
          int relay_pos = pos_of[static_cast<size_t>(relay)];
          if (relay_pos < 0) {  // the group lacks the relay GPU: send directly in phase 2
            p2[static_cast<size_t>(i)][static_cast<size_t>(j)] += b;
            continue;
          }
          if (relay_pos != i) p1[static_cast<size_t>(i)][static_cast<size_t>(relay_pos)] += b;
          p2[static_cast<size_t>(relay_pos)][static_cast<size_t>(j)] += b;
        }
      }
      for (auto* m : {&p1, &p2}) {
        std::vector<Run::Flow> flows;
        for (int i = 0; i < P; ++i) {
          for (int j = 0; j < P; ++j) {
            double b = (*m)[static_cast<size_t>(i)][static_cast<size_t>(j)];
            if (b > 0) flows.push_back({ranks[static_cast<size_t>(i)], ranks[static_cast<size_t>(j)], b});
          }
        }
        if (!flows.empty()) run->phases.push_back(std::move(flows));
      }
    } else {
      std::vector<Run::Flow> flows;
      run->open_per_position.assign(static_cast<size_t>(P), 0);
      run->position_of_gpu.assign(static_cast<size_t>(cluster_.gpu_count()), -1);
      for (int i = 0; i < P; ++i) run->position_of_gpu[static_cast<size_t>(ranks[static_cast<size_t>(i)])] = i;
      for (int i = 0; i < P; ++i) {
        for (int j = 0; j < P; ++j) {
          double b = c.bytes[static_cast<size_t>(i) * P + j];
          if (b <= 0 || i == j) continue;
          flows.push_back({ranks[static_cast<size_t>(i)], ranks[static_cast<size_t>(j)], b});
          ++run->open_per_position[static_cast<size_t>(i)];
          ++run->open_per_position[static_cast<size_t>(j)];
        }
      }
      if (!flows.empty()) run->phases.push_back(std::move(flows));
    }
  } else {
    // Ring: reduce-scatter (P-1 steps) then all-gather (P-1 steps), each step M/P bytes to the next rank.
    int steps = c.kind == CommKind::kAllReduce ? 2 * (P - 1) : (P - 1);
    double chunk = c.bytes.at(0) / P;
    for (int s = 0; s < steps && P > 1; ++s) {
      std::vector<Run::Flow> flows;
      for (int i = 0; i < P; ++i) {
        flows.push_back({ranks[static_cast<size_t>(i)], ranks[static_cast<size_t>((i + 1) % P)], chunk});
      }
      run->phases.push_back(std::move(flows));
    }
  }
  if (run->phases.empty()) {
    for (int i = 0; i < P; ++i) run->on_rank_done(i);
    return;
  }
  // Positions with no flow at all in a direct all-to-all are done at once.
  if (!run->open_per_position.empty()) {
    for (int i = 0; i < P; ++i) {
      if (run->open_per_position[static_cast<size_t>(i)] == 0) run->on_rank_done(i);
    }
  }
  run_phase(run);
}

void NetworkCollectives::run_phase(std::shared_ptr<Run> run) {
  // Protocol overhead of the step, then all its flows at once.
  engine_.schedule_after(cluster_.collective_alpha, [this, run] {
    const auto& flows = run->phases[run->phase];
    run->outstanding = flows.size();
    for (const auto& f : flows) {
      network_.start_flow(f.src, f.dst, f.bytes, run->priority_class, 1.0, [this, run, f](Network::FlowId) {
        if (!run->open_per_position.empty()) {
          for (int gpu : {f.src, f.dst}) {
            int pos = run->position_of_gpu[static_cast<size_t>(gpu)];
            if (--run->open_per_position[static_cast<size_t>(pos)] == 0) run->on_rank_done(pos);
          }
        }
        if (--run->outstanding > 0) return;
        if (++run->phase < run->phases.size()) {
          run_phase(run);
        } else if (run->open_per_position.empty()) {
          for (int i = 0; i < run->positions; ++i) run->on_rank_done(i);
        }
      });
    }
  });
}

}  // namespace lina::sim
