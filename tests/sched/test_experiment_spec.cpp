// Experiment specs (sched/experiment_spec.hpp): overrides into presets, --set parsing, sweeps (cartesian product,
// order and keys), per-point validation at load time, and the errors of each class naming file and JSON pointer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "sched/error.hpp"
#include "sched/experiment_spec.hpp"
#include "sched/model_spec.hpp"
#include "sched/point_spec.hpp"

namespace lina {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

class ExperimentSpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("lina_test_exp_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A small valid training experiment; `patch` is merged into it (RFC 7386 merge patch).
  std::string write_spec(const json& patch = json::object(), const std::string& name = "exp.json") {
    json j = {{"name", "t"},
              {"mode", "training"},
              {"cluster", "lina-testbed"},
              {"model", {{"base", "transformer-xl"}, {"layers", 2}}},
              {"workload", {{"batch_size", 2}, {"seq_len", 64}, {"steps", 1}}},
              {"policies", json::array({{{"name", "deepspeed"}}, {{"name", "lina"}}})}};
    j.merge_patch(patch);
    return write_text(j.dump(2), name);
  }
  std::string write_text(const std::string& text, const std::string& name) {
    auto p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  std::string error_of(const std::string& path, const std::vector<Override>& o = {}) {
    try {
      load_experiment(path, o);
    } catch (const InputError& e) {
      std::string w = e.what();
      EXPECT_EQ(w.find('\n'), std::string::npos) << w;
      return w;
    }
    ADD_FAILURE() << "no InputError";
    return "";
  }
  fs::path dir_;
};

TEST(ParseOverride, ValuesAreJsonOrBareStrings) {
  Override a = parse_override("cluster.nic.bandwidth=200Gbps");
  EXPECT_EQ(a.path, "cluster.nic.bandwidth");
  EXPECT_EQ(a.value, json("200Gbps"));
  EXPECT_EQ(a.origin, "--set cluster.nic.bandwidth");
  EXPECT_EQ(parse_override("model.experts=8").value, json(8));
  EXPECT_EQ(parse_override("x=true").value, json(true));
  EXPECT_EQ(parse_override("x=[1,2]").value, json::array({1, 2}));
  EXPECT_EQ(parse_override("x=\"quoted\"").value, json("quoted"));
  EXPECT_EQ(parse_override("x=a=b").value, json("a=b"));  // only the first '=' splits
  EXPECT_THROW(parse_override("no-equals"), InputError);
  EXPECT_THROW(parse_override("=5"), InputError);
}

TEST_F(ExperimentSpecTest, DefaultsAndPolicies) {
  ExperimentSpec e = load_experiment(write_spec(), {});
  EXPECT_EQ(e.name, "t");
  EXPECT_EQ(e.mode, "training");
  EXPECT_EQ(e.seed, 1u);
  EXPECT_EQ(e.output, "results/t");
  ASSERT_EQ(e.policies.size(), 2u);
  EXPECT_EQ(e.policies[1].name, "lina");
  EXPECT_EQ(e.policies[1].pointer, "/policies/1");
  // The cluster preset and its GPU preset are inlined into the document.
  EXPECT_TRUE(e.document["cluster"].is_object());
  EXPECT_TRUE(e.document["cluster"]["gpu"].is_object());
  EXPECT_EQ(e.document["cluster"]["nodes"], 4);
  auto pts = e.points();
  ASSERT_EQ(pts.size(), 1u);
  EXPECT_EQ(pts[0].key(), "single");
}

TEST_F(ExperimentSpecTest, SetOverridesReachIntoPresets) {
  // "cluster": "lina-testbed" is a preset name; the override must resolve it and change one field only.
  std::string f = write_spec();
  ExperimentSpec e = load_experiment(f, {parse_override("cluster.nic.bandwidth=200Gbps")});
  PointSpec p = load_point(e, e.point_document(e.points()[0]));
  EXPECT_DOUBLE_EQ(p.cluster.nic.bytes_per_s, 25e9);  // 200e9 bits/s / 8
  EXPECT_EQ(p.cluster.nodes, 4);                      // the rest of the preset is kept
  EXPECT_EQ(p.cluster.nic_per, ClusterSpec::NicPer::kNode);
  // Without the override: the preset's 100 Gb/s.
  ExperimentSpec e0 = load_experiment(f, {});
  EXPECT_DOUBLE_EQ(load_point(e0, e0.point_document(e0.points()[0])).cluster.nic.bytes_per_s, 12.5e9);
}

// "cluster.gpu.memory" reaches into the GPU preset named by the cluster preset (GPU fields are declared as gpu.*).
TEST_F(ExperimentSpecTest, OverrideIntoGpuPresetInsideClusterPreset) {
  ExperimentSpec e = load_experiment(write_spec(), {parse_override("cluster.gpu.memory=80GB")});
  PointSpec p = load_point(e, e.point_document(e.points()[0]));
  EXPECT_DOUBLE_EQ(p.cluster.gpu.memory_bytes, 80e9);
  EXPECT_DOUBLE_EQ(p.cluster.gpu.peak_fp16_flops, 312e12);  // rest of A100-40GB kept
}

TEST_F(ExperimentSpecTest, WholePolicyListOverride) {
  // --set policies=[...] replaces the list (declared as "policies"), unlike policies.N.x, a policy option.
  ExperimentSpec e = load_experiment(write_spec(), {parse_override(R"(policies=[{"name": "tutel"}])")});
  ASSERT_EQ(e.policies.size(), 1u);
  EXPECT_EQ(e.policies[0].name, "tutel");
}

TEST_F(ExperimentSpecTest, PolicyIndexOverride) {
  ExperimentSpec e = load_experiment(write_spec(), {parse_override("policies.1.micro_op_size=10MB")});
  PointSpec p = load_point(e, e.point_document(e.points()[0]));
  EXPECT_DOUBLE_EQ(p.policies[1].micro_op_bytes, 10e6);
  EXPECT_DOUBLE_EQ(p.policies[0].bucket_bytes, 25e6);  // untouched
}

TEST_F(ExperimentSpecTest, SpecOverridesThenCommandLineOverrides) {
  // The spec's "overrides" apply first, --set after: --set wins.
  std::string f = write_spec({{"overrides", {{"cluster.nic.bandwidth", "400Gbps"}, {"workload.steps", 3}}}});
  ExperimentSpec e = load_experiment(f, {});
  PointSpec p = load_point(e, e.point_document(e.points()[0]));
  EXPECT_DOUBLE_EQ(p.cluster.nic.bytes_per_s, 50e9);
  EXPECT_EQ(p.workload.steps, 3);
  ExperimentSpec e2 = load_experiment(f, {parse_override("cluster.nic.bandwidth=800Gbps")});
  EXPECT_DOUBLE_EQ(load_point(e2, e2.point_document(e2.points()[0])).cluster.nic.bytes_per_s, 100e9);
}

TEST_F(ExperimentSpecTest, ModelOverrideOnBaseForm) {
  ExperimentSpec e = load_experiment(write_spec(), {parse_override("model.experts=4")});
  ModelSpec m = load_model(e.document["model"], e.file, "/model");
  EXPECT_EQ(m.experts, 4);
  EXPECT_EQ(m.layers, 2);
  EXPECT_EQ(m.hidden, 512);
}

TEST_F(ExperimentSpecTest, UnknownOverridePathSuggests) {
  std::string e = error_of(write_spec(), {parse_override("cluster.nic.bandwdth=1Gbps")});
  EXPECT_EQ(e,
            "--set cluster.nic.bandwdth: unknown parameter 'cluster.nic.bandwdth' (did you mean "
            "'cluster.nic.bandwidth'?) (see 'lina params')");
  e = error_of(write_spec(), {parse_override("policies.0.micro_op_sise=1MB")});
  EXPECT_TRUE(e.find("(did you mean 'policy.micro_op_size'?)") != std::string::npos) << e;
}

TEST_F(ExperimentSpecTest, OverrideIndexOutOfRange) {
  std::string e = error_of(write_spec(), {parse_override("policies.5.micro_op_size=1MB")});
  EXPECT_EQ(e, "--set policies.5.micro_op_size: index '5' is out of range at /policies (2 entries)");
}

TEST_F(ExperimentSpecTest, OverrideValueIsValidated) {
  std::string e = error_of(write_spec(), {parse_override("cluster.nic.bandwidth=fast")});
  EXPECT_TRUE(e.starts_with(dir_.string())) << e;
  EXPECT_NE(e.find("/cluster/nic/bandwidth: expected a bandwidth such as"), std::string::npos) << e;
}

TEST_F(ExperimentSpecTest, SweepIsCartesianProductFirstPathSlowest) {
  // Keys chosen so that alphabetical order equals spec order (see the DISABLED_ test below for the other case).
  std::string f = write_spec(
      {{"sweep",
        {{"cluster.nic.bandwidth", {"100Gbps", "200Gbps"}}, {"policies.1.micro_op_size", {"10MB", "20MB", "30MB"}}}}});
  ExperimentSpec e = load_experiment(f, {});
  auto pts = e.points();
  ASSERT_EQ(pts.size(), 6u);  // 2 x 3
  const char* bw[] = {"100Gbps", "100Gbps", "100Gbps", "200Gbps", "200Gbps", "200Gbps"};
  const char* mo[] = {"10MB", "20MB", "30MB", "10MB", "20MB", "30MB"};
  for (size_t i = 0; i < 6; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(pts[i].index, static_cast<int>(i));
    ASSERT_EQ(pts[i].params.size(), 2u);
    EXPECT_EQ(pts[i].params[0].first, "cluster.nic.bandwidth");
    EXPECT_EQ(pts[i].params[0].second, json(bw[i]));
    EXPECT_EQ(pts[i].params[1].first, "policies.1.micro_op_size");
    EXPECT_EQ(pts[i].params[1].second, json(mo[i]));
    PointSpec p = load_point(e, e.point_document(pts[i]));
    EXPECT_DOUBLE_EQ(p.cluster.nic.bytes_per_s, (i < 3 ? 100e9 : 200e9) / 8);
    EXPECT_DOUBLE_EQ(p.policies[1].micro_op_bytes, 10e6 * static_cast<double>(i % 3 + 1));
  }
  EXPECT_EQ(pts[4].key(), "cluster.nic.bandwidth=\"200Gbps\",policies.1.micro_op_size=\"20MB\"");
  // The base document is untouched by point_document.
  EXPECT_EQ(e.document["cluster"]["nic"]["bandwidth"], "100Gbps");
}

// Sweep paths keep the spec's order (first path varying slowest), although nlohmann::json objects sort their keys.
// --set has the last word over the sweep: setting a swept path pins it (one point at the set value); setting a path
// inside a swept object applies at every point after the sweep's value.
TEST_F(ExperimentSpecTest, SetWinsOverTheSweep) {
  std::string f = write_spec(
      {{"sweep", {{"workload.batch_size", {2, 4, 8}}, {"cluster", {"lina-testbed", "lina-testbed-nvlink"}}}}});
  ExperimentSpec all = load_experiment(f, {});
  EXPECT_EQ(all.points().size(), 6u);

  ExperimentSpec pinned = load_experiment(f, {parse_override("workload.batch_size=3")});
  auto points = pinned.points();
  ASSERT_EQ(points.size(), 2u);  // only the cluster is swept now
  for (const auto& p : points) {
    ASSERT_EQ(p.params.size(), 1u);
    EXPECT_EQ(p.params[0].first, "cluster");
    EXPECT_EQ(pinned.point_document(p)["workload"]["batch_size"], 3);
  }

  ExperimentSpec inside = load_experiment(f, {parse_override("cluster.nodes=2")});
  ASSERT_EQ(inside.points().size(), 6u);
  for (const auto& p : inside.points()) {
    json doc = inside.point_document(p);
    EXPECT_EQ(doc["cluster"]["nodes"], 2) << p.key();  // not the preset's 4, whichever preset the point swept in
  }
  // The first and last points sweep different presets (the written spec's keys are sorted: cluster varies slowest).
  EXPECT_NE(inside.point_document(inside.points().front())["cluster"]["description"],
            inside.point_document(inside.points().back())["cluster"]["description"]);
}

// A paper number tied to a sweep value survives pinning that path to the same value (its condition dropped) and
// disappears when the path is pinned elsewhere (its point no longer runs).
TEST_F(ExperimentSpecTest, PinningASweptPathKeepsTheMatchingReferences) {
  std::string f = write_spec(
      {{"sweep", {{"workload.batch_size", {2, 4}}}},
       {"reference",
        {{{"where", {{"workload.batch_size", 4}}}, {"policy", "lina"}, {"metric", "step_time_s"}, {"value", 1.0}},
         {{"where", json::object()}, {"policy", "lina"}, {"metric", "speedup_vs_first"}, {"value", 1.5}}}}});
  EXPECT_EQ(load_experiment(f, {}).references.size(), 2u);
  ExperimentSpec at4 = load_experiment(f, {parse_override("workload.batch_size=4")});
  ASSERT_EQ(at4.references.size(), 2u);
  EXPECT_TRUE(at4.references[0].where.empty());
  ExperimentSpec at2 = load_experiment(f, {parse_override("workload.batch_size=2")});
  ASSERT_EQ(at2.references.size(), 1u);
  EXPECT_EQ(at2.references[0].metric, "speedup_vs_first");
}

// A sweep may name cluster and model presets; each point reads its own (this failed with "expected an object" when
// nothing else in the point reached inside the preset).
TEST_F(ExperimentSpecTest, SweepOverPresetNames) {
  ExperimentSpec e = load_experiment(
      write_spec({{"sweep", {{"cluster", {"lina-testbed", "dgx-h100"}}, {"model", {"gpt2", "transformer-xl"}}}}}), {});
  auto points = e.points();
  ASSERT_EQ(points.size(), 4u);
  PointSpec first = load_point(e, e.point_document(points.front()));  // lina-testbed, gpt2
  PointSpec last = load_point(e, e.point_document(points.back()));    // dgx-h100, transformer-xl
  EXPECT_EQ(first.cluster.gpus_per_node, 4);
  EXPECT_EQ(last.cluster.gpus_per_node, 8);
  EXPECT_EQ(load_model(first.model_json, e.file, "/model").layers, 12);  // GPT-2
  EXPECT_EQ(load_model(last.model_json, e.file, "/model").layers, 24);   // Transformer-XL
}

// A cluster on a base preset: the fields given replace the base's, an object field (nic) is merged field by field,
// and --set reaches into it like into a preset. Sweeping such objects compares clusters that differ in one respect
// (here the price and the NIC).
TEST_F(ExperimentSpecTest, SweepOverClustersOnABasePreset) {
  json cheap = {
      {"base", "dgx-h100"}, {"name", "cheap"}, {"price_usd_per_gpu_hour", 2}, {"nic", {{"bandwidth", "100Gbps"}}}};
  json fast = {{"base", "dgx-h100"}, {"price_usd_per_gpu_hour", 3}};
  ExperimentSpec e =
      load_experiment(write_spec({{"sweep", {{"cluster", {cheap, fast}}}}}), {parse_override("cluster.nodes=2")});
  auto points = e.points();
  ASSERT_EQ(points.size(), 2u);
  PointSpec a = load_point(e, e.point_document(points[0]));
  PointSpec b = load_point(e, e.point_document(points[1]));
  EXPECT_EQ(a.cluster.gpus_per_node, 8);  // from the base
  EXPECT_EQ(a.cluster.nodes, 2);          // --set
  EXPECT_EQ(b.cluster.nodes, 2);
  EXPECT_DOUBLE_EQ(a.cluster.nic.bytes_per_s, 100e9 / 8);
  EXPECT_DOUBLE_EQ(b.cluster.nic.bytes_per_s, 400e9 / 8);
  EXPECT_EQ(a.cluster.nic_per, ClusterSpec::NicPer::kGpu);     // the base NIC's other fields stay
  EXPECT_EQ(a.cluster.nic.latency, Time::from_seconds(2e-6));  // (dgx-h100: 2 us)
  EXPECT_DOUBLE_EQ(a.cluster.price_usd_per_gpu_hour, 2);
  EXPECT_DOUBLE_EQ(b.cluster.price_usd_per_gpu_hour, 3);
  EXPECT_EQ(a.cluster.gpu.name, "H100-SXM");
  EXPECT_EQ(a.cluster.name, "cheap");  // a name for reports
}

TEST_F(ExperimentSpecTest, ClusterBaseErrorsNameTheField) {
  EXPECT_NE(error_of(write_spec({{"cluster", {{"base", 3}}}})).find("/cluster/base: expected a cluster preset name"),
            std::string::npos);
  EXPECT_NE(error_of(write_spec({{"cluster", {{"base", "dgx-h10"}}}})).find("did you mean 'dgx-h100'"),
            std::string::npos);
  EXPECT_NE(error_of(write_spec({{"cluster", {{"base", "dgx-h100"}, {"nic", {{"bandwith", "1Gbps"}}}}}}))
                .find("/cluster/nic/bandwith"),
            std::string::npos);
}

TEST_F(ExperimentSpecTest, SweepKeepsSpecOrderOfPaths) {
  std::string f = write_text(R"({"name": "t", "mode": "training", "cluster": "lina-testbed",
    "model": {"base": "transformer-xl", "layers": 2}, "policies": [{"name": "deepspeed"}],
    "sweep": {"model.experts": [4, 8], "cluster.nic.bandwidth": ["100Gbps", "200Gbps"]}})",
                             "order.json");
  ExperimentSpec e = load_experiment(f, {});
  ASSERT_EQ(e.sweep.size(), 2u);
  EXPECT_EQ(e.sweep[0].first, "model.experts");
  auto pts = e.points();
  ASSERT_EQ(pts.size(), 4u);
  EXPECT_EQ(pts[1].key(), "model.experts=4,cluster.nic.bandwidth=\"200Gbps\"");
}

TEST_F(ExperimentSpecTest, PointValidationFailsAtLoadTime) {
  // The second value of the sweep is bad: load_experiment must reject the spec before anything runs.
  std::string f = write_spec({{"sweep", {{"cluster.nic.bandwidth", {"100Gbps", "fastest"}}}}});
  std::string e = error_of(f);
  EXPECT_TRUE(e.starts_with(f + ": /cluster/nic/bandwidth: expected a bandwidth")) << e;
  f = write_spec({{"sweep", {{"policies.0.bucket_size", {"25MB", "0MB"}}}}}, "b.json");
  e = error_of(f);
  EXPECT_TRUE(e.starts_with(f + ": /policies/0/bucket_size: value 0 bytes is out of range")) << e;
  // The model too: a bad second point must not let the first run.
  f = write_spec({{"sweep", {{"model.experts", {16, -3}}}}}, "m.json");
  e = error_of(f);
  EXPECT_TRUE(e.starts_with(f + ": /model/experts: value -3 is out of range")) << e;
}

TEST_F(ExperimentSpecTest, ErrorClassesNameFileAndPointer) {
  std::string f = write_spec({{"seeed", 3}});
  EXPECT_EQ(error_of(f), f + ": /seeed: unknown field 'seeed' (did you mean 'seed'?)");
  f = write_spec({{"seed", "one"}}, "type.json");
  EXPECT_EQ(error_of(f), f + ": /seed: expected an integer, got string \"one\"");
  f = write_spec({{"mode", nullptr}}, "missing.json");  // merge_patch removes "mode"
  EXPECT_TRUE(error_of(f).starts_with(f + ": /mode: missing required field 'mode'"));
  f = write_spec({{"seed", -1}}, "range.json");
  EXPECT_TRUE(error_of(f).starts_with(f + ": /seed: value -1 is out of range"));
  f = write_spec({{"cluster", "lina-testbd"}}, "preset.json");
  EXPECT_TRUE(
      error_of(f).starts_with(f + ": /cluster: unknown cluster preset 'lina-testbd' (did you mean 'lina-testbed'?)"));
  f = write_spec(
      {{"cluster", {{"nodes", 1}, {"gpus_per_node", 2}, {"gpu", "A100-40GB"}, {"nic", {{"bandwidth", "100GB"}}}}}},
      "unit.json");
  EXPECT_TRUE(error_of(f).starts_with(f + ": /cluster/nic/bandwidth: expected a bandwidth such as"));
  f = write_spec({{"policies", json::array({{{"name", "lina"}, {"bucket_size", "10MB"}}})}}, "opt.json");
  EXPECT_EQ(error_of(f),
            f + ": /policies/0/bucket_size: option 'bucket_size' does not apply to training policy 'lina'");
  f = write_spec({{"policies", json::array({{{"name", "deepspeed"}, {"zero_stage", 3}}})}}, "zero.json");
  EXPECT_TRUE(error_of(f).starts_with(f + ": /policies/0/zero_stage: value 3 is out of range")) << error_of(f);
  f = write_spec({{"policies", json::array({{{"name", "deepsped"}}})}}, "pol.json");
  EXPECT_TRUE(error_of(f).starts_with(f + ": /policies/0/name: unknown value 'deepsped'"));
  EXPECT_NE(error_of(f).find("(did you mean 'deepspeed'?)"), std::string::npos);
  f = write_spec({{"policies", json::array({{{"name", "lina"}}, {{"name", "lina"}}})}}, "dup.json");
  EXPECT_TRUE(error_of(f).starts_with(f + ": /policies/1: two policies are labelled 'lina'"));
  f = write_spec({{"sweep", {{"model.experts", json::array()}}}}, "sweep.json");
  EXPECT_EQ(error_of(f), f + ": /sweep/model.experts: expected a non-empty list of values");
  // Fields of the wrong JSON type are input errors at their pointer, not a library exception.
  f = write_spec({{"policies", json::array({{{"name", "lina"}, {"label", 3}}})}}, "label.json");
  EXPECT_EQ(error_of(f), f + ": /policies/0/label: expected a string (the name shown in tables)");
  f = write_spec(
      {{"reference", json::array({{{"policy", "lina"}, {"metric", "step_time_s"}, {"value", 1}, {"source", 0}}})}},
      "source.json");
  EXPECT_EQ(error_of(f), f + ": /reference/0/source: expected a string (where the number comes from)");
  f = write_spec({{"reference", json::array({{{"policy", "lina"}, {"metric", 7}, {"value", 1}}})}}, "metric.json");
  EXPECT_EQ(error_of(f), f + ": /reference/0/metric: expected a metric name (string)");
}

TEST_F(ExperimentSpecTest, FileNotFoundAndMalformed) {
  std::string missing = (dir_ / "missing.json").string();
  EXPECT_EQ(error_of(missing), missing + ": cannot open file (does it exist?)");
  std::string f = write_text("{\"name\": \"t\",\n \"mode\" \"training\"}", "bad.json");
  // Byte 20 is the '"' of "training" where ':' was expected ({"name": "t",\n = 13 bytes, then ' "mode" ' = 7).
  EXPECT_TRUE(error_of(f).starts_with(f + ": byte ")) << error_of(f);
  f = write_spec({{"cluster", "nowhere/cluster.json"}}, "ref.json");
  EXPECT_TRUE(error_of(f).starts_with(f + ": /cluster: cluster file 'nowhere/cluster.json' not found"));
}

TEST_F(ExperimentSpecTest, ClusterFileRelativeToSpec) {
  write_text(R"({"nodes": 2, "gpus_per_node": 2, "gpu": "H200"})", "mycluster.json");
  std::string f = write_spec({{"cluster", "mycluster.json"}});
  ExperimentSpec e = load_experiment(f, {parse_override("cluster.nodes=3")});
  PointSpec p = load_point(e, e.point_document(e.points()[0]));
  EXPECT_EQ(p.cluster.nodes, 3);
  EXPECT_EQ(p.cluster.gpus_per_node, 2);
  EXPECT_EQ(p.cluster.gpu.name, "H200");
}

// Paths inside a referenced file are relative to that file: a cluster in a subfolder names the GPU file and the base
// beside it.
TEST_F(ExperimentSpecTest, PathsInsideAReferencedFileAreRelativeToIt) {
  fs::create_directories(dir_ / "hw");
  write_text(R"({"name": "G", "peak_fp32": "10TFLOPS", "peak_tf32": "100TFLOPS", "peak_fp16": "200TFLOPS",
                 "hbm_bandwidth": "1TB/s", "memory": "40GB"})",
             "hw/g.json");
  write_text(R"({"base": "base.json", "gpu": "g.json"})", "hw/c.json");
  write_text(R"({"nodes": 2, "gpus_per_node": 4, "gpu": "H100-SXM"})", "hw/base.json");
  std::string f = write_spec({{"cluster", "hw/c.json"}});
  ExperimentSpec e = load_experiment(f, {});
  PointSpec p = load_point(e, e.point_document(e.points()[0]));
  EXPECT_EQ(p.cluster.gpu.name, "G");
  EXPECT_EQ(p.cluster.gpus_per_node, 4);
  EXPECT_EQ(e.reference_files.at("/cluster"), (dir_ / "hw/c.json").string());
}

// An error about a value inside a referenced file names the spec's pointer (overrides can reach inside the file) and
// the file that object came from; not for presets.
TEST_F(ExperimentSpecTest, AnErrorInsideAReferencedFileNamesTheFile) {
  write_text(R"({"nodes": 0, "gpus_per_node": 2, "gpu": "H200"})", "bad-cluster.json");
  write_text(R"({"base": "transformer-xl", "experts": -3})", "bad-model.json");
  std::string f = write_spec({{"cluster", "bad-cluster.json"}});
  EXPECT_EQ(error_of(f), f +
                             ": /cluster/nodes: value 0 is out of range: must be in [1, 1.04858e+06] (/cluster is "
                             "read from " +
                             (dir_ / "bad-cluster.json").string() + ")");
  f = write_spec({{"model", "bad-model.json"}}, "m.json");
  EXPECT_TRUE(error_of(f).ends_with("(/model is read from " + (dir_ / "bad-model.json").string() + ")"));
  // A swept file too, and not a preset.
  f = write_spec({{"sweep", {{"cluster", {"lina-testbed", "bad-cluster.json"}}}}}, "s.json");
  EXPECT_TRUE(error_of(f).ends_with("(/cluster is read from " + (dir_ / "bad-cluster.json").string() + ")"));
  f = write_spec(json::object(), "p.json");
  EXPECT_EQ(error_of(f, {parse_override("cluster.nodes=0")}).find("read from"), std::string::npos);
}

}  // namespace
}  // namespace lina

namespace lina {
namespace {

TEST(CommittedSpecs, EveryExperimentUnderExperimentsLoads) {
  // Every committed experiment (quick start, paper reproductions, calibrations' users, real-trace replays) parses
  // and validates every sweep point, so a renamed parameter cannot leave a spec behind. Trace files are opened only
  // when a run starts, so the real-trace specs load without the traces.
  const std::filesystem::path root = std::filesystem::path(LINA_SOURCE_DIR) / "experiments";
  int loaded = 0;
  for (const char* dir : {"", "paper", "traces"}) {
    for (const auto& entry : std::filesystem::directory_iterator(root / dir)) {
      if (entry.path().extension() != ".json") continue;
      SCOPED_TRACE(entry.path().string());
      ExperimentSpec spec;
      ASSERT_NO_THROW(spec = load_experiment(entry.path().string(), {}));
      EXPECT_FALSE(spec.policies.empty());
      EXPECT_TRUE(spec.mode == "training" || spec.mode == "inference");
      ++loaded;
    }
  }
  EXPECT_GE(loaded, 15);
}

}  // namespace
}  // namespace lina

namespace lina {
namespace {

// Every spec the project ships loads, and so does every point of its sweep (cluster, model, workload, policies):
// a renamed parameter or a preset that changed shape breaks here, not in a user's hands.
TEST(ShippedSpecs, EveryPointOfEverySpecLoads) {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(LINA_SOURCE_DIR) / "experiments";
  std::vector<fs::path> specs = {root / "quickstart.json"};
  for (const char* dir : {"paper", "whatif"}) {
    for (const auto& entry : fs::directory_iterator(root / dir)) {
      if (entry.path().extension() == ".json") specs.push_back(entry.path());
    }
  }
  ASSERT_GE(specs.size(), 17u);  // the quick start, 15 paper specs, the what-ifs
  for (const fs::path& path : specs) {
    SCOPED_TRACE(path.string());
    try {
      const ExperimentSpec e = load_experiment(path.string(), {});
      EXPECT_FALSE(e.description.empty());
      for (const SweepPoint& p : e.points()) {
        const PointSpec point = load_point(e, e.point_document(p));
        const ModelSpec m = load_model(point.model_json, path.string(), "/model");
        EXPECT_GT(m.layers, 0);
        EXPECT_FALSE(point.policies.empty());
      }
    } catch (const InputError& err) {
      ADD_FAILURE() << err.what();
    }
  }
}

}  // namespace
}  // namespace lina
