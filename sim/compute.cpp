#include "sim/compute.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "sched/error.hpp"
#include "sched/params.hpp"
#include "sched/units.hpp"

namespace lina::sim {
namespace {

using nlohmann::json;

constexpr const char* kSchema = "lina.calibration/1";

double default_efficiency(DefaultEfficiency d, double size, double rate) {
  if (size <= 0) return d.max;
  const double half = d.max * rate * d.ramp_s;
  return d.max * size / (size + half);
}

// The calibration table used for a kind: its own, else the table of the kind it is made of.
const EfficiencyTable* table_for(const std::optional<Calibration>& cal, OpKind kind) {
  if (!cal) return nullptr;
  auto find = [&](OpKind k) -> const EfficiencyTable* {
    auto it = cal->compute.find(k);
    return it == cal->compute.end() || it->second.empty() ? nullptr : &it->second;
  };
  if (const auto* t = find(kind)) return t;
  switch (kind) {
    case OpKind::kAttentionProj:
    case OpKind::kGate:
      return find(OpKind::kGemm);
    case OpKind::kEmbedding:
      return find(OpKind::kElementwise);
    default:
      return nullptr;
  }
}

// A quantity: a JSON number in the base unit, or a string with a unit.
double read_quantity(const json& v, Dimension dim, const std::string& file, const std::string& where) {
  try {
    if (v.is_number()) return v.get<double>();
    if (v.is_string()) return parse_quantity(v.get<std::string>(), dim);
  } catch (const InputError& e) {
    throw InputError(format_location(file, where, e.what()));
  }
  throw InputError(format_location(file, where, fmt::format("expected a quantity in {}", base_unit_name(dim))));
}

void check_keys(const json& obj, const std::vector<std::string>& known, const std::string& file,
                const std::string& where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
    std::string near = nearest(it.key(), known);
    throw InputError(format_location(
        file, where + "/" + pointer_escape(it.key()),
        fmt::format("unknown field '{}'{}", it.key(), near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near))));
  }
}

EfficiencyTable read_table(const json& v, const std::string& file, const std::string& where) {
  if (!v.is_array() || v.empty()) {
    throw InputError(format_location(file, where, "expected a non-empty list of [size, efficiency] pairs"));
  }
  std::vector<std::pair<double, double>> pts;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = fmt::format("{}/{}", where, i);
    const json& p = v[i];
    if (!p.is_array() || p.size() != 2 || !p[0].is_number() || !p[1].is_number()) {
      throw InputError(format_location(file, at, "expected a pair [size, efficiency] of numbers"));
    }
    const double size = p[0].get<double>(), eff = p[1].get<double>();
    if (!(size > 0) || !std::isfinite(size)) {
      throw InputError(format_location(file, at, fmt::format("size {:g} must be positive", size)));
    }
    if (!(eff > 0 && eff <= 1)) {
      throw InputError(format_location(file, at, fmt::format("efficiency {:g} must be in (0, 1]", eff)));
    }
    if (!pts.empty() && size <= pts.back().first) {
      throw InputError(format_location(file, at, "sizes must be strictly increasing"));
    }
    pts.emplace_back(size, eff);
  }
  return EfficiencyTable(std::move(pts));
}

}  // namespace

EfficiencyTable::EfficiencyTable(std::vector<std::pair<double, double>> points) : points_(std::move(points)) {}

double EfficiencyTable::at(double size) const {
  if (points_.empty()) return 1.0;
  if (size <= points_.front().first) return points_.front().second;
  if (size >= points_.back().first) return points_.back().second;
  auto hi = std::upper_bound(points_.begin(), points_.end(), size,
                             [](double s, const std::pair<double, double>& p) { return s < p.first; });
  auto lo = hi - 1;
  const double t = (std::log(size) - std::log(lo->first)) / (std::log(hi->first) - std::log(lo->first));
  return lo->second + t * (hi->second - lo->second);
}

const std::vector<std::string>& calibration_link_classes() {
  static const std::vector<std::string> v = {"intra_node", "nic", "host_pcie"};
  return v;
}

Calibration calibration_from_json(const json& j, const std::string& file) {
  if (!j.is_object()) throw InputError(format_location(file, "/", "expected a calibration object"));
  check_keys(j, {"schema", "gpu", "source", "compute", "links", "interference"}, file, "");
  if (!j.contains("schema") || j["schema"] != kSchema) {
    throw InputError(format_location(file, "/schema", fmt::format("expected \"schema\": \"{}\"", kSchema)));
  }
  Calibration c;
  if (j.contains("source")) {
    if (!j["source"].is_string()) throw InputError(format_location(file, "/source", "expected a string"));
    c.source = j["source"].get<std::string>();
  }
  if (j.contains("gpu")) {
    const json& g = j["gpu"];
    if (g.is_string()) {
      c.gpu = g.get<std::string>();
    } else if (g.is_object()) {
      check_keys(g, {"name", "launch_overhead", "hbm_bandwidth"}, file, "/gpu");
      if (g.contains("name")) {
        if (!g["name"].is_string()) throw InputError(format_location(file, "/gpu/name", "expected a string"));
        c.gpu = g["name"].get<std::string>();
      }
      if (g.contains("launch_overhead")) {
        const double s = read_quantity(g["launch_overhead"], Dimension::kSeconds, file, "/gpu/launch_overhead");
        if (!(s >= 0) || s > 1) {
          throw InputError(format_location(file, "/gpu/launch_overhead", "must be in [0, 1] s"));
        }
        c.launch_overhead = Time::from_seconds(s);
      }
      if (g.contains("hbm_bandwidth")) {
        const double bw = read_quantity(g["hbm_bandwidth"], Dimension::kBytesPerSecond, file, "/gpu/hbm_bandwidth");
        if (!(bw > 0)) throw InputError(format_location(file, "/gpu/hbm_bandwidth", "must be positive"));
        c.hbm_bytes_per_s = bw;
      }
    } else {
      throw InputError(format_location(file, "/gpu", "expected a GPU name or an object"));
    }
  }
  if (j.contains("compute")) {
    const json& comp = j["compute"];
    if (!comp.is_object()) throw InputError(format_location(file, "/compute", "expected an object"));
    std::vector<std::string> names;
    for (OpKind k : kAllOpKinds) names.emplace_back(op_kind_name(k));
    check_keys(comp, names, file, "/compute");
    for (auto it = comp.begin(); it != comp.end(); ++it) {
      c.compute[*parse_op_kind(it.key())] = read_table(it.value(), file, "/compute/" + pointer_escape(it.key()));
    }
  }
  if (j.contains("links")) {
    const json& links = j["links"];
    if (!links.is_object()) throw InputError(format_location(file, "/links", "expected an object"));
    check_keys(links, calibration_link_classes(), file, "/links");
    for (auto it = links.begin(); it != links.end(); ++it) {
      const std::string at = "/links/" + pointer_escape(it.key());
      if (!it.value().is_object()) throw InputError(format_location(file, at, "expected an object"));
      check_keys(it.value(), {"alpha", "bandwidth"}, file, at);
      for (const char* key : {"alpha", "bandwidth"}) {
        if (!it.value().contains(key)) {
          throw InputError(format_location(file, at + "/" + key, fmt::format("missing required field '{}'", key)));
        }
      }
      LinkCalibration l;
      const double alpha = read_quantity(it.value()["alpha"], Dimension::kSeconds, file, at + "/alpha");
      if (!(alpha >= 0) || alpha > 1) throw InputError(format_location(file, at + "/alpha", "must be in [0, 1] s"));
      l.alpha = Time::from_seconds(alpha);
      l.bytes_per_s = read_quantity(it.value()["bandwidth"], Dimension::kBytesPerSecond, file, at + "/bandwidth");
      if (!(l.bytes_per_s > 0)) throw InputError(format_location(file, at + "/bandwidth", "must be positive"));
      c.links[it.key()] = l;
    }
  }
  if (j.contains("interference")) {
    const json& f = j["interference"];
    if (!f.is_number() || !(f.get<double>() >= 1) || f.get<double>() > 100) {
      throw InputError(format_location(file, "/interference",
                                       "expected a slowdown factor >= 1 (1: communication does not slow compute)"));
    }
    c.interference = f.get<double>();
  }
  return c;
}

Calibration load_calibration(const std::string& path) { return calibration_from_json(parse_json_file(path), path); }

void apply_calibration(ClusterSpec& cluster, const Calibration& cal) {
  auto apply = [&](const char* cls, LinkSpec& link) {
    auto it = cal.links.find(cls);
    if (it == cal.links.end()) return;
    link.bytes_per_s = it->second.bytes_per_s;
    link.latency = it->second.alpha;
  };
  apply("intra_node", cluster.intra);
  apply("nic", cluster.nic);
  apply("host_pcie", cluster.host_pcie);
  if (cal.launch_overhead) cluster.gpu.launch_overhead = *cal.launch_overhead;
  if (cal.hbm_bytes_per_s) cluster.gpu.hbm_bytes_per_s = *cal.hbm_bytes_per_s;
}

ComputeModel::ComputeModel(GpuSpec gpu, std::optional<Calibration> calibration, std::optional<double> interference)
    : gpu_(std::move(gpu)), cal_(std::move(calibration)) {
  if (cal_ && !cal_->gpu.empty() && !gpu_.name.empty() && gpu_.name != "custom" && cal_->gpu != gpu_.name) {
    throw InputError(
        fmt::format("calibration measured on GPU '{}' but the cluster's GPU is '{}'", cal_->gpu, gpu_.name));
  }
  launch_ = cal_ && cal_->launch_overhead ? *cal_->launch_overhead : gpu_.launch_overhead;
  hbm_bytes_per_s_ = cal_ && cal_->hbm_bytes_per_s ? *cal_->hbm_bytes_per_s : gpu_.hbm_bytes_per_s;
  interference_ = interference ? *interference : cal_ && cal_->interference ? *cal_->interference : 1.0;
  if (!(interference_ >= 1)) throw InputError(fmt::format("interference factor {:g} must be >= 1", interference_));
}

double ComputeModel::peak_flops(OpKind kind, const std::string& dtype) const {
  return uses_tensor_cores(kind) ? gpu_.peak_flops(dtype) : gpu_.peak_fp32_flops;
}

double ComputeModel::compute_efficiency(OpKind kind, double flops, const std::string& dtype) const {
  const double rate = peak_flops(kind, dtype);
  if (!uses_tensor_cores(kind)) return default_efficiency(kDefaultElementwiseCompute, flops, rate);
  if (const auto* t = table_for(cal_, kind)) return t->at(flops);
  return default_efficiency(kind == OpKind::kAttentionScores ? kDefaultAttentionScores : kDefaultGemm, flops, rate);
}

double ComputeModel::memory_efficiency(OpKind kind, double bytes) const {
  if (!uses_tensor_cores(kind)) {
    if (const auto* t = table_for(cal_, kind)) return t->at(bytes);
  }
  return default_efficiency(kDefaultMemory, bytes, hbm_bytes_per_s_);
}

double ComputeModel::busy_seconds(OpKind kind, double flops, double bytes, const std::string& dtype) const {
  const double compute_s = flops > 0 ? flops / (peak_flops(kind, dtype) * compute_efficiency(kind, flops, dtype)) : 0;
  const double memory_s = bytes > 0 ? bytes / (hbm_bytes_per_s_ * memory_efficiency(kind, bytes)) : 0;
  return std::max(compute_s, memory_s);
}

Time ComputeModel::duration(OpKind kind, double flops, double bytes, const std::string& dtype,
                            bool with_communication) const {
  const double busy = busy_seconds(kind, flops, bytes, dtype) * (with_communication ? interference_ : 1.0);
  return launch_ + Time::from_seconds_ceil(busy);
}

Time ComputeModel::task_duration(const Task& t, const std::string& dtype) const {
  if (t.kind == TaskKind::kHost) return Time::from_seconds_ceil(t.host_seconds);
  if (t.kind == TaskKind::kCompute) return duration(t.op, t.flops, t.bytes, dtype);
  return Time::zero();
}

CalibratedCluster calibrate_cluster(const ClusterSpec& cluster) {
  CalibratedCluster c{cluster, std::nullopt};
  if (!cluster.calibration.empty()) {
    c.calibration = load_calibration(cluster.calibration);
    apply_calibration(c.cluster, *c.calibration);
  }
  return c;
}

}  // namespace lina::sim
