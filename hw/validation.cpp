#include "hw/validation.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace lina::hw {

std::string task_kind_key(const Plan& plan, int task) {
  const Task& t = plan.tasks[static_cast<size_t>(task)];
  switch (t.kind) {
    case TaskKind::kCompute:
      return std::string(op_kind_name(t.op));
    case TaskKind::kComm:
      return comm_name(plan.collectives[static_cast<size_t>(t.collective)].kind);
    case TaskKind::kHost:
      return "host";
  }
  return "?";
}

std::vector<ErrorRow> compare_by_kind(const Plan& plan, const Timeline& measured, const Timeline& predicted) {
  int last = 0;
  for (const auto& t : plan.tasks) last = std::max(last, t.step);
  std::map<std::string, ErrorRow> rows;
  for (size_t i = 0; i < plan.tasks.size(); ++i) {
    if (plan.tasks[i].step != last) continue;
    auto& row = rows[task_kind_key(plan, static_cast<int>(i))];
    ++row.tasks;
    auto dur = [&](const Timeline& tl) {
      if (i >= tl.records.size() || tl.records[i].task < 0) return 0.0;
      return (tl.records[i].end - tl.records[i].start).seconds();
    };
    row.measured_s += dur(measured);
    row.predicted_s += dur(predicted);
  }
  std::vector<ErrorRow> out;
  for (auto& [k, r] : rows) {
    r.what = k;
    out.push_back(r);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const ErrorRow& a, const ErrorRow& b) { return a.measured_s > b.measured_s; });
  return out;
}

std::vector<ErrorRow> compare_metrics(const std::map<std::string, double>& measured,
                                      const std::map<std::string, double>& predicted,
                                      const std::vector<std::string>& names) {
  std::vector<ErrorRow> out;
  for (const auto& n : names) {
    auto m = measured.find(n), p = predicted.find(n);
    if (m == measured.end() || p == predicted.end()) continue;
    ErrorRow r;
    r.what = n;
    r.measured_s = m->second;
    r.predicted_s = p->second;
    out.push_back(r);
  }
  return out;
}

std::string error_table(const std::vector<ErrorRow>& rows) {
  std::string s =
      fmt::format("{:<18} {:>6} {:>13} {:>13} {:>8}\n", "kind", "tasks", "measured ms", "predicted ms", "error");
  for (const auto& r : rows) {
    s += fmt::format("{:<18} {:>6} {:>13.3f} {:>13.3f} {:>+7.1f}%\n", r.what,
                     r.tasks > 0 ? std::to_string(r.tasks) : std::string("-"), r.measured_s * 1e3, r.predicted_s * 1e3,
                     r.rel_error() * 100);
  }
  return s;
}

}  // namespace lina::hw
