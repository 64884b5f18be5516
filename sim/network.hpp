// Flow-level network model (DESIGN.md 2.3).
//
// A flow (route, bytes, priority class, weight) first waits the sum of its route's latencies, then drains at the rate
// the allocator gives it until its bytes are delivered. Allocation is strict priority across classes (class 0 is
// served first; a link's capacity left by higher classes is shared by lower ones) and weighted max-min fairness within
// a class, computed by progressive filling: the link with the smallest fair share per unit weight saturates first,
// its flows freeze at that share, their capacity is removed from their other links, and so on. With one class and
// unit weights this is plain max-min, the fluid model of SimGrid's solver.
//
// Speed (DESIGN.md 9): the network keeps its own bookkeeping and holds at most ONE engine event, at the earliest of
// (next flow arrival, next completion). All arrivals and completions at one timestamp are applied together and
// followed by one recompute; the recompute only covers the connected components (links joined by flows) that
// contain a link whose flow set changed, and flows whose rate did not change keep their completion time. Each
// component keeps a single completion entry (its earliest finishing flows), so a recompute never pushes one heap
// entry per flow. Flows and links live in flat arrays indexed by id; nothing is allocated per event once the arrays
// have grown. Flow ids are slots that are reused after a flow completed and its callback ran.
//
// Debug builds check after every recompute: no link above capacity (relative 1e-9), work conservation (every
// draining flow crosses a saturated link), and at completion that delivered bytes equal the flow's bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "sched/time.hpp"
#include "sim/engine.hpp"
#include "sim/topology.hpp"

namespace lina::sim {

class Network {
 public:
  using FlowId = uint32_t;
  using Callback = std::function<void(FlowId)>;
  // (time, link, total rate in bytes/s) whenever a link's total allocated rate changes.
  using LinkObserver = std::function<void(Time, LinkId, double)>;
  static constexpr int kMaxClass = 63;

  struct Stats {
    uint64_t flows = 0;              // flows started
    uint64_t flows_completed = 0;    // flows whose callback ran
    uint64_t wakeups = 0;            // engine events handled by the network
    uint64_t rate_recomputes = 0;    // coalesced recomputes (at most one per timestamp, barring rounding)
    uint64_t components = 0;         // connected components solved
    uint64_t flow_allocations = 0;   // flows (re)allocated over all recomputes: the solver's work
    uint64_t completions_moved = 0;  // flows whose rate, hence completion time, changed in a recompute
    double bytes_started = 0;
    double bytes_completed = 0;
  };

  Network(Engine& engine, const Topology& topology);
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  // Starts a flow now from src_gpu to dst_gpu. bytes >= 0, weight > 0, priority_class in [0, kMaxClass] (0 highest);
  // std::invalid_argument otherwise (callers validate user input first and report it as InputError). src == dst is
  // a local copy that completes now; a zero-byte flow completes after its route latency. on_done runs from an engine
  // event at the completion time; it may start new flows.
  FlowId start_flow(int src_gpu, int dst_gpu, double bytes, int priority_class, double weight, Callback on_done);
  // host memory -> gpu over the host PCIe link (expert weights loaded from host).
  FlowId start_host_flow(int gpu, double bytes, int priority_class, double weight, Callback on_done);
  // Any route of the topology (links in order) with its latency.
  FlowId start_route_flow(std::span<const LinkId> route, Time latency, double bytes, int priority_class, double weight,
                          Callback on_done);

  // Rate of a draining flow (bytes/s); 0 while it waits for its latency or is starved by a higher class.
  double rate(FlowId f) const;
  bool draining(FlowId f) const;
  // Bytes still to deliver now (the full size while waiting for latency).
  double remaining_bytes(FlowId f) const;
  size_t draining_flow_count() const { return draining_; }
  // Calls fn(id, route, class, weight, rate) for every draining flow, in id order.
  void for_each_draining_flow(
      const std::function<void(FlowId, std::span<const LinkId>, int, double, double)>& fn) const;

  // Off by default; costs one pass over the recomputed links' flows when on.
  void set_link_observer(LinkObserver observer) { observer_ = std::move(observer); }

  const Stats& stats() const { return stats_; }
  const Topology& topology() const { return topo_; }
  Engine& engine() { return engine_; }

 private:
  enum State : uint8_t { kFree, kWaiting, kDraining, kDone };
  struct Pending {  // an arrival (end of latency) or a component's completion batch, ordered by (time, seq)
    int64_t t;
    uint64_t seq;
    uint32_t idx;
    bool operator>(const Pending& o) const { return t != o.t ? t > o.t : seq > o.seq; }
  };
  struct Batch {
    uint32_t epoch = 0;
    uint32_t rep = 0;  // a flow of the batch; the batch is valid while rep keeps this epoch
    std::vector<FlowId> flows;
  };

  FlowId alloc_flow();
  void ensure_wake(int64_t t);
  void on_wake();
  void activate(FlowId f);
  void finish_flow(FlowId f);
  void mark_dirty(LinkId l);
  void recompute();
  void solve_component(std::span<const LinkId> links);
  // The weight of the flows of link l's current class segment not yet given a rate (exactly, from the flows).
  double unfrozen_weight(LinkId l) const;
  void schedule_next();
  void check_component(std::span<const LinkId> links) const;

  Engine& engine_;
  const Topology& topo_;
  LinkObserver observer_;
  Stats stats_;
  int64_t now_ = 0;

  // Flows, struct of arrays by FlowId.
  std::vector<const LinkId*> route_;
  std::vector<uint8_t> hops_, cls_, state_;
  std::vector<double> weight_, rate_, remaining_, bytes_;
  std::vector<int64_t> last_, finish_;
  std::vector<uint32_t> epoch_, mark_;
  std::vector<Callback> callback_;
  std::vector<FlowId> free_flows_;
  size_t draining_ = 0;

  // Links, by LinkId.
  std::vector<std::vector<FlowId>> on_link_;  // draining flows (and, until the next recompute, finished ones)
  std::vector<uint32_t> live_, visit_, unfrozen_, seg_begin_, seg_end_;
  std::vector<uint8_t> dirty_flag_;
  std::vector<double> cap_, cap_left_, weight_left_, observed_rate_;
  std::vector<LinkId> dirty_;
  size_t live_links_ = 0;

  // Event bookkeeping.
  std::vector<Pending> arrivals_, completions_;  // min-heaps
  std::vector<Batch> batches_;
  std::vector<uint32_t> free_batches_;
  uint64_t seq_ = 0;
  uint32_t epoch_counter_ = 0, visit_counter_ = 0, fill_counter_ = 0;
  bool in_handler_ = false, wake_pending_ = false;
  int64_t wake_time_ = 0;
  Engine::EventId wake_id_;

  // Scratch reused by every recompute.
  std::vector<FlowId> done_;
  std::vector<LinkId> comp_links_;
  std::vector<std::pair<FlowId, double>> alloc_;
  std::vector<std::pair<double, LinkId>> heap_;
  std::vector<FlowId> batch_scratch_, class_scratch_;
};

}  // namespace lina::sim
