#include "sim/executor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace lina::sim {

namespace {
// A task's stream queue: q = rank * kStreamCount + stream.
size_t queue_of(const Task& t) { return static_cast<size_t>(t.rank) * kStreamCount + static_cast<size_t>(t.stream); }
}  // namespace

struct Executor::State : Launcher {
  Engine& engine;
  CollectiveBackend& collectives;
  const ExecutorOptions& options;
  const Plan& plan;
  RuntimeScheduler& scheduler;
  Timeline tl;

  // Per task: dependencies still pending. The plan's rows (PlanIndex): given, or built here.
  PlanIndex own_index;
  const PlanIndex& ix;
  std::vector<int> pending_deps;
  std::vector<uint8_t> reported;
  // Per rank and stream: the position of its head in ix.queue_tasks and whether it is running.
  std::vector<int> head;  // q = rank * kStreamCount + stream
  std::vector<uint8_t> busy;
  // Per collective: participants launched so far; per participant slot (ix.part_at): the tasks in launch order, and
  // the tasks by position in the collective's rank list. Flat, since an inference batch starts a hundred collectives
  // and per-collective vectors were an allocation each.
  std::vector<int> launched;
  std::vector<int> launch_order, task_at_position;
  size_t finished = 0;

  State(Engine& e, CollectiveBackend& c, const ExecutorOptions& o, const Plan& p, RuntimeScheduler& s)
      : engine(e), collectives(c), options(o), plan(p), scheduler(s), ix(o.index ? *o.index : own_index) {
    if (!o.index) index_plan(plan, own_index);
    const size_t n = plan.tasks.size();
    const size_t nq = static_cast<size_t>(plan.ranks) * kStreamCount;
    pending_deps.resize(n);
    for (size_t i = 0; i < n; ++i) pending_deps[i] = static_cast<int>(plan.tasks[i].deps.size());
    reported.assign(n, 0);
    tl.records.resize(n);
    head.assign(ix.queue_at.begin(), ix.queue_at.end() - 1);
    busy.assign(nq, 0);
    const size_t nc = plan.collectives.size();
    launched.assign(nc, 0);
    launch_order.assign(static_cast<size_t>(ix.part_at[nc]), -1);
    task_at_position.assign(static_cast<size_t>(ix.part_at[nc]), -1);
  }

  bool queue_empty(size_t q) const { return head[q] == ix.queue_at[q + 1]; }

  // Starts the head of a stream if it is idle and the head's dependencies are done.
  void poke(size_t q) {
    if (busy[q] || queue_empty(q)) return;
    int id = ix.queue_tasks[static_cast<size_t>(head[q])];
    if (pending_deps[static_cast<size_t>(id)] > 0) return;
    const Task& t = plan.tasks[static_cast<size_t>(id)];
    busy[q] = 1;
    if (t.kind == TaskKind::kComm) {
      if (!reported[static_cast<size_t>(id)]) {
        reported[static_cast<size_t>(id)] = 1;
        scheduler.on_comm_ready(id, engine.now());
      }
      return;
    }
    Time now = engine.now();
    tl.records[static_cast<size_t>(id)] = TaskRecord{id, now, now, now};
    scheduler.on_task_start(id, now);
    Time d = options.durations ? (*options.durations)[static_cast<size_t>(id)] : options.compute_duration(t);
    engine.schedule_after(d, [this, id] { finish(id); });
  }

  void launch(int id) override {
    const Task& t = plan.tasks[static_cast<size_t>(id)];
    if (t.kind != TaskKind::kComm) throw std::logic_error("launch of a non-communication task");
    Time now = engine.now();
    tl.records[static_cast<size_t>(id)].task = id;
    tl.records[static_cast<size_t>(id)].launch = now;
    auto c = static_cast<size_t>(t.collective);
    const Collective& col = plan.collectives[c];
    const auto row = static_cast<size_t>(ix.part_at[c]);
    const auto pos = static_cast<size_t>(std::find(col.ranks.begin(), col.ranks.end(), t.rank) - col.ranks.begin());
    task_at_position[row + pos] = id;  // validate_plan: each rank of the collective has exactly one task
    launch_order[row + static_cast<size_t>(launched[c])] = id;
    if (++launched[c] < static_cast<int>(col.ranks.size())) return;
    // Every participant launched: the collective starts now on all its ranks.
    for (size_t k = 0; k < col.ranks.size(); ++k) {
      const int task = launch_order[row + k];
      tl.records[static_cast<size_t>(task)].start = now;
      scheduler.on_task_start(task, now);
    }
    collectives.start(col, [this, row](int p) { finish(task_at_position[row + static_cast<size_t>(p)]); });
  }

  void finish(int id) {
    const Task& t = plan.tasks[static_cast<size_t>(id)];
    tl.records[static_cast<size_t>(id)].end = engine.now();
    ++finished;
    size_t q = queue_of(t);
    ++head[q];
    busy[q] = 0;
    scheduler.on_task_finish(id, engine.now());
    for (int i = ix.dependents_at[static_cast<size_t>(id)]; i < ix.dependents_at[static_cast<size_t>(id) + 1]; ++i) {
      const int d = ix.dependents[static_cast<size_t>(i)];
      if (--pending_deps[static_cast<size_t>(d)] == 0) poke(queue_of(plan.tasks[static_cast<size_t>(d)]));
    }
    poke(q);
  }
};

void index_plan(const Plan& plan, PlanIndex& out) {
  const size_t n = plan.tasks.size();
  const size_t nq = static_cast<size_t>(plan.ranks) * kStreamCount;
  // Counting sort into rows, in task order, so dependents and queues keep the order of a push_back per task.
  out.dependents_at.assign(n + 1, 0);
  out.queue_at.assign(nq + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    const Task& t = plan.tasks[i];
    for (int d : t.deps) ++out.dependents_at[static_cast<size_t>(d) + 1];
    ++out.queue_at[queue_of(t) + 1];
  }
  for (size_t i = 0; i < n; ++i) out.dependents_at[i + 1] += out.dependents_at[i];
  for (size_t q = 0; q < nq; ++q) out.queue_at[q + 1] += out.queue_at[q];
  out.dependents.resize(static_cast<size_t>(out.dependents_at[n]));
  out.queue_tasks.resize(n);
  std::vector<int> fill_dep(out.dependents_at.begin(), out.dependents_at.end() - 1);
  std::vector<int> fill_queue(out.queue_at.begin(), out.queue_at.end() - 1);
  for (size_t i = 0; i < n; ++i) {
    const Task& t = plan.tasks[i];
    for (int d : t.deps) out.dependents[static_cast<size_t>(fill_dep[static_cast<size_t>(d)]++)] = static_cast<int>(i);
    out.queue_tasks[static_cast<size_t>(fill_queue[queue_of(t)]++)] = static_cast<int>(i);
  }
  out.part_at.assign(plan.collectives.size() + 1, 0);
  for (size_t c = 0; c < plan.collectives.size(); ++c) {
    out.part_at[c + 1] = out.part_at[c] + static_cast<int>(plan.collectives[c].ranks.size());
  }
}

Executor::Executor(Engine& engine, CollectiveBackend& collectives, ExecutorOptions options)
    : engine_(engine), collectives_(collectives), options_(std::move(options)) {}

Timeline Executor::run(const Plan& plan, RuntimeScheduler& scheduler) {
  if (!options_.plan_validated) validate_plan(plan);
  State s(engine_, collectives_, options_, plan, scheduler);
  scheduler.attach(plan, s);
  for (size_t q = 0; q < s.busy.size(); ++q) s.poke(q);
  engine_.run();
  if (s.finished != plan.tasks.size()) {
    for (size_t q = 0; q < s.busy.size(); ++q) {
      if (!s.queue_empty(q)) {
        throw std::logic_error(
            fmt::format("executor deadlock: {} of {} tasks finished; rank {} {} stream waits on '{}'", s.finished,
                        plan.tasks.size(), q / kStreamCount, stream_name(static_cast<Stream>(q % kStreamCount)),
                        plan.task_name(s.ix.queue_tasks[static_cast<size_t>(s.head[q])])));
      }
    }
  }
  s.tl.makespan = engine_.now();
  return std::move(s.tl);
}

}  // namespace lina::sim
