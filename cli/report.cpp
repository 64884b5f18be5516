#include "cli/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace lina::cli {

namespace {
// A sweep value as text: a string as it is, anything else as JSON.
std::string value_text(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// RFC 4180: a field holding a comma, a quote or a line break is quoted, its quotes doubled (a swept object's JSON).
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}
}  // namespace

nlohmann::json point_to_json(const PointResult& p) {
  nlohmann::json pol = nlohmann::json::array();
  for (const auto& m : p.policies) {
    pol.push_back({{"policy", m.policy}, {"name", m.name}, {"metrics", m.metrics}, {"notes", m.notes}});
  }
  return {{"index", p.index}, {"key", p.key}, {"params", p.params}, {"policies", pol}};
}

PointResult point_from_json(const nlohmann::json& j) {
  PointResult p;
  p.index = j.at("index").get<int>();
  p.key = j.at("key").get<std::string>();
  p.params = j.at("params");
  for (const auto& e : j.at("policies")) {
    PolicyMetrics m;
    m.policy = e.at("policy").get<std::string>();
    m.name = e.at("name").get<std::string>();
    m.metrics = e.at("metrics").get<std::map<std::string, double>>();
    m.notes = e.value("notes", std::map<std::string, std::string>{});
    p.policies.push_back(std::move(m));
  }
  return p;
}

void add_speedups(PointResult& p) {
  if (p.policies.empty()) return;
  // first policy's value / this policy's, for a time metric the first policy reports.
  auto ratio = [&](const char* time_key, const char* speedup_key) {
    if (!p.policies[0].metrics.count(time_key)) return;
    const double ref = p.policies[0].metrics[time_key];
    for (auto& m : p.policies) {
      const double t = m.metrics[time_key];
      m.metrics[speedup_key] = t > 0 ? ref / t : 0;
    }
  };
  ratio(p.policies[0].metrics.count("step_time_s") ? "step_time_s" : "latency_p50_s", "speedup_vs_first");
  // Inference: the tail too (the Lina paper reports p95 beside the median, and the tail all-to-all).
  ratio("latency_p95_s", "speedup_p95_vs_first");
  ratio("a2a_tail_time_s", "a2a_tail_speedup_vs_first");
}

std::vector<ReferenceRow> compare_references(const std::vector<Reference>& references,
                                             const std::vector<PointResult>& points) {
  std::vector<ReferenceRow> rows;
  for (const auto& ref : references) {
    ReferenceRow row;
    row.policy = ref.policy;
    row.metric = ref.metric;
    row.published = ref.value;
    row.source = ref.source;
    const nlohmann::json& where = ref.where;
    for (const auto& [k, v] : where.items()) {
      if (!row.where.empty()) row.where += ",";
      row.where += k.substr(k.rfind('.') + 1) + "=" + value_text(v);
    }
    if (row.where.empty()) row.where = "all";
    double sum = 0;
    for (const auto& p : points) {
      bool match = true;
      for (const auto& [k, v] : where.items()) match = match && p.params.contains(k) && p.params[k] == v;
      if (!match) continue;
      for (const auto& m : p.policies) {
        if (m.policy != row.policy) continue;
        auto it = m.metrics.find(row.metric);
        if (it == m.metrics.end()) continue;
        sum += it->second;
        ++row.points;
      }
    }
    row.simulated = row.points > 0 ? sum / row.points : 0;
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string references_table(const std::vector<ReferenceRow>& rows) {
  if (rows.empty()) return "";
  size_t ww = 5, wp = 6, wm = 6;
  for (const auto& r : rows) {
    ww = std::max(ww, r.where.size());
    wp = std::max(wp, r.policy.size());
    wm = std::max(wm, r.metric.size());
  }
  std::string out = fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>10}  {:>10}  {:>9}  {}\n", "where", ww, "policy", wp,
                                "metric", wm, "simulated", "paper", "sim/paper", "source");
  for (const auto& r : rows) {
    out +=
        fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>10.4g}  {:>10.4g}  {:>9.2f}  {}\n", r.where, ww, r.policy, wp, r.metric,
                    wm, r.simulated, r.published, r.published != 0 ? r.simulated / r.published : 0, r.source);
  }
  return out;
}

nlohmann::json references_json(const std::vector<ReferenceRow>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rows) {
    out.push_back({{"where", r.where},
                   {"policy", r.policy},
                   {"metric", r.metric},
                   {"simulated", r.simulated},
                   {"published", r.published},
                   {"points", r.points},
                   {"source", r.source}});
  }
  return out;
}

std::string point_label(const nlohmann::json& params) {
  std::string out;
  for (const auto& [k, v] : params.items()) {
    if (!out.empty()) out += ',';
    const bool named = v.is_object() && v.contains("name") && v["name"].is_string();
    out += k + "=" + value_text(named ? v["name"] : v);
  }
  return out.empty() ? "single" : out;
}

std::string results_csv(const std::vector<PointResult>& points) {
  std::set<std::string> param_names, metric_names;
  for (const auto& p : points) {
    for (const auto& [k, v] : p.params.items()) param_names.insert(k);
    for (const auto& m : p.policies) {
      for (const auto& [k, v] : m.metrics) metric_names.insert(k);
    }
  }
  std::string out = "point";
  for (const auto& n : param_names) out += "," + n;
  out += ",policy";
  for (const auto& n : metric_names) out += "," + n;
  out += "\n";
  for (const auto& p : points) {
    for (const auto& m : p.policies) {
      out += std::to_string(p.index);
      for (const auto& n : param_names) {
        out += ",";
        if (p.params.contains(n)) {
          const auto& v = p.params[n];
          out += csv_field(value_text(v));
        }
      }
      out += "," + m.policy;
      for (const auto& n : metric_names) {
        auto it = m.metrics.find(n);
        out += it == m.metrics.end() ? "," : fmt::format(",{:.9g}", it->second);
      }
      out += "\n";
    }
  }
  return out;
}

std::string results_table(const std::string& mode, const PointResult& p) {
  struct Col {
    const char* metric;
    const char* header;
    double scale;
    const char* fmt;
  };
  std::vector<Col> cols;
  if (mode == "training") {
    cols = {{"step_time_s", "step_ms", 1e3, "{:.2f}"},
            {"fwd_moe_time_s", "fwd_moe_ms", 1e3, "{:.2f}"},
            {"bwd_moe_time_s", "bwd_moe_ms", 1e3, "{:.2f}"},
            {"a2a_fwd_time_s", "a2a_fwd_ms", 1e3, "{:.2f}"},
            {"a2a_bwd_time_s", "a2a_bwd_ms", 1e3, "{:.2f}"},
            {"allreduce_time_s", "allreduce_ms", 1e3, "{:.2f}"},
            {"exposed_comm_s", "exposed_ms", 1e3, "{:.2f}"},
            {"compute_util", "compute_util", 1, "{:.3f}"},
            {"mfu", "mfu", 1, "{:.3f}"},
            {"pipeline_efficiency", "pipe_eff", 1, "{:.3f}"},
            {"experts_per_gpu", "experts/gpu", 1, "{:.0f}"},
            {"speedup_vs_first", "speedup", 1, "{:.2f}x"}};
  } else {
    cols = {{"latency_p50_s", "p50_ms", 1e3, "{:.2f}"},    {"latency_p95_s", "p95_ms", 1e3, "{:.2f}"},
            {"latency_p99_s", "p99_ms", 1e3, "{:.2f}"},    {"a2a_tail_time_s", "a2a_tail_ms", 1e3, "{:.2f}"},
            {"estimate_accuracy", "est_acc", 1, "{:.3f}"}, {"phase2_rate", "phase2", 1, "{:.3f}"},
            {"speedup_vs_first", "speedup", 1, "{:.2f}x"}, {"speedup_p95_vs_first", "speedup_p95", 1, "{:.2f}x"}};
  }
  // Columns of metrics that only some runs have: weight loads where experts are offloaded, the cost where the
  // cluster has a price (cluster.price_usd_per_gpu_hour).
  auto any_has = [&](const char* metric) {
    return std::any_of(p.policies.begin(), p.policies.end(),
                       [&](const auto& m) { return m.metrics.count(metric) > 0; });
  };
  if (any_has("host_load_time_s")) cols.push_back({"host_load_time_s", "host_load_ms", 1e3, "{:.2f}"});
  if (any_has("usd_per_million_tokens")) cols.push_back({"usd_per_million_tokens", "usd/Mtoken", 1, "{:.3f}"});
  size_t wp = 6;
  for (const auto& m : p.policies) wp = std::max(wp, m.policy.size());
  std::string out = fmt::format("{:<{}}", "policy", wp);
  for (const auto& c : cols) out += fmt::format("  {:>12}", c.header);
  out += "\n";
  for (const auto& m : p.policies) {
    out += fmt::format("{:<{}}", m.policy, wp);
    for (const auto& c : cols) {
      auto it = m.metrics.find(c.metric);
      std::string v = it == m.metrics.end() ? "-" : fmt::format(fmt::runtime(c.fmt), it->second * c.scale);
      out += fmt::format("  {:>12}", v);
    }
    out += "\n";
  }
  return out;
}

}  // namespace lina::cli
