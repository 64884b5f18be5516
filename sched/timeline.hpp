// What an executor observed: when each task ran, on which rank and stream (DESIGN.md 1: the sim and hw executors
// fill the same Timeline, so reports, Perfetto output and plots are shared), plus link utilisation samples.
#pragma once

#include <string>
#include <vector>

#include "sched/plan.hpp"
#include "sched/time.hpp"

namespace lina {

struct TaskRecord {
  int task = -1;  // id in the Plan
  Time launch;    // when the rank launched it (comm: may precede start while waiting for the rendezvous)
  Time start;     // when it began executing (comm: when the collective started moving data)
  Time end;
};

struct LinkSample {
  Time time;
  int link = 0;
  double bytes_per_s = 0;
};

struct Timeline {
  std::vector<TaskRecord> records;  // indexed by task id; tasks that never ran have end == start == 0 and task -1
  std::vector<std::string> link_names;
  std::vector<double> link_capacity_bytes_per_s;
  std::vector<LinkSample> link_samples;  // when recorded (off by default: they can be many)
  Time makespan;
};

// Writes a Chrome/Perfetto trace-event JSON (opens in ui.perfetto.dev): one process per node, one thread per GPU
// stream, one counter track per link with its utilisation. Written atomically.
void write_chrome_trace(const Plan& plan, const Timeline& tl, int gpus_per_node, const std::string& path);

}  // namespace lina
