// The sim executor (sim/executor.hpp) on hand-built plans: stream FIFO order, dependency waits, the collective
// rendezvous (a collective starts when its last participant launches), scheduler callbacks, deadlock detection,
// and closed-form times with the real network backend on a 2-GPU cluster.
#include <gtest/gtest.h>

#include <map>
#include <stdexcept>
#include <vector>

#include "sched/cluster_spec.hpp"
#include "sched/plan.hpp"
#include "sched/runtime_scheduler.hpp"
#include "sim/collective_backend.hpp"
#include "sim/engine.hpp"
#include "sim/executor.hpp"
#include "sim/network.hpp"
#include "sim/topology.hpp"

namespace lina::sim {
namespace {

// Each participant at position p is done `base + p * 1us` after the collective starts.
class FakeBackend : public CollectiveBackend {
 public:
  FakeBackend(Engine& e, Time base) : engine_(e), base_(base) {}
  void start(const Collective& c, std::function<void(int)> done) override {
    starts.push_back(engine_.now());
    for (size_t p = 0; p < c.ranks.size(); ++p) {
      int pos = static_cast<int>(p);
      engine_.schedule_after(base_ + Time::us(pos), [done, pos] { done(pos); });
    }
  }
  std::vector<Time> starts;

 private:
  Engine& engine_;
  Time base_;
};

// Compute and host tasks last `flops` nanoseconds.
ExecutorOptions ns_options() {
  ExecutorOptions o;
  o.compute_duration = [](const Task& t) { return Time::ns(static_cast<int64_t>(t.flops)); };
  return o;
}

int compute(Plan& p, int rank, double ns, TaskDeps deps = {}, Stream s = Stream::kCompute) {
  Task t;
  t.rank = rank;
  t.kind = s == Stream::kHost ? TaskKind::kHost : TaskKind::kCompute;
  t.stream = s;
  t.flops = ns;
  t.deps = std::move(deps);
  return p.add_task(t);
}

int comm(Plan& p, int rank, int collective, TaskDeps deps = {}, Stream s = Stream::kAllToAll) {
  Task t;
  t.rank = rank;
  t.kind = TaskKind::kComm;
  t.stream = s;
  t.collective = collective;
  t.deps = std::move(deps);
  return p.add_task(t);
}

int a2a(Plan& p, std::vector<int> ranks) {
  Collective c;
  c.kind = CommKind::kAllToAll;
  c.bytes.assign(ranks.size() * ranks.size(), 1.0);
  c.ranks = std::move(ranks);
  return p.add_collective(c);
}

// Launches comm tasks `delay` after they are ready, and logs every callback.
class RecordingScheduler : public RuntimeScheduler {
 public:
  RecordingScheduler(Engine& e, Time delay) : engine_(e), delay_(delay) {}
  void attach(const Plan&, Launcher& l) override { launcher_ = &l; }
  void on_comm_ready(int task, Time now) override {
    ready[task] = now;
    if (delay_ == Time::zero()) {
      launcher_->launch(task);
    } else {
      engine_.schedule_after(delay_, [this, task] { launcher_->launch(task); });
    }
  }
  void on_task_start(int task, Time now) override { started[task] = now; }
  void on_task_finish(int task, Time now) override { finished[task] = now; }
  std::map<int, Time> ready, started, finished;

 private:
  Engine& engine_;
  Time delay_;
  Launcher* launcher_ = nullptr;
};

struct Small {
  Plan p;
  int t0, t1, t2, t3, t4, t5, t6, t7, t8;
  Small() {
    p.ranks = 2;
    int c = a2a(p, {0, 1});
    t0 = compute(p, 0, 10'000);                    // r0 [0, 10us]
    t1 = comm(p, 0, c, {t0});                      // r0 ready at 10us, waits for r1
    t2 = compute(p, 0, 5'000);                     // r0 compute stream, after t0 (FIFO): [10, 15us]
    t3 = compute(p, 0, 4'000, {t1});               // after the all-to-all
    t4 = compute(p, 0, 1'000);                     // no deps, but queued behind t3 on the same stream
    t5 = compute(p, 1, 30'000);                    // r1 [0, 30us]
    t6 = comm(p, 1, c, {t5});                      // r1 ready at 30us: the last participant
    t7 = compute(p, 1, 2'000, {t6});               //
    t8 = compute(p, 0, 3'000, {}, Stream::kHost);  // another stream of r0: runs at once, in parallel
  }
};

TEST(Executor, StreamsDependenciesAndRendezvousClosedForm) {
  Small s;
  Engine engine;
  FakeBackend backend(engine, Time::us(7));
  Executor exec(engine, backend, ns_options());
  ImmediateScheduler sched;
  Timeline tl = exec.run(s.p, sched);
  auto rec = [&](int id) { return tl.records[static_cast<size_t>(id)]; };
  auto us = [](int64_t n) { return Time::us(n); };
  // Compute tasks: launch == start.
  EXPECT_EQ(rec(s.t0).start, us(0));
  EXPECT_EQ(rec(s.t0).end, us(10));
  EXPECT_EQ(rec(s.t2).start, us(10));  // FIFO: behind t0 although it has no dependency
  EXPECT_EQ(rec(s.t2).end, us(15));
  EXPECT_EQ(rec(s.t8).start, us(0));  // the host stream is independent
  EXPECT_EQ(rec(s.t8).end, us(3));
  EXPECT_EQ(rec(s.t5).end, us(30));
  // Rendezvous: rank 0 launched at 10us, the collective starts when rank 1 launches at 30us, on both ranks.
  ASSERT_EQ(backend.starts.size(), 1u);
  EXPECT_EQ(backend.starts[0], us(30));
  EXPECT_EQ(rec(s.t1).launch, us(10));
  EXPECT_EQ(rec(s.t1).start, us(30));
  EXPECT_EQ(rec(s.t6).launch, us(30));
  EXPECT_EQ(rec(s.t6).start, us(30));
  // Position 0 done 7us after the start, position 1 after 8us.
  EXPECT_EQ(rec(s.t1).end, us(37));
  EXPECT_EQ(rec(s.t6).end, us(38));
  // Dependency waits: t3 after t1 (37us), t7 after t6 (38us); t4 queued behind t3.
  EXPECT_EQ(rec(s.t3).start, us(37));
  EXPECT_EQ(rec(s.t3).end, us(41));
  EXPECT_EQ(rec(s.t4).start, us(41));
  EXPECT_EQ(rec(s.t4).end, us(42));
  EXPECT_EQ(rec(s.t7).start, us(38));
  EXPECT_EQ(rec(s.t7).end, us(40));
  EXPECT_EQ(tl.makespan, us(42));
  for (size_t i = 0; i < tl.records.size(); ++i) EXPECT_EQ(tl.records[i].task, static_cast<int>(i));
}

TEST(Executor, SchedulerDecidesWhenToLaunch) {
  Small s;
  Engine engine;
  FakeBackend backend(engine, Time::us(7));
  Executor exec(engine, backend, ns_options());
  RecordingScheduler sched(engine, Time::us(3));
  Timeline tl = exec.run(s.p, sched);
  auto us = [](int64_t n) { return Time::us(n); };
  // Ready when at the head of the stream with dependencies done; launched 3us later.
  EXPECT_EQ(sched.ready.at(s.t1), us(10));
  EXPECT_EQ(sched.ready.at(s.t6), us(30));
  EXPECT_EQ(sched.ready.size(), 2u);  // only communication tasks are reported ready
  EXPECT_EQ(tl.records[static_cast<size_t>(s.t1)].launch, us(13));
  EXPECT_EQ(tl.records[static_cast<size_t>(s.t6)].launch, us(33));
  EXPECT_EQ(backend.starts.at(0), us(33));
  EXPECT_EQ(sched.started.at(s.t1), us(33));  // on_task_start of a comm task: when the collective starts
  EXPECT_EQ(sched.finished.at(s.t1), us(40));
  EXPECT_EQ(sched.finished.at(s.t6), us(41));
  EXPECT_EQ(tl.records[static_cast<size_t>(s.t4)].end, us(45));  // 40 + 4 + 1
  EXPECT_EQ(tl.makespan, us(45));
  EXPECT_EQ(sched.started.size(), s.p.tasks.size());
  EXPECT_EQ(sched.finished.size(), s.p.tasks.size());
  for (const auto& [task, t] : sched.finished) EXPECT_EQ(tl.records[static_cast<size_t>(task)].end, t);
}

TEST(Executor, CommStreamIsFifoToo) {
  // Two all-to-alls on rank 0's all-to-all stream: the second cannot start before the first ends even though rank 1
  // is ready for it early (it issues it on another stream).
  Plan p;
  p.ranks = 2;
  int c0 = a2a(p, {0, 1}), c1 = a2a(p, {0, 1});
  int a = comm(p, 0, c0);
  int b = comm(p, 0, c1);
  int x = compute(p, 1, 20'000);
  int y = comm(p, 1, c0, {x});
  int z = comm(p, 1, c1, {}, Stream::kAllReduce);
  Engine engine;
  FakeBackend backend(engine, Time::us(5));
  Executor exec(engine, backend, ns_options());
  ImmediateScheduler sched;
  Timeline tl = exec.run(p, sched);
  auto r = [&](int id) { return tl.records[static_cast<size_t>(id)]; };
  EXPECT_EQ(r(z).launch, Time::zero());
  EXPECT_EQ(r(a).start, Time::us(20));
  EXPECT_EQ(r(a).end, Time::us(25));
  EXPECT_EQ(r(y).end, Time::us(26));
  EXPECT_EQ(r(b).launch, Time::us(25));  // head of rank 0's stream once a is done
  EXPECT_EQ(r(b).start, Time::us(25));
  EXPECT_EQ(r(z).start, Time::us(25));
  EXPECT_EQ(r(b).end, Time::us(30));
  EXPECT_EQ(r(z).end, Time::us(31));
  ASSERT_EQ(backend.starts.size(), 2u);
}

TEST(Executor, OppositeCollectiveOrderDeadlocks) {
  Plan p;
  p.ranks = 2;
  int c0 = a2a(p, {0, 1}), c1 = a2a(p, {0, 1});
  comm(p, 0, c0);
  comm(p, 0, c1);
  comm(p, 1, c1);
  comm(p, 1, c0);
  Engine engine;
  FakeBackend backend(engine, Time::us(1));
  Executor exec(engine, backend, ns_options());
  ImmediateScheduler sched;
  try {
    exec.run(p, sched);
    FAIL() << "no deadlock reported";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("deadlock: 0 of 4 tasks finished"), std::string::npos) << e.what();
  }
}

TEST(Executor, InvalidPlanIsRejectedBeforeRunning) {
  Plan p;
  p.ranks = 2;
  int c = a2a(p, {0, 1});
  comm(p, 0, c);  // rank 1 never joins
  Engine engine;
  FakeBackend backend(engine, Time::us(1));
  Executor exec(engine, backend, ns_options());
  ImmediateScheduler sched;
  EXPECT_THROW(exec.run(p, sched), std::logic_error);
  EXPECT_TRUE(backend.starts.empty());
}

ClusterSpec two_gpus() {
  // One node, 2 GPUs, 100 GB/s per direction to the switch, no link latency, 10us per collective step.
  return cluster_from_json(nlohmann::json{{"nodes", 1},
                                          {"gpus_per_node", 2},
                                          {"gpu", "A100-40GB"},
                                          {"intra_node", {{"bandwidth", "100GB/s"}, {"latency", "0us"}}},
                                          {"collective_alpha", "10us"}},
                           "", "");
}

// An executor's network side on two_gpus().
struct TwoGpuNetwork {
  ClusterSpec c = two_gpus();
  Engine engine;
  Topology topo{c};
  Network net{engine, topo};
  NetworkCollectives coll{engine, net, topo, c};
};

TEST(ExecutorNetwork, RingAllreduceOnTwoGpusClosedForm) {
  // Ring allreduce of M = 200 MB on P = 2: 2(P-1) = 2 steps of M/P = 100 MB each way (full duplex, so the two
  // directions do not share). Step = alpha + 100 MB / 100 GB/s = 10us + 1ms; total 2.02 ms.
  TwoGpuNetwork h;
  Plan p;
  p.ranks = 2;
  Collective ar;
  ar.kind = CommKind::kAllReduce;
  ar.ranks = {0, 1};
  ar.bytes = {200e6};
  int id = p.add_collective(ar);
  int a = comm(p, 0, id, {}, Stream::kAllReduce);
  int x = compute(p, 1, 50'000);  // rank 1 joins at 50us
  int b = comm(p, 1, id, {x}, Stream::kAllReduce);
  Executor exec(h.engine, h.coll, ns_options());
  ImmediateScheduler sched;
  Timeline tl = exec.run(p, sched);
  const double want = 50e-6 + 2 * (10e-6 + 1e-3);
  EXPECT_EQ(tl.records[static_cast<size_t>(a)].start, Time::us(50));
  EXPECT_NEAR(tl.records[static_cast<size_t>(a)].end.seconds(), want, 1e-9);
  EXPECT_NEAR(tl.records[static_cast<size_t>(b)].end.seconds(), want, 1e-9);
}

TEST(ExecutorNetwork, DirectAllToAllOnTwoGpusClosedForm) {
  // 0 -> 1: 50 MB, 1 -> 0: 20 MB, direct (not hierarchical): one phase after alpha; both ranks take part in both
  // flows, so both finish with the longer one: 10us + 50 MB / 100 GB/s = 510us.
  TwoGpuNetwork h;
  Plan p;
  p.ranks = 2;
  Collective x;
  x.kind = CommKind::kAllToAll;
  x.ranks = {0, 1};
  x.bytes = {0, 50e6, 20e6, 0};
  int id = p.add_collective(x);
  int a = comm(p, 0, id);
  int b = comm(p, 1, id);
  Executor exec(h.engine, h.coll, ns_options());
  ImmediateScheduler sched;
  Timeline tl = exec.run(p, sched);
  EXPECT_NEAR(tl.records[static_cast<size_t>(a)].end.seconds(), 510e-6, 1e-9);
  EXPECT_NEAR(tl.records[static_cast<size_t>(b)].end.seconds(), 510e-6, 1e-9);
}

}  // namespace
}  // namespace lina::sim
