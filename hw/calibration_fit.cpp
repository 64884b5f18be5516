#include "hw/calibration_fit.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "sched/error.hpp"
#include "sched/params.hpp"

namespace lina::hw {
namespace {

using nlohmann::json;

double num(const json& obj, const char* key, const std::string& file, const std::string& where, bool required = true,
           double fallback = 0) {
  if (!obj.contains(key)) {
    if (required) throw InputError(format_location(file, where + "/" + key, "missing required field"));
    return fallback;
  }
  const json& v = obj[key];
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0) {
    throw InputError(format_location(file, where + "/" + key, "expected a non-negative number"));
  }
  return v.get<double>();
}

std::vector<double> times(const json& obj, const std::string& file, const std::string& where) {
  if (!obj.contains("seconds") || !obj["seconds"].is_array() || obj["seconds"].empty()) {
    throw InputError(format_location(file, where + "/seconds", "expected a non-empty list of times in seconds"));
  }
  std::vector<double> v;
  for (size_t i = 0; i < obj["seconds"].size(); ++i) {
    const json& x = obj["seconds"][i];
    if (!x.is_number() || !(x.get<double>() > 0) || !std::isfinite(x.get<double>())) {
      throw InputError(format_location(file, fmt::format("{}/seconds/{}", where, i), "expected a positive time"));
    }
    v.push_back(x.get<double>());
  }
  return v;
}

std::string str(const json& obj, const char* key, const std::string& file, const std::string& where) {
  if (!obj.contains(key) || !obj[key].is_string()) {
    throw InputError(format_location(file, where + "/" + key, "expected a string"));
  }
  return obj[key].get<std::string>();
}

// Quarter-decade bins: (geometric mean size, mean efficiency), sizes strictly increasing.
json table(std::vector<std::pair<double, double>> pts) {
  std::sort(pts.begin(), pts.end());
  std::map<long, std::pair<double, std::vector<double>>> bins;  // bin -> (sum log size, efficiencies)
  for (const auto& [size, eff] : pts) {
    auto& b = bins[std::lround(std::floor(std::log10(size) * 4))];
    b.first += std::log(size);
    b.second.push_back(eff);
  }
  json out = json::array();
  for (const auto& [bin, b] : bins) {
    const double n = static_cast<double>(b.second.size());
    double e = 0;
    for (double x : b.second) e += x;
    e = std::clamp(e / n, 1e-4, 1.0);
    out.push_back({std::exp(b.first / n), e});
  }
  return out;
}

}  // namespace

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

LinkMeasurement ring_allreduce_record(int gpus, double bytes) {
  LinkMeasurement l;
  l.link_class = "intra_node";
  l.op = "allreduce";
  l.gpus = gpus;
  l.bytes = bytes;
  l.steps = 2.0 * (gpus - 1);
  l.wire_bytes = gpus > 1 ? 2.0 * (gpus - 1) / gpus * bytes : 0;
  return l;
}

LinkMeasurement alltoall_record(int gpus, double bytes) {
  LinkMeasurement l;
  l.link_class = "intra_node";
  l.op = "alltoall";
  l.gpus = gpus;
  l.bytes = bytes;
  l.steps = 1;
  l.wire_bytes = static_cast<double>(gpus - 1) / gpus * bytes;
  return l;
}

json to_json(const Measurements& m) {
  json j = {{"schema", kMeasurementsSchema},
            {"gpu", m.gpu},
            {"device_name", m.device_name},
            {"source", m.source},
            {"peak_bf16_flops", m.peak_bf16_flops},
            {"launch_overhead_s", m.launch_overhead_s},
            {"kernels", json::array()},
            {"links", json::array()}};
  for (const auto& k : m.kernels) {
    json r = {{"op", std::string(op_kind_name(k.op))}, {"flops", k.flops}, {"bytes", k.bytes}, {"seconds", k.seconds}};
    if (k.shape.m > 0) r["shape"] = {k.shape.m, k.shape.n, k.shape.k};
    j["kernels"].push_back(r);
  }
  for (const auto& l : m.links) {
    j["links"].push_back({{"class", l.link_class},
                          {"op", l.op},
                          {"gpus", l.gpus},
                          {"bytes", l.bytes},
                          {"steps", l.steps},
                          {"wire_bytes", l.wire_bytes},
                          {"seconds", l.seconds}});
  }
  if (!m.gemm_alone_s.empty()) {
    j["interference"] = {{"gemm_alone_s", m.gemm_alone_s}, {"gemm_with_comm_s", m.gemm_with_comm_s}};
  }
  return j;
}

Measurements measurements_from_json(const json& j, const std::string& file) {
  if (!j.is_object() || !j.contains("schema") || j["schema"] != kMeasurementsSchema) {
    throw InputError(format_location(file, "/schema", fmt::format("expected \"schema\": \"{}\"", kMeasurementsSchema)));
  }
  Measurements m;
  m.gpu = str(j, "gpu", file, "");
  m.device_name = j.value("device_name", "");
  m.source = j.value("source", "");
  m.peak_bf16_flops = num(j, "peak_bf16_flops", file, "");
  if (!(m.peak_bf16_flops > 0)) throw InputError(format_location(file, "/peak_bf16_flops", "must be positive"));
  m.launch_overhead_s = num(j, "launch_overhead_s", file, "");
  if (j.contains("kernels")) {
    if (!j["kernels"].is_array()) throw InputError(format_location(file, "/kernels", "expected a list"));
    for (size_t i = 0; i < j["kernels"].size(); ++i) {
      const std::string at = fmt::format("/kernels/{}", i);
      const json& r = j["kernels"][i];
      if (!r.is_object()) throw InputError(format_location(file, at, "expected an object"));
      KernelMeasurement k;
      auto op = parse_op_kind(str(r, "op", file, at));
      if (!op) throw InputError(format_location(file, at + "/op", "unknown operator kind"));
      k.op = *op;
      k.flops = num(r, "flops", file, at, false);
      k.bytes = num(r, "bytes", file, at, false);
      if (uses_tensor_cores(k.op) ? !(k.flops > 0) : !(k.bytes > 0)) {
        throw InputError(format_location(
            file, at,
            uses_tensor_cores(k.op) ? "a GEMM-like record needs flops > 0" : "a memory-bound record needs bytes > 0"));
      }
      if (r.contains("shape")) {
        const json& s = r["shape"];
        if (!s.is_array() || s.size() != 3)
          throw InputError(format_location(file, at + "/shape", "expected [m, n, k]"));
        k.shape = GemmShape{s[0].get<int64_t>(), s[1].get<int64_t>(), s[2].get<int64_t>()};
      }
      k.seconds = times(r, file, at);
      m.kernels.push_back(std::move(k));
    }
  }
  if (j.contains("links")) {
    if (!j["links"].is_array()) throw InputError(format_location(file, "/links", "expected a list"));
    for (size_t i = 0; i < j["links"].size(); ++i) {
      const std::string at = fmt::format("/links/{}", i);
      const json& r = j["links"][i];
      if (!r.is_object()) throw InputError(format_location(file, at, "expected an object"));
      LinkMeasurement l;
      l.link_class = str(r, "class", file, at);
      const auto& classes = std::vector<std::string>{"intra_node", "nic", "host_pcie"};
      if (std::find(classes.begin(), classes.end(), l.link_class) == classes.end()) {
        throw InputError(format_location(file, at + "/class", "expected intra_node, nic or host_pcie"));
      }
      l.op = str(r, "op", file, at);
      l.gpus = static_cast<int>(num(r, "gpus", file, at, false, 1));
      l.bytes = num(r, "bytes", file, at);
      l.steps = num(r, "steps", file, at);
      l.wire_bytes = num(r, "wire_bytes", file, at);
      l.seconds = times(r, file, at);
      m.links.push_back(std::move(l));
    }
  }
  if (j.contains("interference")) {
    const json& f = j["interference"];
    m.gemm_alone_s = times(json{{"seconds", f.value("gemm_alone_s", json::array())}}, file, "/interference/gemm_alone");
    m.gemm_with_comm_s =
        times(json{{"seconds", f.value("gemm_with_comm_s", json::array())}}, file, "/interference/gemm_with_comm");
  }
  return m;
}

Measurements load_measurements(const std::string& path) { return measurements_from_json(parse_json_file(path), path); }

AlphaBeta fit_alpha_beta(const std::vector<LinkMeasurement>& records) {
  // Normal equations of t = a * s + c * x (c = 1 / bandwidth).
  double ss = 0, sx = 0, xx = 0, st = 0, xt = 0;
  for (const auto& r : records) {
    const double t = median(r.seconds);
    ss += r.steps * r.steps;
    sx += r.steps * r.wire_bytes;
    xx += r.wire_bytes * r.wire_bytes;
    st += r.steps * t;
    xt += r.wire_bytes * t;
  }
  AlphaBeta ab;
  double c = 0;
  const double det = ss * xx - sx * sx;
  if (det > 1e-12 * ss * xx && ss > 0) {
    ab.alpha_s = (st * xx - xt * sx) / det;
    c = (ss * xt - sx * st) / det;
  }
  if (!(det > 1e-12 * ss * xx) || ab.alpha_s < 0) {  // degenerate or a negative latency: bandwidth alone
    ab.alpha_s = 0;
    c = xx > 0 ? xt / xx : 0;
  }
  if (!(c > 0)) {
    throw InputError(fmt::format("link records ({}) do not determine a positive bandwidth: measure at several sizes",
                                 records.empty() ? "none" : records.front().link_class));
  }
  ab.bytes_per_s = 1 / c;
  return ab;
}

json fit_calibration(const Measurements& m, const FitOptions& o) {
  json cal = {{"schema", "lina.calibration/1"}};
  json gpu = {{"name", m.gpu}, {"launch_overhead", m.launch_overhead_s}};
  const double launch = m.launch_overhead_s;
  // The kernel's own time: its median less the launch overhead, never below 1% of the median.
  auto busy = [&](const KernelMeasurement& k) {
    const double t = median(k.seconds);
    return std::max(t - launch, 0.01 * t);
  };
  double hbm = 0;
  for (const auto& k : m.kernels) {
    if (!uses_tensor_cores(k.op)) hbm = std::max(hbm, k.bytes / busy(k));
  }
  if (hbm > 0) gpu["hbm_bandwidth"] = hbm;
  cal["gpu"] = gpu;
  cal["source"] = m.source.empty() ? fmt::format("fitted from {} measurements", m.device_name) : m.source;
  std::map<OpKind, std::vector<std::pair<double, double>>> pts;
  for (const auto& k : m.kernels) {
    if (uses_tensor_cores(k.op)) {
      pts[k.op].emplace_back(k.flops, k.flops / (m.peak_bf16_flops * busy(k)));
    } else {
      pts[k.op].emplace_back(k.bytes, k.bytes / (hbm * busy(k)));
    }
  }
  json compute = json::object();
  for (const auto& [op, p] : pts) compute[std::string(op_kind_name(op))] = table(p);
  if (!compute.empty()) cal["compute"] = compute;
  std::map<std::string, std::vector<LinkMeasurement>> by_class;
  for (const auto& l : m.links) by_class[l.link_class].push_back(l);
  json links = json::object();
  for (const auto& [cls, recs] : by_class) {
    const AlphaBeta ab = fit_alpha_beta(recs);
    const double alpha =
        cls == "host_pcie" ? ab.alpha_s : std::max(0.0, ab.alpha_s - o.collective_alpha_s) / std::max(1, o.intra_hops);
    links[cls] = {{"alpha", alpha}, {"bandwidth", ab.bytes_per_s}};
  }
  if (!links.empty()) cal["links"] = links;
  if (!m.gemm_alone_s.empty() && !m.gemm_with_comm_s.empty()) {
    cal["interference"] = std::clamp(median(m.gemm_with_comm_s) / median(m.gemm_alone_s), 1.0, 100.0);
  }
  return cal;
}

}  // namespace lina::hw
