// An experiment: a mode, a cluster, a model, a workload, the policies to compare, an optional sweep, a seed and an
// output folder (DESIGN.md section 6). Loading resolves preset references, applies overrides (the spec's own
// "overrides" object, then --set on the command line, then each sweep point's values) and validates everything
// before anything runs, so that a bad spec fails at once with exit code 2.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "sched/params.hpp"

namespace lina {

// One "path=value" override. The path is dotted from the experiment's root ("cluster.nic.bandwidth",
// "policies.1.micro_op_size"); the value is JSON (a bare word is taken as a string).
struct Override {
  std::string path;
  nlohmann::json value;
  std::string origin;  // "--set", "overrides", "sweep": for error messages
};

Override parse_override(const std::string& text);  // "a.b=value"

// Applies an override to a document. Cluster and model references (preset names, files) are resolved into objects
// first, so "cluster.nic.bandwidth" works on "cluster": "dgx-a100". Throws InputError on a path that does not exist
// in the schema (with the nearest known name).
// Where the cluster, model and cluster GPU of a document were read from when the spec names a file for them: JSON
// pointer ("/cluster", "/model", "/cluster/gpu") -> the file's path. Presets and inline objects are not listed. An
// error about a value inside such an object names the spec's pointer (the file is inlined so that overrides can reach
// inside it); load_experiment adds which file that object came from.
using ReferenceFiles = std::map<std::string, std::string>;

void apply_override(nlohmann::json& experiment, const Override& o, const std::string& file,
                    ReferenceFiles* files = nullptr);

struct PolicyConfig {
  std::string name;       // "deepspeed", "lina", ...
  std::string label;      // shown in tables; defaults to name
  nlohmann::json params;  // the policy's object with "name"/"label" removed, validated against policy_params()
  std::string pointer;    // "/policies/1", for errors raised later
};

struct SweepPoint {
  int index = 0;
  std::vector<std::pair<std::string, nlohmann::json>> params;  // the sweep values of this point, in spec order
  std::string key() const;  // stable text identifying the point (for resume), e.g. "model.experts=8,seed=2"
};

// A published number to print beside the simulated one: the mean of `metric` for `policy` over the sweep points
// whose values match `where` (a subset of the sweep paths; empty: all points).
struct Reference {
  nlohmann::json where = nlohmann::json::object();
  std::string policy;  // label
  std::string metric;  // e.g. "speedup_vs_first", "step_time_s", "a2a_share"
  double value = 0;
  std::string source;  // "Lina paper, Figure 10"
};

struct ExperimentSpec {
  std::string file;  // where the spec came from
  std::string name;
  std::string description;
  std::string mode;                // "training" | "inference"
  nlohmann::json document;         // the fully resolved spec (presets inlined, overrides applied), before sweep values
  ReferenceFiles reference_files;  // of `document`
  std::vector<PolicyConfig> policies;
  std::vector<std::pair<std::string, std::vector<nlohmann::json>>> sweep;  // path -> values, in spec order
  // --set values inside a swept path (sweep `cluster`, --set cluster.nodes=8): applied again at every point, after the
  // sweep's value, so that the command line has the last word. A --set of a swept path itself removes it from the
  // sweep instead (one point at the set value).
  std::vector<Override> after_sweep;
  uint64_t seed = 1;
  std::string output;
  std::vector<Reference> references;

  // The cartesian product of the sweep (one point without sweep), first path varying slowest.
  std::vector<SweepPoint> points() const;
  // The resolved document of one point (sweep values applied), validated; `files` receives where its references
  // were read from.
  nlohmann::json point_document(const SweepPoint& p, ReferenceFiles* files = nullptr) const;
};

// Loads and validates an experiment spec file with extra command-line overrides. Validates every sweep point too.
ExperimentSpec load_experiment(const std::string& path, const std::vector<Override>& cli_overrides);

const std::vector<ParamDef>& experiment_params();

}  // namespace lina
