// Discrete-event engine (DESIGN.md 2.1).
//
// Events are ordered by (time, insertion sequence): two events at the same instant run in the order they were
// scheduled, so a run is a deterministic function of its inputs. Events can be cancelled (a flow's completion moves
// whenever its rate changes); a cancelled event is skipped lazily when it reaches the top of the heap, which keeps
// cancel O(1). Scheduling an event in the past is a logic error and asserts.
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

#include "sched/time.hpp"

namespace lina::sim {

class Engine {
 public:
  using Action = std::function<void()>;

  // Identifies a scheduled event for cancel(). Ids are never reused within one engine.
  struct EventId {
    uint64_t seq = UINT64_MAX;
    uint32_t slot = 0;
    bool valid() const { return seq != UINT64_MAX; }
  };

  Time now() const { return now_; }

  EventId schedule_at(Time t, Action action);
  EventId schedule_after(Time delay, Action action) { return schedule_at(now_ + delay, std::move(action)); }

  // Cancelling an event that already ran or was already cancelled is a no-op.
  void cancel(EventId id);

  // Runs events until none is left. Returns the number of events executed.
  uint64_t run();
  // Runs every event with time <= t, then sets now() to t (if t is later). Returns events executed.
  uint64_t run_until(Time t);

  // The id of the most recently scheduled event, valid or not: a caller that finds its own event there knows that
  // nothing was scheduled after it, so work added to that event runs exactly when a new event would have.
  EventId last_scheduled() const { return last_; }
  bool empty() const { return live_ == 0; }
  uint64_t events_executed() const { return executed_; }
  size_t pending() const { return live_; }

 private:
  struct Entry {
    Time time;
    uint64_t seq;
    uint32_t slot;
    bool operator>(const Entry& o) const { return time != o.time ? time > o.time : seq > o.seq; }
  };
  // A pending action lives in a slot; slots are recycled through a free list so memory stays proportional to the
  // number of pending events, not to the number ever scheduled. A slot's seq tells whether an id still owns it.
  struct Slot {
    uint64_t seq = UINT64_MAX;
    Action action;
  };
  bool pop_next(Time limit);

  Time now_ = Time::zero();
  uint64_t next_seq_ = 0;
  uint64_t executed_ = 0;
  size_t live_ = 0;
  EventId last_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
};

}  // namespace lina::sim
