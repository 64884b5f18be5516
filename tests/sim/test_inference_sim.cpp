// Inference simulation end to end (DESIGN.md 2.6, 3.2): closed forms on balanced routing, the order of the bounds on
// skewed routing, determinism, queueing under Poisson arrivals.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "sched/cluster_spec.hpp"
#include "sched/error.hpp"
#include "sched/model_spec.hpp"
#include "sched/plan.hpp"
#include "sim/inference_sim.hpp"

namespace lina::sim {
namespace {

InferenceInput small(const std::string& policy, const std::string& routing) {
  InferenceInput in;
  in.cluster = load_cluster_preset_or_file("lina-testbed");
  in.cluster.nodes = 2;  // 8 GPUs: the all-to-all crosses the 100 Gb/s NICs
  in.model = load_model(
      nlohmann::json{{"base", "transformer-xl"}, {"layers", 4}, {"experts", 8}, {"top_k", 1}, {"capacity_factor", 0}},
      "test", "/model");
  in.workload.batch_size = 16;
  in.workload.seq_len = 128;
  in.workload.batches = 6;
  in.workload.routing.kind = routing;
  in.workload.routing.zipf_s = 1.2;
  in.workload.routing.rho = 0.5;
  in.workload.routing.profile_batches = 6;
  in.policy.name = policy;
  in.policy.path_length = 1;
  in.seed = 3;
  return in;
}

TEST(InferenceSim, BalancedRoutingMakesPlacementPoliciesEqual) {
  // Balanced routing sends every rank's tokens evenly to all experts: the oracle keeps the static placement (each
  // expert needs exactly one device, on its home) and the ideal even split moves the same bytes, so all three
  // latencies are equal, and every batch is the same (median = tail).
  auto ds = run_inference(small("deepspeed", "balanced"));
  auto oracle = run_inference(small("oracle-placement", "balanced"));
  auto ideal = run_inference(small("ideal", "balanced"));
  EXPECT_DOUBLE_EQ(ds.metrics["latency_p50_s"], ds.metrics["latency_p99_s"]);
  EXPECT_DOUBLE_EQ(ds.metrics["latency_p50_s"], oracle.metrics["latency_p50_s"]);
  EXPECT_DOUBLE_EQ(ds.metrics["latency_p50_s"], ideal.metrics["latency_p50_s"]);
  EXPECT_EQ(ds.metrics["weight_loads_per_batch"], 0);
  EXPECT_GT(ds.metrics["latency_p50_s"], 0);
}

TEST(InferenceSim, SkewOrdersTheBounds) {
  auto ds = run_inference(small("deepspeed", "zipf"));
  auto oracle = run_inference(small("oracle-placement", "zipf"));
  auto ideal = run_inference(small("ideal", "zipf"));
  auto ne = run_inference(small("lina-no-estimate", "zipf"));
  auto lina = run_inference(small("lina", "zipf"));
  // Zipf(1.2) over 8 experts puts 2.2x the mean on the hottest expert: the static placement is slower.
  EXPECT_LE(ideal.metrics["latency_p95_s"], oracle.metrics["latency_p95_s"]);
  EXPECT_LT(oracle.metrics["latency_p95_s"], ds.metrics["latency_p95_s"]);
  EXPECT_LT(oracle.metrics["a2a_tail_time_s"], ds.metrics["a2a_tail_time_s"]);
  // Scheduling after the gate costs schedule_cost (6.2 ms) per layer on the critical path: the oracle's placement
  // plus at least 4 x 6.2 ms.
  EXPECT_GE(ne.metrics["latency_p50_s"], oracle.metrics["latency_p50_s"] + 4 * 6.2e-3 - 1e-3);
  // Lina estimated layers 1..3 (path length 1); statistics are shares.
  ASSERT_TRUE(lina.metrics.count("estimate_accuracy"));
  EXPECT_GE(lina.metrics["estimate_accuracy"], 0.0);
  EXPECT_LE(lina.metrics["estimate_accuracy"], 1.0);
  EXPECT_GE(lina.metrics["phase2_rate"], 0.0);
  EXPECT_NEAR(lina.metrics["phase2_rate"], 1.0 - lina.metrics["estimate_accuracy"], 1e-12);
  EXPECT_EQ(ds.metrics["batches"], 6);
}

TEST(InferenceSim, Deterministic) {
  auto a = run_inference(small("lina", "zipf"));
  auto b = run_inference(small("lina", "zipf"));
  EXPECT_EQ(a.metrics, b.metrics);
  EXPECT_EQ(a.notes, b.notes);
}

// The hardware backend runs inference through InferenceInput::execute: every batch's plan goes to it, with the
// same scheduler object the simulator would drive, and the metrics come from the timelines it returns.
TEST(InferenceSim, ExecuteHookRunsEveryBatchWithTheScheduler) {
  InferenceInput in = small("lina", "zipf");
  int calls = 0;
  std::set<const RuntimeScheduler*> schedulers;
  in.execute = [&](const Plan& plan, RuntimeScheduler& sched) {
    ++calls;
    schedulers.insert(&sched);
    validate_plan(plan);
    // A stand-in device: every task takes 1 us, one after another, so a batch takes (tasks) us.
    Timeline tl;
    for (size_t i = 0; i < plan.tasks.size(); ++i) {
      tl.records.push_back(TaskRecord{static_cast<int>(i), Time::us(static_cast<int64_t>(i)),
                                      Time::us(static_cast<int64_t>(i)), Time::us(static_cast<int64_t>(i) + 1)});
    }
    tl.makespan = Time::us(static_cast<int64_t>(plan.tasks.size()));
    return tl;
  };
  RunResult r = run_inference(in);
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(schedulers.size(), 1u);
  EXPECT_NEAR(r.metrics.at("latency_mean_s"), r.metrics.at("service_mean_s"), 1e-12);
  EXPECT_NEAR(r.metrics.at("latency_p50_s") * 1e6, std::round(r.metrics.at("latency_p50_s") * 1e6), 1e-6);
  EXPECT_EQ(r.timeline.makespan, Time::us(static_cast<int64_t>(r.plan.tasks.size())));
}

TEST(InferenceSim, HierarchicalAllToAllIsAPolicyOption) {
  for (bool hierarchical : {true, false}) {
    InferenceInput in = small("deepspeed", "zipf");
    in.policy.hierarchical_a2a = hierarchical;
    RunResult r = run_inference(in);
    int a2a = 0;
    for (const auto& c : r.plan.collectives) {
      if (c.kind != CommKind::kAllToAll) continue;
      ++a2a;
      EXPECT_EQ(c.hierarchical, hierarchical);
    }
    EXPECT_EQ(a2a, 2 * 4);  // dispatch and combine of each of the 4 MoE layers
  }
}

TEST(InferenceSim, PoissonArrivalsQueue) {
  auto closed = run_inference(small("deepspeed", "zipf"));
  auto in = small("deepspeed", "zipf");
  in.workload.arrival = "poisson";
  in.workload.arrival_rate_per_s = 1e6;  // far above the service rate: batches wait for each other
  auto open = run_inference(in);
  EXPECT_DOUBLE_EQ(open.metrics["service_mean_s"], closed.metrics["service_mean_s"]);
  EXPECT_GT(open.metrics["latency_mean_s"], 2 * closed.metrics["latency_mean_s"]);
}

// The next batch is prepared on a second thread (InferenceInput::pipeline): the results must be those of one thread,
// to the byte.
TEST(InferenceSim, PipelineGivesTheResultsOfOneThread) {
  for (const std::string policy : {"lina", "deepspeed", "lina-no-estimate"}) {
    InferenceInput in = small(policy, "zipf");
    in.record_links = true;
    in.pipeline = false;
    const RunResult one = run_inference(in);
    in.pipeline = true;
    const RunResult two = run_inference(in);
    EXPECT_EQ(one.metrics, two.metrics) << policy;
    EXPECT_EQ(one.notes, two.notes) << policy;
    EXPECT_EQ(one.layers_csv, two.layers_csv) << policy;
    EXPECT_EQ(one.timeline.makespan, two.timeline.makespan) << policy;
    EXPECT_EQ(one.plan.tasks.size(), two.plan.tasks.size()) << policy;
  }
}

// The evaluated synthetic batches are kept for the other policies of a point (InferenceInput::share_batches): a
// policy that copies them, or that runs while another policy makes them, gets the results it gets generating them.
TEST(InferenceSim, PoliciesShareTheirEvaluatedBatchesWithoutChangingResults) {
  auto input = [](const std::string& policy, bool share) {
    InferenceInput in = small(policy, "zipf");
    in.seed = 41;  // a stream no other test keeps
    in.workload.routing.topics = 3;
    in.workload.routing.topic_per = "batch";
    in.share_batches = share;
    return in;
  };
  const RunResult lina = run_inference(input("lina", false));
  const RunResult ds = run_inference(input("deepspeed", false));
  const RunResult ne = run_inference(input("lina-no-estimate", false));
  InferenceInput first_half = input("oracle-placement", true);
  first_half.workload.batches = 3;
  run_inference(first_half);                                               // keeps batches 0-2
  EXPECT_EQ(run_inference(input("deepspeed", true)).metrics, ds.metrics);  // copies 0-2, makes and keeps 3-5
  EXPECT_EQ(run_inference(input("lina", true)).metrics, lina.metrics);     // copies them all
  // Two policies at once on a new stream: one makes each batch while the other waits for it, or copies it.
  for (uint64_t seed : {42, 43}) {
    RunResult a, b;
    auto at = [&](const std::string& policy) {
      InferenceInput in = input(policy, true);
      in.seed = seed;
      return in;
    };
    std::thread t([&] { a = run_inference(at("lina")); });
    b = run_inference(at("lina-no-estimate"));
    t.join();
    InferenceInput ref_a = at("lina"), ref_b = at("lina-no-estimate");
    ref_a.share_batches = ref_b.share_batches = false;
    EXPECT_EQ(a.metrics, run_inference(ref_a).metrics) << seed;
    EXPECT_EQ(b.metrics, run_inference(ref_b).metrics) << seed;
  }
  EXPECT_NE(ne.metrics, lina.metrics);
}

// A source whose batch `bad` has one MoE layer too many: the error reaches the caller, with or without the thread,
// after the good batches before it were prepared.
class BadBatchSource : public RoutingSource {
 public:
  BadBatchSource(int layers, int bad, int* served) : layers_(layers), bad_(bad), served_(served) {}
  bool next(BatchRouting& out) override {
    const int i = (*served_)++;
    out.resize(64, i == bad_ ? layers_ + 1 : layers_, 1, false);
    out.flags = 0;
    for (size_t k = 0; k < out.experts.size(); ++k) out.experts[k] = static_cast<uint16_t>(k % 8);
    return true;  // endless: only the error stops it
  }

 private:
  int layers_, bad_;
  int* served_;
};

TEST(InferenceSim, ABadBatchStopsThePipelineWithItsError) {
  for (bool pipeline : {false, true}) {
    InferenceInput in = small("deepspeed", "zipf");
    in.pipeline = pipeline;
    int served = 0;
    in.sources = [&] {
      RoutingSources s;
      s.eval = std::make_unique<BadBatchSource>(in.model.moe_layer_count(), 3, &served);
      return s;
    };
    try {
      run_inference(in);
      ADD_FAILURE() << "no error";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("batch 3 has 5 MoE layers, the model 4"), std::string::npos) << e.what();
    }
    EXPECT_EQ(served, 4) << pipeline;  // the producer stopped at the bad batch
  }
}

TEST(InferenceSim, DenseModelIsAnInputError) {
  auto in = small("deepspeed", "zipf");
  in.model.experts = 0;
  EXPECT_THROW(run_inference(in), InputError);
}

}  // namespace
}  // namespace lina::sim

namespace lina::sim {
namespace {

// A synthetic Zipf workload with several topics: batches of `sequences` x `seq_len` tokens.
WorkloadSpec zipf_topics(int sequences, int seq_len, int batches, double zipf_s, int topics, int profile_batches) {
  WorkloadSpec w;
  w.batch_size = sequences;
  w.seq_len = seq_len;
  w.batches = batches;
  w.routing.kind = "zipf";
  w.routing.zipf_s = zipf_s;
  w.routing.topics = topics;
  w.routing.profile_batches = profile_batches;
  return w;
}

// Every policy of a point must evaluate the same batches, whether it read the profiling batches (lina) or not
// (deepspeed, or lina finding the lookup tables already built): the evaluated batches come after the profiling
// ones in one synthetic stream, never the profiling batches themselves.
TEST(InferenceSim, EvaluatedBatchesDoNotDependOnWhetherProfilingWasRead) {
  ModelSpec m =
      load_model(nlohmann::json{{"base", "transformer-xl"}, {"layers", 4}, {"experts", 8}, {"top_k", 1}}, "", "/model");
  WorkloadSpec w = zipf_topics(2, 16, 2, 1.0, 2, 3);
  BatchRouting read_profile, skipped_profile, profile_batch;
  {
    RoutingSources s = make_routing_sources(w, m, 7);
    int n = 0;
    while (s.profile->next(profile_batch)) ++n;
    EXPECT_EQ(n, 3);
    ASSERT_TRUE(s.eval->next(read_profile));
  }
  {
    RoutingSources s = make_routing_sources(w, m, 7);
    ASSERT_TRUE(s.eval->next(skipped_profile));
  }
  EXPECT_EQ(read_profile.experts, skipped_profile.experts);
  EXPECT_NE(read_profile.experts, profile_batch.experts);  // the last profiling batch is not evaluated
  // The other order, on another stream: the evaluated batches come first without reading the profile (the stream
  // is drained and its state kept for the next policy of the point), then after reading it (that state is reused).
  BatchRouting first, second;
  {
    RoutingSources s = make_routing_sources(w, m, 8);
    ASSERT_TRUE(s.eval->next(first));
    ASSERT_TRUE(s.eval->next(first));  // the second evaluated batch
  }
  {
    RoutingSources s = make_routing_sources(w, m, 8);
    while (s.profile->next(profile_batch)) {
    }
    ASSERT_TRUE(s.eval->next(second));
    ASSERT_TRUE(s.eval->next(second));
  }
  EXPECT_EQ(first.experts, second.experts);
  EXPECT_NE(first.experts, read_profile.experts);  // another seed, another stream
}

// Topics drawn per batch keep each batch's full skew and move the hot set between batches; drawn per sequence they
// average inside every batch; drawn from a Dirichlet mixture per batch, batches range between the two. Measured on
// layer 0: the hottest expert's share of a batch (mean and spread over 40 batches), and how many distinct experts
// are the hottest.
TEST(InferenceSim, TopicsPerBatchKeepTheSkewAndMoveTheHotSet) {
  ModelSpec m =
      load_model(nlohmann::json{{"base", "transformer-xl"}, {"layers", 2}, {"experts", 8}, {"top_k", 1}}, "", "/model");
  // Zipf s = 2: one topic alone, the hottest of 8 experts draws 1 / H(8, 2) = 65% of the tokens.
  WorkloadSpec w = zipf_topics(32, 64, 40, 2.0, 4, 1);
  struct Shares {
    double mean = 0, sd = 0;
    int distinct_hottest = 0;
  };
  auto measure = [&](const std::string& per, double alpha) {
    w.routing.topic_per = per;
    w.routing.topic_alpha = alpha;
    RoutingSources s = make_routing_sources(w, m, 11);
    BatchRouting b;
    std::set<int> hottest;
    std::vector<double> shares;
    while (s.eval->next(b)) {
      std::vector<int> count(8, 0);
      for (int t = 0; t < b.tokens; ++t) ++count[b.experts[b.index(0, t)]];
      auto it = std::max_element(count.begin(), count.end());
      hottest.insert(static_cast<int>(it - count.begin()));
      shares.push_back(static_cast<double>(*it) / b.tokens);
    }
    Shares r;
    EXPECT_EQ(shares.size(), 40u);
    for (double x : shares) r.mean += x / static_cast<double>(shares.size());
    for (double x : shares) r.sd += (x - r.mean) * (x - r.mean) / static_cast<double>(shares.size());
    r.sd = std::sqrt(r.sd);
    r.distinct_hottest = static_cast<int>(hottest.size());
    return r;
  };
  const Shares per_batch = measure("batch", 1.0);
  const Shares per_sequence = measure("sequence", 1.0);
  const Shares mixture = measure("mixture", 1.0);
  EXPECT_GT(per_batch.mean, 0.55);                      // about the single topic's 65%
  EXPECT_LT(per_sequence.mean, per_batch.mean - 0.15);  // diluted by the other topics' hot sets
  EXPECT_GE(per_batch.distinct_hottest, 2);             // the hot expert moves with the batch's topic
  EXPECT_GT(mixture.mean, per_sequence.mean + 0.05);    // a batch leans towards some topics...
  EXPECT_LT(mixture.mean, per_batch.mean - 0.05);       // ...but rarely follows one alone
  EXPECT_GT(mixture.sd, 2 * per_batch.sd);              // and how much it leans varies from batch to batch
  EXPECT_GT(mixture.sd, 2 * per_sequence.sd);
  // The limits: a concentration near 0 is one topic per batch, a large one an even mix.
  EXPECT_NEAR(measure("mixture", 1e-3).mean, per_batch.mean, 0.03);
  EXPECT_NEAR(measure("mixture", 1e6).mean, per_sequence.mean, 0.03);
}

}  // namespace
}  // namespace lina::sim

namespace lina::sim {
namespace {

// The paper's inference setup (experiments/paper/inference-transformer-xl.json) shrunk to run in about a second:
// 6 MoE layers, 2k tokens per GPU, 16 experts on the 16-GPU testbed, Zipf s = 0.619 (most/least popular 5.56x),
// 4 topics drawn per batch, dense dispatch.
InferenceInput paper_setup(const std::string& policy, bool dense) {
  InferenceInput in;
  in.cluster = load_cluster_preset_or_file("lina-testbed");
  in.model = load_model(nlohmann::json{{"base", "transformer-xl"},
                                       {"layers", 6},
                                       {"experts", 16},
                                       {"top_k", 1},
                                       {"capacity_factor", 0},
                                       {"dispatch", dense ? "dense" : "sparse"}},
                        "test", "/model");
  in.workload.batch_size = 64;
  in.workload.seq_len = 512;
  in.workload.batches = 8;
  in.workload.routing.kind = "zipf";
  in.workload.routing.zipf_s = 0.619;
  in.workload.routing.rho = 0.35;
  in.workload.routing.topics = 4;
  in.workload.routing.topic_per = "batch";
  in.workload.routing.profile_batches = 24;
  in.policy.name = policy;
  in.seed = 1;
  return in;
}

TEST(InferenceSim, PaddedDenseDispatchIsWhereBalancingPays) {
  // DeepSpeed's dense dispatch pads every buffer to the hottest expert (2.9x the mean here), so a balanced
  // placement shrinks every device's all-to-all and expert GEMMs: the oracle placement gains well over the 1.2x
  // it gains with the sparse all-to-all-v, where only the hot expert's device and node are slowed.
  std::map<std::string, double> dense_p95, sparse_p95;
  for (const char* p : {"deepspeed", "oracle-placement", "ideal"}) {
    dense_p95[p] = run_inference(paper_setup(p, true)).metrics.at("latency_p95_s");
    sparse_p95[p] = run_inference(paper_setup(p, false)).metrics.at("latency_p95_s");
  }
  for (auto* m : {&dense_p95, &sparse_p95}) {
    EXPECT_LE((*m)["ideal"], (*m)["oracle-placement"]);
    EXPECT_LT((*m)["oracle-placement"], (*m)["deepspeed"]);
  }
  const double dense_gain = dense_p95["deepspeed"] / dense_p95["oracle-placement"];
  const double sparse_gain = sparse_p95["deepspeed"] / sparse_p95["oracle-placement"];
  EXPECT_GT(dense_gain, 1.5);
  EXPECT_GT(dense_gain, sparse_gain + 0.2);
  // The padding makes DeepSpeed slower than without it, and the even split gains nothing from it (it pads nothing).
  EXPECT_GT(dense_p95["deepspeed"], sparse_p95["deepspeed"]);
}

TEST(InferenceSim, DeepSpeedsDefaultCapacityDropsTheSkewAway) {
  // DeepSpeed-MoE's default inference capacity (factor 1.0, overflow dropped) pads every buffer to the balanced
  // size whatever the skew: with E = N its layer is the even split's, it drops a share of the tokens, and it is
  // faster than the dropless padded dispatch.
  std::map<std::string, RunResult> r;
  for (const char* p : {"deepspeed", "ideal"}) {
    InferenceInput in = paper_setup(p, true);
    in.model.capacity_factor = 1.0;
    r[p] = run_inference(in);
  }
  const double ds = r["deepspeed"].metrics.at("latency_p95_s");
  EXPECT_NEAR(ds, r["ideal"].metrics.at("latency_p95_s"), 1e-9 * ds);
  EXPECT_GT(r["deepspeed"].metrics.at("dropped_token_share"), 0.05);
  EXPECT_LT(r["deepspeed"].metrics.at("dropped_token_share"), 0.5);
  const RunResult dropless = run_inference(paper_setup("deepspeed", true));
  EXPECT_EQ(dropless.metrics.count("dropped_token_share"), 0u);
  EXPECT_GT(dropless.metrics.at("latency_p95_s"), 1.5 * ds);
}

}  // namespace
}  // namespace lina::sim

namespace lina::sim {
namespace {

// An encoder-decoder model numbers its layers encoder first (2 + 2 here): every MoE layer of both stacks gets its
// records, and the per-layer tail all-to-all has one entry per MoE layer.
TEST(InferenceSim, EncoderDecoderLayersAreAllRecorded) {
  InferenceInput in = small("lina", "zipf");
  in.model = load_model(nlohmann::json{{"base", "bert2gpt2"},
                                       {"encoder_layers", 2},
                                       {"layers", 2},
                                       {"experts", 8},
                                       {"top_k", 1},
                                       {"capacity_factor", 0}},
                        "test", "/model");
  in.record_links = true;
  const RunResult r = run_inference(in);
  int rows = -1;  // the header
  std::set<int> layers;
  std::istringstream csv(r.layers_csv);
  for (std::string line; std::getline(csv, line); ++rows) {
    if (rows >= 0) layers.insert(std::stoi(line.substr(line.find(',') + 1)));
  }
  EXPECT_EQ(rows, 6 * 4);
  EXPECT_EQ(layers, (std::set<int>{0, 1, 2, 3}));
  EXPECT_EQ(nlohmann::json::parse(r.notes.at("a2a_tail_per_layer_s")).size(), 4u);
}

TEST(InferenceSim, CostFollowsThroughputAndPrice) {
  InferenceInput in = small("deepspeed", "zipf");
  RunResult free = run_inference(in);
  EXPECT_FALSE(free.metrics.count("usd_per_million_tokens"));
  in.cluster.price_usd_per_gpu_hour = 3.0;
  RunResult priced = run_inference(in);
  // 8 GPUs at $3 an hour: $24 an hour, for the time a million tokens take at tokens_per_s.
  const double tokens_per_s = priced.metrics.at("tokens_per_s");
  EXPECT_DOUBLE_EQ(tokens_per_s, free.metrics.at("tokens_per_s"));
  EXPECT_NEAR(priced.metrics.at("usd_per_million_tokens"), 24.0 / 3600 * 1e6 / tokens_per_s, 1e-9);
}

TEST(InferenceSim, PerLayerRecordsAddUpToTheMetrics) {
  // With the timeline recorded, every evaluated batch and MoE layer gets a row (layers-<policy>.csv); their means
  // are the reported metrics, and the estimated rows give the estimate accuracy.
  InferenceInput in = small("lina", "zipf");
  in.record_links = true;
  RunResult r = run_inference(in);
  std::istringstream csv(r.layers_csv);
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line.rfind("batch,layer,moe_layer_s,dispatch_s,combine_s,", 0), 0u) << line;
  int rows = 0, estimated = 0, hits = 0;
  double a2a = 0, moe = 0, idle = 0;
  while (std::getline(csv, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    if (line.back() == ',') f.emplace_back();
    ASSERT_EQ(f.size(), 13u) << line;
    moe += std::stod(f[2]);
    a2a += std::stod(f[3]) + std::stod(f[4]);
    idle += std::stod(f[7]);
    if (f[9] == "1") {
      ++estimated;
      hits += f[10] == "1";
    }
    ++rows;
  }
  ASSERT_EQ(rows, 6 * 4);  // batches x MoE layers
  EXPECT_NEAR(a2a / rows, r.metrics.at("a2a_mean_time_s"), 1e-8 * r.metrics.at("a2a_mean_time_s") + 1e-12);
  EXPECT_NEAR(moe / rows, r.metrics.at("moe_layer_mean_s"), 1e-8 * r.metrics.at("moe_layer_mean_s"));
  EXPECT_NEAR(idle / rows, r.metrics.at("idle_share_mean"), 1e-5);
  // The all-to-all share is all the batches' all-to-all time over all their service time.
  const double service = r.metrics.at("service_mean_s") * r.metrics.at("batches");
  EXPECT_NEAR(a2a / service, r.metrics.at("a2a_share"), 1e-7);
  // Throughput: every batch has 16 x 128 tokens; served back to back, over the same service time.
  EXPECT_NEAR(r.metrics.at("tokens_per_s"), 6 * 16 * 128 / service, 1e-9 * r.metrics.at("tokens_per_s"));
  EXPECT_GT(r.metrics.at("a2a_share"), 0);
  EXPECT_LT(r.metrics.at("a2a_share"), 1);
  ASSERT_GT(estimated, 0);
  EXPECT_DOUBLE_EQ(static_cast<double>(hits) / estimated, r.metrics.at("estimate_accuracy"));
  // Without the timeline nothing is kept.
  EXPECT_TRUE(run_inference(small("lina", "zipf")).layers_csv.empty());
}

}  // namespace
}  // namespace lina::sim
