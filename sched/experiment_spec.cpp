#include "sched/experiment_spec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "sched/cluster_spec.hpp"
#include "sched/error.hpp"
#include "sched/point_spec.hpp"
#include "sched/presets.hpp"

namespace lina {
namespace {

using nlohmann::json;
using D = Dimension;
using T = ParamType;

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

bool is_index(const std::string& s) {
  return !s.empty() && s.size() < 6 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "policies.1.micro_op_size" -> "policy.micro_op_size": the declared form of a path.
std::string declared_form(const std::vector<std::string>& parts) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (is_index(parts[i])) continue;
    // "policies.N.x" is a policy option (declared as policy.x); "policies" alone is the whole list.
    bool option = parts[i] == "policies" && i + 1 < parts.size();
    std::string p = option ? "policy" : parts[i];
    if (!out.empty()) out += '.';
    out += p;
  }
  // GPU fields are declared once as gpu.*, whether the GPU sits in a cluster or stands alone.
  if (out.rfind("cluster.gpu.", 0) == 0) out = out.substr(std::string("cluster.").size());
  return out;
}

// Forgets where the object at `pointer` (and any object inside it) was read from: it was replaced.
void forget_files(ReferenceFiles* files, const std::string& pointer) {
  if (!files) return;
  std::erase_if(*files, [&](const auto& f) {
    return f.first == pointer || (f.first.size() > pointer.size() && f.first.starts_with(pointer + "/"));
  });
}

// Replaces a preset/file reference at doc[key] by its object, so that overrides can reach inside it, and records a
// file's path in `files`.
void inline_reference(json& parent, const std::string& key, const std::string& file, const std::string& pointer,
                      std::string_view folder, std::string_view what, ReferenceFiles* files) {
  if (!parent.contains(key) || parent[key].is_object()) return;
  const json ref = parent[key];
  ResolvedSpec r = resolve_spec_reference(ref, file, pointer, folder, what);
  forget_files(files, pointer);
  if (ref.is_string() && !find_preset(folder, ref.get<std::string>())) {
    if (files) (*files)[pointer] = r.origin;
    // Paths inside a file are relative to that file; once inlined, the object is read as part of the spec, so the
    // paths that exist beside the file are rewritten to name it from there.
    if (r.json.is_object()) {
      for (const char* k : {"base", "gpu", "calibration"}) {
        auto it = r.json.find(k);
        if (it == r.json.end() || !it->is_string()) continue;
        const auto name = it->get<std::string>();
        if (const auto p = resolve_relative(name, r.origin); p != std::filesystem::path(name)) *it = p.string();
      }
    }
  }
  parent[key] = std::move(r.json);
}

// The cluster, model and cluster GPU of a spec as objects (presets and files read).
void inline_references(json& doc, const std::string& file, ReferenceFiles* files) {
  inline_reference(doc, "cluster", file, "/cluster", "experiments/clusters", "cluster", files);
  inline_reference(doc, "model", file, "/model", "models", "model", files);
  if (doc.contains("cluster") && doc["cluster"].is_object() && doc["cluster"].contains("gpu")) {
    inline_reference(doc["cluster"], "gpu", file, "/cluster/gpu", "experiments/gpus", "GPU", files);
  }
}

// `message` (an InputError about the spec `file`) with the file its pointer's object was read from, if any: the most
// specific of `files` whose pointer the message names.
std::string with_reference_file(const std::string& message, const std::string& file, const ReferenceFiles& files) {
  const std::string* best = nullptr;
  const std::string* from = nullptr;
  for (const auto& [pointer, path] : files) {
    const std::string head = file + ": " + pointer;
    if (!message.starts_with(head) || message.size() == head.size()) continue;
    if (const char next = message[head.size()]; next != '/' && next != ':') continue;
    if (!best || pointer.size() > best->size()) best = &pointer, from = &path;
  }
  return best ? fmt::format("{} ({} is read from {})", message, *best, *from) : message;
}

}  // namespace

const std::vector<ParamDef>& experiment_params() {
  static const std::vector<ParamDef> t = {
      {"name", T::kString, D::kNumber, "experiment", "experiment name, used in reports", -1e308, 1e308, {}},
      {"description", T::kString, D::kNumber, "", "free text", -1e308, 1e308, {}},
      {"mode", T::kChoice, D::kNumber, nullptr, "what to simulate", -1e308, 1e308, {"training", "inference"}},
      {"cluster",
       T::kObject,
       D::kNumber,
       nullptr,
       "cluster: a preset name (experiments/clusters/), a JSON file, or an object (cluster.*)",
       -1e308,
       1e308,
       {}},
      {"model",
       T::kObject,
       D::kNumber,
       nullptr,
       "model: a preset name (models/), a JSON file, or an object (model.*)",
       -1e308,
       1e308,
       {}},
      {"workload",
       T::kObject,
       D::kNumber,
       json::object(),
       "batch, sequence, steps and routing (workload.*)",
       -1e308,
       1e308,
       {}},
      {"policies",
       T::kList,
       D::kNumber,
       nullptr,
       "policies to compare, each an object with \"name\" and its parameters (policy.*); the first is the reference "
       "for speedups",
       -1e308,
       1e308,
       {}},
      {"sweep",
       T::kObject,
       D::kNumber,
       json::object(),
       "parameter path -> list of values; points are the cartesian product, first path varying slowest",
       -1e308,
       1e308,
       {}},
      {"overrides",
       T::kObject,
       D::kNumber,
       json::object(),
       "parameter path -> value, applied after loading presets (same as --set)",
       -1e308,
       1e308,
       {}},
      {"seed",
       T::kInteger,
       D::kNumber,
       1,
       "seed of every random choice of the experiment",
       0,
       9.007199254740992e15,
       {}},
      {"output", T::kString, D::kNumber, "", "output folder (default results/<name>; -o overrides)", -1e308, 1e308, {}},
      {"reference",
       T::kList,
       D::kNumber,
       json::array(),
       "published numbers printed beside the simulated ones: [{\"where\": {sweep path: value}, \"policy\": label, "
       "\"metric\": name, \"value\": number, \"source\": text}]",
       -1e308,
       1e308,
       {}},
  };
  return t;
}

Override parse_override(const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw InputError(fmt::format("--set '{}': expected PATH=VALUE, e.g. cluster.nic.bandwidth=200Gbps", text));
  }
  Override o;
  o.path = text.substr(0, eq);
  std::string v = text.substr(eq + 1);
  o.value = json::parse(v, nullptr, /*allow_exceptions=*/false);
  if (o.value.is_discarded()) o.value = v;  // a bare word: a string such as 200Gbps or lina
  o.origin = "--set " + o.path;
  return o;
}

void apply_override(json& doc, const Override& o, const std::string& file, ReferenceFiles* files) {
  auto parts = split_path(o.path);
  std::string declared = declared_form(parts);
  std::vector<std::string> known;
  bool found = false;
  for (const auto& d : all_params()) {
    known.push_back(d.path);
    if (d.path == declared) found = true;
  }
  if (!found) {
    std::string near = nearest(declared, known);
    throw InputError(fmt::format("{}: unknown parameter '{}'{} (see 'lina params')", o.origin, o.path,
                                 near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near)));
  }
  json* node = &doc;
  std::string pointer;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& key = parts[i];
    bool last = i + 1 == parts.size();
    if (node->is_array()) {
      if (!is_index(key) || std::stoul(key) >= node->size()) {
        throw InputError(
            fmt::format("{}: index '{}' is out of range at {} ({} entries)", o.origin, key, pointer, node->size()));
      }
      pointer += "/" + key;
      node = &(*node)[std::stoul(key)];
      continue;
    }
    if (!node->is_object()) {
      throw InputError(fmt::format("{}: {} is not an object", o.origin, pointer.empty() ? "/" : pointer));
    }
    if (!last && (key == "cluster" || key == "model" || key == "gpu")) {
      std::string folder = key == "cluster" ? "experiments/clusters" : key == "model" ? "models" : "experiments/gpus";
      inline_reference(*node, key, file, pointer + "/" + key, folder, key, files);
    }
    pointer += "/" + pointer_escape(key);
    if (last) {
      forget_files(files, pointer);  // a whole reference replaced (inlined again later if it names a file)
      (*node)[key] = o.value;
    } else {
      if (!node->contains(key)) (*node)[key] = json::object();
      node = &(*node)[key];
    }
  }
}

std::string SweepPoint::key() const {
  std::string k;
  for (const auto& [path, value] : params) {
    if (!k.empty()) k += ',';
    k += fmt::format("{}={}", path, value.dump());
  }
  return k.empty() ? "single" : k;
}

std::vector<SweepPoint> ExperimentSpec::points() const {
  std::vector<SweepPoint> out(1);
  for (const auto& [path, values] : sweep) {
    std::vector<SweepPoint> next;
    for (const auto& p : out) {
      for (const auto& v : values) {
        SweepPoint q = p;
        q.params.emplace_back(path, v);
        next.push_back(std::move(q));
      }
    }
    out = std::move(next);
  }
  for (size_t i = 0; i < out.size(); ++i) out[i].index = static_cast<int>(i);
  return out;
}

json ExperimentSpec::point_document(const SweepPoint& p, ReferenceFiles* files) const {
  json doc = document;
  ReferenceFiles own;
  if (!files) files = &own;
  *files = reference_files;
  for (const auto& [path, value] : p.params) apply_override(doc, Override{path, value, "sweep " + path}, file, files);
  for (const auto& o : after_sweep) apply_override(doc, o, file, files);
  inline_references(doc, file, files);  // a swept cluster, model or GPU may be a preset name or a file
  return doc;
}

ExperimentSpec load_experiment(const std::string& path, const std::vector<Override>& cli_overrides) {
  ExperimentSpec e;
  e.file = path;
  json doc = parse_json_file(path);
  if (!doc.is_object()) throw InputError(format_location(path, "/", "expected an experiment object"));
  // Overrides first (they may change anything, the mode included), then read the top level.
  if (doc.contains("overrides")) {
    if (!doc["overrides"].is_object()) {
      throw InputError(format_location(path, "/overrides", "expected an object of path -> value"));
    }
    for (const auto& [k, v] : doc["overrides"].items()) {
      apply_override(doc, Override{k, v, "overrides " + k}, path, &e.reference_files);
    }
  }
  for (const auto& o : cli_overrides) apply_override(doc, o, path, &e.reference_files);

  SpecReader r(doc, path, "", experiment_params(), "");
  e.name = r.string("name");
  e.description = r.string("description");
  e.mode = r.choice("mode");
  r.raw("cluster");
  r.raw("model");
  r.raw("workload");
  r.raw("overrides");
  e.seed = static_cast<uint64_t>(r.integer("seed"));
  e.output = r.string("output");
  const json& refs = r.raw("reference");
  if (!refs.is_array()) r.fail("reference", "expected a list of {where, policy, metric, value, source}");
  for (size_t i = 0; i < refs.size(); ++i) {
    const json& x = refs[i];
    std::string ptr = fmt::format("/reference/{}", i);
    auto bad = [&](const std::string& what) { throw InputError(format_location(path, ptr, what)); };
    if (!x.is_object()) bad("expected an object {where, policy, metric, value, source}");
    for (const auto& [k, v] : x.items()) {
      if (k != "where" && k != "policy" && k != "metric" && k != "value" && k != "source") {
        std::string near = nearest(k, {"where", "policy", "metric", "value", "source"});
        throw InputError(format_location(
            path, ptr + "/" + pointer_escape(k),
            fmt::format("unknown field '{}'{}", k, near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near))));
      }
    }
    Reference ref;
    ref.where = x.value("where", json::object());
    auto field = [&](const char* k, const std::string& what) {
      throw InputError(format_location(path, ptr + "/" + k, what));
    };
    if (!ref.where.is_object()) field("where", "expected an object of sweep path -> value");
    if (!x.contains("policy") || !x["policy"].is_string()) field("policy", "expected a policy label (string)");
    if (!x.contains("metric") || !x["metric"].is_string()) field("metric", "expected a metric name (string)");
    if (!x.contains("value") || !x["value"].is_number()) field("value", "expected a number");
    if (x.contains("source") && !x["source"].is_string())
      field("source", "expected a string (where the number comes from)");
    ref.policy = x["policy"].get<std::string>();
    ref.metric = x["metric"].get<std::string>();
    ref.value = x["value"].get<double>();
    ref.source = x.value("source", "");
    e.references.push_back(std::move(ref));
  }
  if (e.output.empty()) e.output = "results/" + e.name;

  const json& policies = r.raw("policies");
  if (!policies.is_array() || policies.empty()) r.fail("policies", "expected a non-empty list of policy objects");
  const json& sweep = r.raw("sweep");
  if (!sweep.is_object()) r.fail("sweep", "expected an object of parameter path -> list of values");
  // nlohmann::json sorts object keys; the sweep's order matters (first path varies slowest), so read the keys'
  // order from an order-preserving parse of the same file.
  std::vector<std::string> sweep_order;
  {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    auto ordered = nlohmann::ordered_json::parse(ss.str(), nullptr, false);
    if (!ordered.is_discarded() && ordered.contains("sweep") && ordered["sweep"].is_object()) {
      for (const auto& [k, v] : ordered["sweep"].items()) sweep_order.push_back(k);
    }
  }
  for (const auto& [k, v] : sweep.items()) {
    if (std::find(sweep_order.begin(), sweep_order.end(), k) == sweep_order.end()) sweep_order.push_back(k);
  }
  for (const auto& k : sweep_order) {
    const json& v = sweep.at(k);
    std::string ptr = "/sweep/" + pointer_escape(k);
    if (!v.is_array() || v.empty()) {
      throw InputError(format_location(path, ptr, "expected a non-empty list of values"));
    }
    e.sweep.emplace_back(k, std::vector<json>(v.begin(), v.end()));
  }
  r.finish();

  // Inline the references once, so that every point starts from the same resolved objects.
  inline_references(doc, path, &e.reference_files);
  e.document = doc;
  for (size_t i = 0; i < policies.size(); ++i) {
    const json& p = policies[i];
    std::string ptr = fmt::format("/policies/{}", i);
    if (!p.is_object() || !p.contains("name") || !p["name"].is_string()) {
      throw InputError(format_location(path, ptr, "expected an object with a \"name\" string"));
    }
    PolicyConfig c;
    c.name = p["name"].get<std::string>();
    if (p.contains("label") && !p["label"].is_string()) {
      throw InputError(format_location(path, ptr + "/label", "expected a string (the name shown in tables)"));
    }
    c.label = p.value("label", c.name);
    c.params = p;
    c.pointer = ptr;
    e.policies.push_back(std::move(c));
  }
  for (size_t i = 0; i < e.references.size(); ++i) {
    const Reference& ref = e.references[i];
    for (const auto& [k, v] : ref.where.items()) {
      bool swept = std::any_of(e.sweep.begin(), e.sweep.end(), [&](const auto& s) { return s.first == k; });
      if (!swept) {
        throw InputError(format_location(path, fmt::format("/reference/{}/where/{}", i, pointer_escape(k)),
                                         fmt::format("'{}' is not a sweep path of this experiment", k)));
      }
    }
    bool known =
        std::any_of(e.policies.begin(), e.policies.end(), [&](const auto& p) { return p.label == ref.policy; });
    if (!known) {
      throw InputError(format_location(path, fmt::format("/reference/{}/policy", i),
                                       fmt::format("no policy is labelled '{}'", ref.policy)));
    }
  }
  // The command line wins over the sweep: a --set of a swept path pins it (the path leaves the sweep); one inside a
  // swept path is applied after the sweep's value at every point.
  std::map<std::string, json> pinned;
  for (const auto& o : cli_overrides) {
    if (std::erase_if(e.sweep, [&](const auto& entry) { return entry.first == o.path; }) > 0) pinned[o.path] = o.value;
    const bool inside_swept = std::any_of(e.sweep.begin(), e.sweep.end(), [&](const auto& entry) {
      return o.path.size() > entry.first.size() && o.path.compare(0, entry.first.size(), entry.first) == 0 &&
             o.path[entry.first.size()] == '.';
    });
    if (inside_swept) e.after_sweep.push_back(o);
  }
  // A paper number at a pinned sweep value still applies (without that condition); one at another value describes a
  // point that no longer runs.
  std::vector<Reference> kept;
  for (Reference& ref : e.references) {
    bool applies = true;
    for (const auto& [k, v] : pinned) {
      if (!ref.where.contains(k)) continue;
      applies = applies && ref.where[k] == v;
      ref.where.erase(k);
    }
    if (applies) kept.push_back(std::move(ref));
  }
  e.references = std::move(kept);
  // Validate every point before anything runs.
  for (const auto& point : e.points()) {
    ReferenceFiles files;
    const json doc = e.point_document(point, &files);
    try {
      load_point(e, doc);
    } catch (const InputError& err) {
      throw InputError(with_reference_file(err.what(), path, files));
    }
  }
  return e;
}

}  // namespace lina
