#include "sim/network.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "sim/slots.hpp"

namespace lina::sim {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr double kTicks = static_cast<double>(Time::kTicksPerSecond);

// Completion tick of a transfer of `seconds` from tick `now`: rounded up (DESIGN.md 2.1), ignoring floating-point noise
// below 1e-12 relative so that a transfer whose exact duration is a whole number of ticks is not pushed one tick late.
// A completion that the current rate puts past the clock's end is parked at its last tick. A flow starved for now (a
// tiny weight beside large flows) is re-rated, and its completion moved, as soon as its component changes; one still
// unfinished when the clock ends is the clock's input error (TimeRangeError), thrown then. (Durations used to saturate
// at 4e18 ticks, 46 days, inside the clock: a flow that needed 58 days finished at 46, silently.)
constexpr int64_t kClockEnd = Time::kLimitTicks - 1;
int64_t finish_tick(int64_t now, double seconds) {
  const double x = seconds * kTicks;
  if (!(x < static_cast<double>(kClockEnd - now))) return kClockEnd;
  return std::min(now + static_cast<int64_t>(std::ceil(x - x * 1e-12)), kClockEnd);
}

// Capacity left on a link, with floating-point residue of a saturated link (below 1e-12 of its capacity) snapped to
// zero, so that lower classes are not handed a meaningless 1e-7 bytes/s.
double usable(double left, double cap) { return left > cap * 1e-12 ? left : 0.0; }

double seconds_between(int64_t a, int64_t b) { return static_cast<double>(b - a) / kTicks; }

}  // namespace

Network::Network(Engine& engine, const Topology& topology) : engine_(engine), topo_(topology) {
  const size_t L = topo_.link_count();
  on_link_.resize(L);
  live_.assign(L, 0);
  visit_.assign(L, 0);
  unfrozen_.assign(L, 0);
  dirty_flag_.assign(L, 0);
  cap_.resize(L);
  for (size_t l = 0; l < L; ++l) cap_[l] = topo_.link_capacity(static_cast<LinkId>(l));
  cap_left_.assign(L, 0);
  weight_left_.assign(L, 0);
  observed_rate_.assign(L, 0);
  seg_begin_.assign(L, 0);
  seg_end_.assign(L, 0);
}

Network::FlowId Network::alloc_flow() {
  if (!free_flows_.empty()) {
    FlowId f = free_flows_.back();
    free_flows_.pop_back();
    return f;
  }
  FlowId f = static_cast<FlowId>(route_.size());
  route_.push_back(nullptr);
  hops_.push_back(0);
  cls_.push_back(0);
  state_.push_back(kFree);
  weight_.push_back(0);
  rate_.push_back(0);
  remaining_.push_back(0);
  bytes_.push_back(0);
  last_.push_back(0);
  finish_.push_back(kNever);
  epoch_.push_back(0);
  mark_.push_back(0);
  callback_.emplace_back();
  return f;
}

Network::FlowId Network::start_flow(int src, int dst, double bytes, int cls, double weight, Callback on_done) {
  auto r = topo_.route(src, dst);
  return start_route_flow(r, topo_.latency_of(r), bytes, cls, weight, std::move(on_done));
}

Network::FlowId Network::start_host_flow(int gpu, double bytes, int cls, double weight, Callback on_done) {
  auto r = topo_.host_route(gpu);
  return start_route_flow(r, topo_.latency_of(r), bytes, cls, weight, std::move(on_done));
}

Network::FlowId Network::start_route_flow(std::span<const LinkId> route, Time latency, double bytes, int cls,
                                          double weight, Callback on_done) {
  if (!(bytes >= 0) || !std::isfinite(bytes)) throw std::invalid_argument("lina network: flow bytes must be >= 0");
  if (!(weight > 0) || !std::isfinite(weight)) throw std::invalid_argument("lina network: flow weight must be > 0");
  if (cls < 0 || cls > kMaxClass) throw std::invalid_argument("lina network: priority class outside [0, 63]");
  if (route.size() > 255) throw std::invalid_argument("lina network: route longer than 255 links");
  if (latency < Time::zero()) throw std::invalid_argument("lina network: negative latency");
  FlowId f = alloc_flow();
  route_[f] = route.data();
  hops_[f] = static_cast<uint8_t>(route.size());
  cls_[f] = static_cast<uint8_t>(cls);
  state_[f] = kWaiting;
  weight_[f] = weight;
  rate_[f] = 0;
  remaining_[f] = bytes;
  bytes_[f] = bytes;
  epoch_[f] = 0;
  finish_[f] = kNever;
  callback_[f] = std::move(on_done);
  ++stats_.flows;
  stats_.bytes_started += bytes;
  // Local copies complete now, with no network involved.
  int64_t t = engine_.now().ticks() + (route.empty() ? 0 : latency.ticks());
  arrivals_.emplace_back(t, seq_++, f);  // in place: a temporary Pending was reloaded with a store-forwarding stall
  std::push_heap(arrivals_.begin(), arrivals_.end(), std::greater<>());
  ensure_wake(t);
  return f;
}

void Network::ensure_wake(int64_t t) {
  if (in_handler_) return;  // on_wake schedules the next wake-up when it is done
  if (wake_pending_ && wake_time_ <= t) return;
  if (wake_pending_) engine_.cancel(wake_id_);
  wake_pending_ = true;
  wake_time_ = t;
  wake_id_ = engine_.schedule_at(Time::ps(t), [this] { on_wake(); });
}

void Network::mark_dirty(LinkId l) {
  if (!dirty_flag_[l]) {
    dirty_flag_[l] = 1;
    dirty_.push_back(l);
  }
}

void Network::activate(FlowId f) {
  if (hops_[f] == 0 || bytes_[f] == 0) {  // local copy, or zero bytes: done once the latency has passed
    state_[f] = kDone;
    done_.push_back(f);
    return;
  }
  state_[f] = kDraining;
  ++draining_;
  last_[f] = now_;
  rate_[f] = 0;
  const LinkId* r = route_[f];
  for (int h = 0; h < hops_[f]; ++h) {
    LinkId l = r[h];
    on_link_[l].push_back(f);
    if (live_[l]++ == 0) ++live_links_;
    mark_dirty(l);
  }
}

void Network::finish_flow(FlowId f) {
#ifndef NDEBUG
  // Byte conservation: what was delivered at the allocated rates equals the flow's size, up to one tick of the rate
  // (completion times are rounded up to the tick) and floating-point noise.
  double left = remaining_[f] - rate_[f] * seconds_between(last_[f], now_);
  assert(std::abs(left) <= rate_[f] * 2.0 / kTicks + 1e-9 * bytes_[f] + 1e-6);
#endif
  state_[f] = kDone;
  epoch_[f] = 0;
  --draining_;
  const LinkId* r = route_[f];
  for (int h = 0; h < hops_[f]; ++h) {
    LinkId l = r[h];
    if (--live_[l] == 0) --live_links_;
    mark_dirty(l);
  }
  done_.push_back(f);
}

void Network::on_wake() {
  wake_pending_ = false;
  in_handler_ = true;
  now_ = engine_.now().ticks();
  ++stats_.wakeups;
  size_t fired = 0;
  for (;;) {
    // Apply every arrival and completion at this instant, and run the callbacks (which may start flows that arrive
    // now), before one recompute.
    for (;;) {
      bool progress = false;
      while (!arrivals_.empty() && arrivals_.front().t <= now_) {
        FlowId f = arrivals_.front().idx;
        std::pop_heap(arrivals_.begin(), arrivals_.end(), std::greater<>());
        arrivals_.pop_back();
        activate(f);
        progress = true;
      }
      while (!completions_.empty() && completions_.front().t <= now_) {
        uint32_t b = completions_.front().idx;
        std::pop_heap(completions_.begin(), completions_.end(), std::greater<>());
        completions_.pop_back();
        Batch& batch = batches_[b];
        if (state_[batch.rep] == kDraining && epoch_[batch.rep] == batch.epoch) {
          if (now_ >= kClockEnd) {  // parked: the flow needs more time than the clock has
            const FlowId f = batch.rep;
            throw TimeRangeError(seconds_between(0, last_[f]) + remaining_[f] / rate_[f]);
          }
          for (FlowId f : batch.flows) finish_flow(f);
          progress = true;
        }
        batch.flows.clear();
        free_batches_.push_back(b);
      }
      if (fired < done_.size()) {
        // Callbacks of one instant run in flow-id order, whatever order the solver found them in.
        std::sort(done_.begin() + static_cast<std::ptrdiff_t>(fired), done_.end());
        for (; fired < done_.size(); ++fired) {
          FlowId f = done_[fired];
          ++stats_.flows_completed;
          stats_.bytes_completed += bytes_[f];
          Callback cb = std::move(callback_[f]);
          callback_[f] = nullptr;
          if (cb) cb(f);
        }
        progress = true;
      }
      if (!progress) break;
    }
    if (dirty_.empty()) break;
    recompute();
    // A flow whose remaining bytes rounded to zero completes at this same instant: loop once more (rare).
    if (completions_.empty() || completions_.front().t > now_) break;
  }
  // Slots are recycled only now: the recompute has removed finished flows from every link list.
  for (FlowId f : done_) {
    state_[f] = kFree;
    free_flows_.push_back(f);
  }
  done_.clear();
  in_handler_ = false;
  schedule_next();
}

void Network::schedule_next() {
  while (!completions_.empty()) {
    const Pending& p = completions_.front();
    const Batch& b = batches_[p.idx];
    if (state_[b.rep] == kDraining && epoch_[b.rep] == b.epoch) break;
    uint32_t idx = p.idx;
    std::pop_heap(completions_.begin(), completions_.end(), std::greater<>());
    completions_.pop_back();
    batches_[idx].flows.clear();
    free_batches_.push_back(idx);
  }
  int64_t t = kNever;
  if (!arrivals_.empty()) t = arrivals_.front().t;
  if (!completions_.empty()) t = std::min(t, completions_.front().t);
  if (t != kNever) ensure_wake(t);
}

void Network::recompute() {
  ++stats_.rate_recomputes;
  ++visit_counter_;
  for (size_t i = 0; i < dirty_.size(); ++i) {
    LinkId seed = dirty_[i];
    if (visit_[seed] == visit_counter_) continue;
    if (live_[seed] == 0) {
      // Nothing drains here any more: drop finished flows, report the link idle.
      on_link_[seed].clear();
      if (observer_ && observed_rate_[seed] != 0) {
        observed_rate_[seed] = 0;
        observer_(Time::ps(now_), seed, 0.0);
      }
      continue;
    }
    // Breadth-first search over links joined by draining flows. It stops early once every link that carries a
    // flow has been found: in an all-to-all the component is the whole network after a couple of links.
    comp_links_.clear();
    visit_[seed] = visit_counter_;
    comp_links_.push_back(seed);
    size_t found_live = 1;
    ++fill_counter_;  // also marks flows already expanded by this search
    for (size_t k = 0; k < comp_links_.size() && found_live < live_links_; ++k) {
      for (FlowId f : on_link_[comp_links_[k]]) {
        if (state_[f] != kDraining || mark_[f] == fill_counter_) continue;
        mark_[f] = fill_counter_;
        const LinkId* r = route_[f];
        for (int h = 0; h < hops_[f]; ++h) {
          LinkId l = r[h];
          if (visit_[l] != visit_counter_) {
            visit_[l] = visit_counter_;
            comp_links_.push_back(l);
            ++found_live;
          }
        }
      }
    }
    solve_component(comp_links_);
  }
  for (LinkId l : dirty_) dirty_flag_[l] = 0;
  dirty_.clear();
}

double Network::unfrozen_weight(LinkId l) const {
  double sum = 0;
  const FlowId* seg = on_link_[l].data();
  for (uint32_t k = seg_begin_[l], e = seg_end_[l]; k < e; ++k) {
    if (mark_[seg[k]] != fill_counter_) sum += weight_[seg[k]];
  }
  return sum;
}

void Network::solve_component(std::span<const LinkId> links) {
  ++stats_.components;
  // Pass 1: drop finished flows from the lists, reset capacities, find the classes present.
  uint64_t classes = 0;
  bool sorted = true;
  for (LinkId l : links) {
    auto& v = on_link_[l];
    size_t w = 0;
    int prev = 0;
    for (FlowId f : v) {
      if (state_[f] != kDraining) continue;
      v[w++] = f;
      classes |= uint64_t{1} << cls_[f];
      sorted = sorted && cls_[f] >= prev;
      prev = cls_[f];
    }
    v.resize(w);
    cap_left_[l] = cap_[l];
    seg_begin_[l] = 0;
  }
  const bool one_class = (classes & (classes - 1)) == 0;
  if (!one_class && !sorted) {
    // Keep each link's list grouped by class (stable, so the order within a class is the arrival order): each class
    // then fills over its own contiguous segment instead of skipping the other classes' flows.
    for (LinkId l : links) {
      auto& v = on_link_[l];
      if (std::is_sorted(v.begin(), v.end(), [&](FlowId a, FlowId b) { return cls_[a] < cls_[b]; })) continue;
      class_scratch_.clear();
      for (uint64_t m = classes; m; m &= m - 1) {
        const int c = std::countr_zero(m);
        for (FlowId f : v) {
          if (cls_[f] == c) class_scratch_.push_back(f);
        }
      }
      std::copy(class_scratch_.begin(), class_scratch_.end(), v.begin());
    }
  }
  ++fill_counter_;
  alloc_.clear();
  while (classes) {
    const int c = std::countr_zero(classes);
    classes &= classes - 1;
    // This class's segment of every list, its weight and flow count.
    for (LinkId l : links) {
      const auto& v = on_link_[l];
      uint32_t b = seg_begin_[l], e = b;
      double sum = 0;
      while (e < v.size() && cls_[v[e]] == c) sum += weight_[v[e++]];
      seg_begin_[l] = b;
      seg_end_[l] = e;
      weight_left_[l] = sum;
      unfrozen_[l] = e - b;
    }
    // Progressive filling with a lazy min-heap of fair share per unit weight. A link's share only grows when flows
    // frozen elsewhere leave it (they got at most its share), so a popped entry whose share grew is pushed back.
    heap_.clear();
    for (LinkId l : links) {
      if (unfrozen_[l] > 0) heap_.emplace_back(usable(cap_left_[l], cap_[l]) / weight_left_[l], l);
    }
    std::make_heap(heap_.begin(), heap_.end(), std::greater<>());
    while (!heap_.empty()) {
      auto [key, l] = heap_.front();
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
      heap_.pop_back();
      if (unfrozen_[l] == 0) continue;
      const double share = usable(cap_left_[l], cap_[l]) / weight_left_[l];
      if (share > key) {
        heap_.emplace_back(share, l);
        std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
        continue;
      }
      const FlowId* seg = on_link_[l].data();
      for (uint32_t k = seg_begin_[l], e = seg_end_[l]; k < e; ++k) {
        const FlowId f = seg[k];
        if (mark_[f] == fill_counter_) continue;
        mark_[f] = fill_counter_;
        const double w = weight_[f];
        const double r = w * share;
        alloc_.emplace_back(f, r);
        const LinkId* route = route_[f];
        for (int h = 0; h < hops_[f]; ++h) {
          LinkId l2 = route[h];
          cap_left_[l2] -= r;
          const double before = weight_left_[l2];
          weight_left_[l2] -= w;
          if (--unfrozen_[l2] == 0) {
            weight_left_[l2] = 0;
          } else if (!(weight_left_[l2] > before * 1e-3)) {
            // Cancellation: a heavy flow left beside light ones (weights 1e9 and 1e-9), and the difference keeps
            // too few of their weight's digits (its error is about 1e-16 of `before`), or none, or went negative
            // (rates of NaN). Sum what is left exactly.
            weight_left_[l2] = unfrozen_weight(l2);
          }
        }
      }
      cap_left_[l] = 0;  // saturated by this class: nothing is left for lower classes (no rounding residue)
    }
    for (LinkId l : links) seg_begin_[l] = seg_end_[l];
  }
  // Apply the new rates. A flow whose rate is unchanged keeps its completion time (no drift, no rescheduling).
  const uint32_t epoch = ++epoch_counter_ == 0 ? ++epoch_counter_ : epoch_counter_;
  int64_t first = kNever;
  batch_scratch_.clear();
  for (auto [f, r] : alloc_) {
    if (r != rate_[f]) {
      if (rate_[f] > 0) remaining_[f] -= rate_[f] * seconds_between(last_[f], now_);
      last_[f] = now_;
      rate_[f] = r;
      finish_[f] = r > 0 ? finish_tick(now_, std::max(remaining_[f], 0.0) / r) : kNever;
      ++stats_.completions_moved;
    }
    epoch_[f] = epoch;
    const int64_t t = finish_[f];
    if (t < first) {
      first = t;
      batch_scratch_.clear();
    }
    if (t == first && t != kNever) batch_scratch_.push_back(f);
  }
  stats_.flow_allocations += alloc_.size();
  if (first != kNever) {
    const uint32_t b = take_slot(batches_, free_batches_);
    batches_[b].epoch = epoch;
    batches_[b].rep = batch_scratch_.front();
    batches_[b].flows.assign(batch_scratch_.begin(), batch_scratch_.end());
    completions_.emplace_back(first, seq_++, b);
    std::push_heap(completions_.begin(), completions_.end(), std::greater<>());
  }
#ifndef NDEBUG
  check_component(links);
#endif
  if (observer_) {
    for (LinkId l : links) {
      double sum = 0;
      for (FlowId f : on_link_[l]) sum += rate_[f];
      if (sum != observed_rate_[l]) {
        observed_rate_[l] = sum;
        observer_(Time::ps(now_), l, sum);
      }
    }
  }
}

void Network::check_component(std::span<const LinkId> links) const {
  // Capacity: the rates on a link sum to at most its capacity (relative 1e-9).
  // Work conservation: every draining flow crosses at least one saturated link (else it could go faster).
  std::vector<double> used(cap_.size(), 0.0);
  for (LinkId l : links) {
    double sum = 0;
    for (FlowId f : on_link_[l]) sum += rate_[f];
    used[l] = sum;
    assert(sum <= cap_[l] * (1 + 1e-9) && "network: link above capacity");
  }
  for (LinkId l : links) {
    for (FlowId f : on_link_[l]) {
      bool any = false;
      for (int h = 0; h < hops_[f] && !any; ++h) any = used[route_[f][h]] >= cap_[route_[f][h]] * (1 - 1e-9);
      assert(any && "network: work conservation violated (a flow has no saturated link)");
      (void)any;
    }
  }
}

double Network::rate(FlowId f) const { return f < state_.size() && state_[f] == kDraining ? rate_[f] : 0.0; }

bool Network::draining(FlowId f) const { return f < state_.size() && state_[f] == kDraining; }

double Network::remaining_bytes(FlowId f) const {
  if (f >= state_.size()) return 0;
  if (state_[f] == kWaiting) return bytes_[f];
  if (state_[f] != kDraining) return 0;
  return std::max(0.0, remaining_[f] - rate_[f] * seconds_between(last_[f], engine_.now().ticks()));
}

void Network::for_each_draining_flow(
    const std::function<void(FlowId, std::span<const LinkId>, int, double, double)>& fn) const {
  for (FlowId f = 0; f < state_.size(); ++f) {
    if (state_[f] != kDraining) continue;
    fn(f, std::span<const LinkId>(route_[f], hops_[f]), cls_[f], weight_[f], rate_[f]);
  }
}

}  // namespace lina::sim
