#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "sim/engine.hpp"

namespace lina::sim {
namespace {

// The clock ends at 2^62 ps (53 days): past it, times are an input error rather than an int64 overflow.
TEST(Engine, TimesPastTheClockAreAnInputError) {
  Engine e;
  const Time last = Time::ps(Time::kLimitTicks - 1);
  EXPECT_NO_THROW(e.schedule_at(last, [] {}));
  EXPECT_THROW(e.schedule_at(Time::ps(Time::kLimitTicks), [] {}), TimeRangeError);
  EXPECT_EQ(e.run(), 1u);
  EXPECT_EQ(e.now(), last);
  EXPECT_THROW(e.schedule_after(Time::ps(1), [] {}), InputError);
  const double limit_s = static_cast<double>(Time::kLimitTicks) / Time::kTicksPerSecond;
  EXPECT_NO_THROW(Time::from_seconds_ceil(limit_s * 0.999));
  EXPECT_THROW(Time::from_seconds_ceil(limit_s), TimeRangeError);
  EXPECT_THROW(Time::from_seconds(1e300), TimeRangeError);
  EXPECT_THROW(Time::from_seconds_ceil(std::nan("")), TimeRangeError);
  EXPECT_THROW(Time::from_seconds(-limit_s), TimeRangeError);
}

TEST(Engine, RunsEventsInTimeOrder) {
  Engine e;
  std::vector<int> order;
  e.schedule_at(Time::us(3), [&] { order.push_back(3); });
  e.schedule_at(Time::us(1), [&] { order.push_back(1); });
  e.schedule_at(Time::us(2), [&] { order.push_back(2); });
  EXPECT_EQ(e.run(), 3u);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(e.now(), Time::us(3));
}

TEST(Engine, TiesRunInInsertionOrder) {
  Engine e;
  std::vector<int> order;
  for (int i = 0; i < 100; ++i) e.schedule_at(Time::ns(5), [&order, i] { order.push_back(i); });
  e.run();
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(Engine, EventsScheduledFromEventsAtSameTimeRunAfterExistingTies) {
  Engine e;
  std::vector<int> order;
  e.schedule_at(Time::ns(1), [&] {
    order.push_back(1);
    e.schedule_after(Time::zero(), [&] { order.push_back(3); });
  });
  e.schedule_at(Time::ns(1), [&] { order.push_back(2); });
  e.run();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(Engine, CancelledEventsDoNotRun) {
  Engine e;
  int ran = 0;
  auto a = e.schedule_at(Time::us(1), [&] { ran += 1; });
  e.schedule_at(Time::us(2), [&] { ran += 10; });
  auto c = e.schedule_at(Time::us(3), [&] { ran += 100; });
  e.cancel(a);
  e.cancel(c);
  e.cancel(c);  // twice is a no-op
  EXPECT_EQ(e.pending(), 1u);
  EXPECT_EQ(e.run(), 1u);
  EXPECT_EQ(ran, 10);
  EXPECT_EQ(e.now(), Time::us(2));  // the cancelled event at 3us did not advance time
}

TEST(Engine, CancelAfterRunDoesNotCancelSlotReuse) {
  Engine e;
  int ran = 0;
  auto a = e.schedule_at(Time::us(1), [&] { ran += 1; });
  e.run();
  // The slot of `a` is reused by `b`; cancelling the stale id must not cancel `b`.
  e.schedule_at(Time::us(2), [&] { ran += 10; });
  e.cancel(a);
  e.run();
  EXPECT_EQ(ran, 11);
}

TEST(Engine, RunUntilStopsAtLimitAndAdvancesClock) {
  Engine e;
  int ran = 0;
  e.schedule_at(Time::us(1), [&] { ++ran; });
  e.schedule_at(Time::us(5), [&] { ++ran; });
  EXPECT_EQ(e.run_until(Time::us(3)), 1u);
  EXPECT_EQ(e.now(), Time::us(3));
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(e.run_until(Time::us(5)), 1u);  // inclusive limit
  EXPECT_EQ(ran, 2);
}

TEST(Engine, SchedulingInThePastIsAnError) {
  Engine e;
  e.run_until(Time::us(10));
#ifdef NDEBUG
  EXPECT_THROW(e.schedule_at(Time::us(9), [] {}), std::logic_error);
#else
  EXPECT_DEATH(e.schedule_at(Time::us(9), [] {}), "past");
#endif
}

TEST(Engine, ManyRandomEventsComeOutSortedAndMemoryIsRecycled) {
  Engine e;
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> t(0, 1'000'000);
  Time last = Time::zero();
  bool sorted = true;
  uint64_t count = 0;
  // Each event schedules a successor until 200k events ran: the slot pool must stay at the live count.
  std::function<void()> tick = [&] {
    if (e.now() < last) sorted = false;
    last = e.now();
    if (++count < 200'000) e.schedule_after(Time::ps(t(rng)), tick);
  };
  for (int i = 0; i < 100; ++i) e.schedule_at(Time::ps(t(rng)), tick);
  e.run();
  EXPECT_TRUE(sorted);
  EXPECT_EQ(e.events_executed(), 200'000u + 99u);
  EXPECT_TRUE(e.empty());
}

}  // namespace
}  // namespace lina::sim
