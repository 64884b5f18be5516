// Validation (DESIGN.md 7, 8.4): measured against predicted time per task kind and end to end, from two Timelines
// of the same Plan (one from the GPUs, one from the simulator with the calibration).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "sched/plan.hpp"
#include "sched/timeline.hpp"

namespace lina::hw {

// The kind a task is compared under: the operator kind of compute ("gemm", "attention_proj", ...), the collective
// kind of communication ("alltoall", "allreduce", ...), "host" for host work.
std::string task_kind_key(const Plan& plan, int task);

struct ErrorRow {
  std::string what;  // a task kind, or a metric name for end-to-end rows
  int tasks = 0;     // tasks summed (0 for metrics)
  double measured_s = 0, predicted_s = 0;
  double rel_error() const { return measured_s > 0 ? (predicted_s - measured_s) / measured_s : 0; }
};

// Per task kind: the summed duration (end - start) over all ranks of the tasks of the last step, measured and
// predicted, sorted by measured time (largest first).
std::vector<ErrorRow> compare_by_kind(const Plan& plan, const Timeline& measured, const Timeline& predicted);
// End-to-end rows from two metric maps (step_time_s, a2a_time_s, ...): the metrics present in both, in the order
// given.
std::vector<ErrorRow> compare_metrics(const std::map<std::string, double>& measured,
                                      const std::map<std::string, double>& predicted,
                                      const std::vector<std::string>& names);

// "kind  tasks  measured  predicted  error" with times in ms and the error in percent, signed (positive: the
// simulator predicts longer than measured).
std::string error_table(const std::vector<ErrorRow>& rows);

}  // namespace lina::hw
