#include "sim/engine.hpp"

#include <cassert>
#include <stdexcept>

#include "sim/slots.hpp"

namespace lina::sim {

Engine::EventId Engine::schedule_at(Time t, Action action) {
  assert(t >= now_ && "event scheduled in the past");
  if (t < now_) throw std::logic_error("lina engine: event scheduled in the past");
  // The clock ends at kLimitTicks (sched/time.hpp): an input with absurdly slow links or GPUs gets there.
  if (t.ticks() >= Time::kLimitTicks) throw TimeRangeError(t.seconds());
  const uint32_t slot = take_slot(slots_, free_slots_);
  uint64_t seq = next_seq_++;
  slots_[slot].seq = seq;
  slots_[slot].action = std::move(action);
  heap_.push(Entry{t, seq, slot});
  ++live_;
  last_ = EventId{seq, slot};
  return last_;
}

void Engine::cancel(EventId id) {
  if (!id.valid() || id.slot >= slots_.size()) return;
  Slot& s = slots_[id.slot];
  if (s.seq != id.seq) return;  // already ran or cancelled (the slot may hold a newer event)
  s.seq = UINT64_MAX;
  s.action = nullptr;
  free_slots_.push_back(id.slot);
  --live_;
}

bool Engine::pop_next(Time limit) {
  while (!heap_.empty()) {
    Entry top = heap_.top();
    if (top.time > limit) return false;
    heap_.pop();
    Slot& s = slots_[top.slot];
    if (s.seq != top.seq) continue;  // cancelled; its slot was already freed
    Action action = std::move(s.action);
    s.seq = UINT64_MAX;
    s.action = nullptr;
    free_slots_.push_back(top.slot);
    --live_;
    now_ = top.time;
    ++executed_;
    action();
    return true;
  }
  return false;
}

uint64_t Engine::run() {
  uint64_t before = executed_;
  while (pop_next(Time::max())) {
  }
  return executed_ - before;
}

uint64_t Engine::run_until(Time t) {
  uint64_t before = executed_;
  while (pop_next(t)) {
  }
  if (t > now_) now_ = t;
  return executed_ - before;
}

}  // namespace lina::sim
