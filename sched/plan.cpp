#include "sched/plan.hpp"

#include <fmt/format.h>

#include <cmath>
#include <iterator>
#include <stdexcept>

namespace lina {

const char* stream_name(Stream s) {
  switch (s) {
    case Stream::kCompute:
      return "compute";
    case Stream::kAllToAll:
      return "all-to-all";
    case Stream::kAllReduce:
      return "allreduce";
    case Stream::kHost:
      return "host";
  }
  return "?";
}

const char* comm_name(CommKind k) {
  switch (k) {
    case CommKind::kAllToAll:
      return "a2a";
    case CommKind::kAllReduce:
      return "allreduce";
    case CommKind::kReduceScatter:
      return "reduce-scatter";
    case CommKind::kAllGather:
      return "all-gather";
    case CommKind::kHostLoad:
      return "host-load";
  }
  return "?";
}

double Collective::total_bytes() const {
  double s = 0;
  for (double b : bytes) s += b;
  return s;
}

int Plan::add_task(Task&& t) {
  tasks.push_back(std::move(t));
  return static_cast<int>(tasks.size()) - 1;
}

int Plan::add_collective(Collective c) {
  collectives.push_back(std::move(c));
  return static_cast<int>(collectives.size()) - 1;
}

int Plan::add_comm_task(int rank, int collective, Stream stream, TaskDeps deps, int step) {
  const Collective& c = collectives[static_cast<size_t>(collective)];
  Task t;
  t.rank = rank;
  t.kind = TaskKind::kComm;
  t.stream = stream;
  t.collective = collective;
  t.phase = c.phase;
  t.layer = c.layer;
  t.role = c.role;
  t.micro_op = c.micro_op;
  t.deps = std::move(deps);
  t.step = step;
  return add_task(std::move(t));
}

int Plan::add_host_load(int rank, double bytes, Stream stream, Phase phase, int layer, TaskDeps deps, int step) {
  Collective c;
  c.kind = CommKind::kHostLoad;
  c.ranks = {rank};
  c.bytes = {bytes};
  c.phase = phase;
  c.layer = layer;
  return add_comm_task(rank, add_collective(std::move(c)), stream, std::move(deps), step);
}

std::string Plan::task_name(int id) const {
  const Task& t = tasks[static_cast<size_t>(id)];
  std::string phase = t.phase == Phase::kForward ? "fwd" : t.phase == Phase::kBackward ? "bwd" : "step";
  std::string what;
  if (t.kind == TaskKind::kCompute) {
    what = t.role == Role::kExpert ? "expert" : std::string(op_kind_name(t.op));
  } else if (t.kind == TaskKind::kHost) {
    what = "host";
  } else {
    const Collective& c = collectives[static_cast<size_t>(t.collective)];
    what = comm_name(c.kind);
    if (c.role == Role::kDispatch) what = "dispatch " + what;
    if (c.role == Role::kCombine) what = "combine " + what;
  }
  std::string out = phase;
  if (t.layer >= 0) out += fmt::format(" L{}", t.layer);
  out += " " + what;
  if (t.micro_op >= 0) out += fmt::format(" #{}", t.micro_op);
  return out;
}

void validate_plan(const Plan& plan) {
  auto fail = [](const std::string& m) { throw std::logic_error("invalid plan: " + m); };
  const size_t n = plan.tasks.size(), nc = plan.collectives.size();
  // Each collective's tasks, in compressed rows (an inference run checks a plan of thousands of tasks per batch).
  std::vector<int> at(nc + 1, 0), of;
  for (size_t i = 0; i < n; ++i) {
    const Task& t = plan.tasks[i];
    if (t.rank < 0 || t.rank >= plan.ranks) fail(fmt::format("task {} on rank {} of {}", i, t.rank, plan.ranks));
    if (!(std::isfinite(t.flops) && t.flops >= 0 && std::isfinite(t.bytes) && t.bytes >= 0)) {
      fail(fmt::format("task {} has a negative or non-finite size", i));
    }
    for (int d : t.deps) {
      if (d < 0 || static_cast<size_t>(d) >= i) fail(fmt::format("task {} depends on {} (not an earlier task)", i, d));
      if (plan.tasks[static_cast<size_t>(d)].rank != t.rank) fail(fmt::format("task {} depends across ranks", i));
    }
    if (t.kind == TaskKind::kComm) {
      if (t.collective < 0 || static_cast<size_t>(t.collective) >= nc) {
        fail(fmt::format("task {} names collective {}", i, t.collective));
      }
      ++at[static_cast<size_t>(t.collective) + 1];
    }
  }
  for (size_t c = 0; c < nc; ++c) at[c + 1] += at[c];
  of.resize(static_cast<size_t>(at[nc]));
  {
    std::vector<int> fill(at.begin(), at.end() - 1);
    for (const Task& t : plan.tasks) {
      if (t.kind == TaskKind::kComm) of[static_cast<size_t>(fill[static_cast<size_t>(t.collective)]++)] = t.rank;
    }
  }
  // mark[rank]: 2c+1 once collective c lists the rank, 2c+2 once a task of c has claimed it.
  std::vector<size_t> mark(static_cast<size_t>(std::max(plan.ranks, 0)), 0);
  for (size_t c = 0; c < nc; ++c) {
    const Collective& col = plan.collectives[c];
    for (int r : col.ranks) {
      if (r < 0 || r >= plan.ranks) fail(fmt::format("collective {} names rank {} of {}", c, r, plan.ranks));
      if (mark[static_cast<size_t>(r)] == 2 * c + 1) fail(fmt::format("collective {} repeats a rank", c));
      mark[static_cast<size_t>(r)] = 2 * c + 1;
    }
    for (int i = at[c]; i < at[c + 1]; ++i) {
      size_t& m = mark[static_cast<size_t>(of[static_cast<size_t>(i)])];
      if (m != 2 * c + 1) fail(fmt::format("collective {} lacks a task for some participant", c));
      m = 2 * c + 2;
    }
    if (static_cast<size_t>(at[c + 1] - at[c]) != col.ranks.size()) {
      fail(fmt::format("collective {} lacks a task for some participant", c));
    }
    size_t p = col.ranks.size();
    if (col.kind == CommKind::kAllToAll ? col.bytes.size() != p * p : col.bytes.size() != 1) {
      fail(fmt::format("collective {} has {} sizes for {} ranks", c, col.bytes.size(), p));
    }
    for (double b : col.bytes) {
      if (!(std::isfinite(b) && b >= 0)) fail(fmt::format("collective {} has a negative size", c));
    }
  }
  // Acyclic: every dependency names an earlier task (checked above), so the task order is a topological order and no
  // cycle can exist. (A Boost.Graph topological sort here used to re-prove it and took a tenth of an inference run.)
}

}  // namespace lina
