// The training step as a Plan (sched/training_plan.hpp) and the Plan IR's validation (sched/plan.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>
#include <tuple>

#include "sched/cluster_spec.hpp"
#include "sched/error.hpp"
#include "sched/model_spec.hpp"
#include "sched/plan.hpp"
#include "sched/policy_spec.hpp"
#include "sched/training_plan.hpp"
#include "sched/workload_spec.hpp"

namespace lina {
namespace {

using nlohmann::json;

ModelSpec model(int layers, int experts) {
  return load_model(json{{"base", "transformer-xl"}, {"layers", layers}, {"experts", experts}}, "", "");
}

struct Fixture {
  ClusterSpec cluster = load_cluster_preset_or_file("lina-testbed");  // 4 x 4 A100, 16 GPUs
  ModelSpec m;
  WorkloadSpec w;
  PolicySpec pol;
  Fixture(int layers, int experts, const std::string& policy) : m(model(layers, experts)) {
    w.batch_size = 2;
    w.seq_len = 64;  // T = 128 tokens per GPU
    w.steps = 1;
    pol.name = policy;
  }
  Plan build(int k = 0, int degree = 1, int steps = 1) const {
    TrainingPlanInput in;
    in.model = &m;
    in.cluster = &cluster;
    in.workload = &w;
    in.policy = &pol;
    in.layout = make_layout(m, cluster, k, degree);
    in.steps = steps;
    return build_training_plan(in);
  }
};

const Collective& coll(const Plan& p, const Task& t) { return p.collectives[static_cast<size_t>(t.collective)]; }

// Bytes rank `r` sends in collective c (row of the all-to-all matrix).
double sent_by(const Collective& c, int r) {
  size_t G = c.ranks.size();
  for (size_t i = 0; i < G; ++i) {
    if (c.ranks[i] != r) continue;
    double s = 0;
    for (size_t j = 0; j < G; ++j) s += c.bytes[i * G + j];
    return s;
  }
  return -1;
}

TEST(TrainingPlan, FourAllToAllsPerMoeLayerPerStepWithFormulaBytes) {
  // Transformer-XL (d = 512, fp32: 4 bytes, top-2, capacity factor 1), 2 MoE layers, E = N = 16 on lina-testbed:
  // one expert per GPU, expert-parallel group G = 16. Balanced routing, T = 2 x 64 = 128 tokens per GPU: each rank
  // sends T * top_k / E = 16 tokens to every expert (capacity ceil(1.0 * 128 * 2 / 16) = 16 does not cut). The 16
  // tokens for its own expert stay local, so per all-to-all a rank sends
  //   tokens * top_k * d * dtype_bytes * (G - 1) / G = 128 * 2 * 512 * 4 * 15 / 16 = 491,520 bytes
  // (15 peers x 16 tokens x 2,048 bytes), and receives as much.
  Fixture f(2, 16, "deepspeed");
  const double expected = 128.0 * 2 * 512 * 4 * 15 / 16;
  ASSERT_DOUBLE_EQ(expected, 491520.0);
  for (int steps : {1, 2}) {
    SCOPED_TRACE(steps);
    Plan p = f.build(0, 1, steps);
    EXPECT_NO_THROW(validate_plan(p));
    std::map<std::tuple<int, int, int, int, int>, int> count;  // (rank, step, layer, phase, role) -> tasks
    std::vector<int> per_rank(16, 0);
    for (const Task& t : p.tasks) {
      if (t.kind != TaskKind::kComm || coll(p, t).kind != CommKind::kAllToAll) continue;
      const Collective& c = coll(p, t);
      ++per_rank[static_cast<size_t>(t.rank)];
      ++count[{t.rank, t.step, t.layer, static_cast<int>(t.phase), static_cast<int>(t.role)}];
      EXPECT_EQ(t.stream, Stream::kAllToAll);
      ASSERT_EQ(c.ranks.size(), 16u);
      EXPECT_DOUBLE_EQ(sent_by(c, t.rank), expected);
      // Received: the column of this rank.
      double recv = 0;
      for (size_t i = 0; i < 16; ++i) recv += c.bytes[i * 16 + static_cast<size_t>(t.rank)];
      EXPECT_DOUBLE_EQ(recv, expected);
      EXPECT_DOUBLE_EQ(c.bytes[static_cast<size_t>(t.rank) * 16 + static_cast<size_t>(t.rank)], 0.0);
      EXPECT_DOUBLE_EQ(c.total_bytes(), 16 * expected);
    }
    // 2 MoE layers x 4 all-to-alls x steps, on every rank.
    for (int r = 0; r < 16; ++r) EXPECT_EQ(per_rank[static_cast<size_t>(r)], 8 * steps) << "rank " << r;
    // Exactly one task of each kind: forward dispatch + combine, backward combine + dispatch.
    EXPECT_EQ(count.size(), static_cast<size_t>(16 * steps * 2 * 4));
    for (const auto& [key, n] : count) EXPECT_EQ(n, 1);
  }
}

TEST(TrainingPlan, PipelinedAllToAllSplitsBytesIntoEqualChunks) {
  // Degree 4: each of the four all-to-alls is cut into 4 chunks of a quarter of the bytes.
  Fixture f(2, 16, "lina");
  Plan p = f.build(0, 4);
  validate_plan(p);
  std::map<std::tuple<int, int, int, int>, std::set<int>> chunks;  // (rank, layer, phase, role) -> micro_op ids
  for (const Task& t : p.tasks) {
    if (t.kind != TaskKind::kComm || coll(p, t).kind != CommKind::kAllToAll) continue;
    EXPECT_DOUBLE_EQ(sent_by(coll(p, t), t.rank), 491520.0 / 4);
    chunks[{t.rank, t.layer, static_cast<int>(t.phase), static_cast<int>(t.role)}].insert(t.micro_op);
  }
  EXPECT_EQ(chunks.size(), 16u * 2 * 4);
  for (const auto& [k, ids] : chunks) EXPECT_EQ(ids, (std::set<int>{0, 1, 2, 3}));
}

TEST(TrainingPlan, BalancedA2aBytesHelperIsTheUnreducedVolume) {
  // What balanced_a2a_bytes_per_rank returns today: tokens * top_k * d * dtype (local share included).
  Fixture f(2, 16, "deepspeed");
  EXPECT_DOUBLE_EQ(balanced_a2a_bytes_per_rank(f.m, f.w), 128.0 * 2 * 512 * 4);
}

TEST(TrainingPlan, LinaPipelinesTheAllToAllInMicroOpsOfTheMicroOpSize) {
  // The buffer is 128 * 2 * 512 * 4 = 524,288 bytes: ceil(buffer / size) chunks, at least 1, at most 64.
  Fixture f(2, 16, "lina");
  EXPECT_EQ(lina_pipeline_degree(f.m, f.w, 524288), 1);
  EXPECT_EQ(lina_pipeline_degree(f.m, f.w, 524287), 2);
  EXPECT_EQ(lina_pipeline_degree(f.m, f.w, 100000), 6);
  EXPECT_EQ(lina_pipeline_degree(f.m, f.w, 30e6), 1);
  EXPECT_EQ(lina_pipeline_degree(f.m, f.w, 1000), kMaxPipelineDegree);
  EXPECT_THROW(lina_pipeline_degree(f.m, f.w, 0), InputError);
}

// Non-expert allreduce collectives (over all ranks) of a plan, in issue order.
// Not on a temporary plan: the pointers would dangle.
std::vector<const Collective*> grad_syncs(Plan&& p, bool expert_only = false) = delete;

std::vector<const Collective*> grad_syncs(const Plan& p, bool expert_only = false) {
  std::vector<const Collective*> out;
  for (const auto& c : p.collectives) {
    if (c.role != Role::kGradSync) continue;
    bool expert = static_cast<int>(c.ranks.size()) != p.ranks;
    if (expert == expert_only) out.push_back(&c);
  }
  return out;
}

double sum_bytes(const std::vector<const Collective*>& v) {
  double s = 0;
  for (auto* c : v) s += c->bytes.at(0);
  return s;
}

TEST(TrainingPlan, DdpBucketsConserveGradientBytes) {
  Fixture f(2, 16, "deepspeed");
  const ParamCounts pc = count_params(f.m);
  const double total = static_cast<double>(pc.non_expert) * 4;  // fp32 gradients of every replicated weight
  // A bucket larger than all gradients: one allreduce of everything.
  f.pol.bucket_bytes = 1e15;
  Plan p1 = f.build();
  auto one = grad_syncs(p1);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_NEAR(one[0]->bytes[0], total, total * 1e-12);
  EXPECT_EQ(one[0]->ranks.size(), 16u);
  // A 1-byte bucket: every gradient tensor is its own allreduce. Per MoE layer of Transformer-XL: gate, attention
  // output projection, fused QKV, norms = 4 tensors (no shared experts); plus the embedding and the final norm:
  // 2 x 4 + 2 = 10.
  f.pol.bucket_bytes = 1;
  Plan p2 = f.build();
  auto each = grad_syncs(p2);
  EXPECT_EQ(each.size(), 10u);
  EXPECT_NEAR(sum_bytes(each), total, total * 1e-12);
  // E = N: one expert per GPU, no replicas, so no expert-gradient allreduce at all.
  EXPECT_TRUE(grad_syncs(p2, true).empty());
}

TEST(TrainingPlan, DdpBucketsAreFullExceptTheLast) {
  Fixture f(12, 16, "deepspeed");
  const double total = static_cast<double>(count_params(f.m).non_expert) * 4;
  ModelCost mc = model_cost(f.m, 128, 64);
  double largest = *std::max_element(mc.embedding_grad_bytes.begin(), mc.embedding_grad_bytes.end());
  for (const auto& l : mc.layers) {
    for (double b : l.grad_tensor_bytes) largest = std::max(largest, b);
  }
  f.pol.bucket_bytes = 4e6;
  Plan p = f.build();
  auto b = grad_syncs(p);
  ASSERT_GE(b.size(), 2u);
  EXPECT_NEAR(sum_bytes(b), total, total * 1e-12);
  // Each bucket closes as soon as it reaches the bucket size: all but the last are >= 4 MB and < 4 MB plus one
  // tensor; so the count lies between total / (4 MB + largest) and ceil(total / 4 MB).
  for (size_t i = 0; i + 1 < b.size(); ++i) {
    EXPECT_GE(b[i]->bytes[0], 4e6) << i;
    EXPECT_LT(b[i]->bytes[0], 4e6 + largest) << i;
  }
  EXPECT_LE(static_cast<double>(b.size()), std::ceil(total / 4e6));
  EXPECT_GE(static_cast<double>(b.size()), std::floor(total / (4e6 + largest)));
}

TEST(TrainingPlan, ExpertGradientsReducedAmongReplicas) {
  // 8 experts on 16 GPUs, one per GPU: G = 8, each expert on 2 GPUs (ranks p and p + 8).
  Fixture f(2, 8, "deepspeed");
  f.pol.bucket_bytes = 1;  // one allreduce per expert gradient tensor
  Plan p = f.build();
  auto ex = grad_syncs(p, true);
  // 2 MoE layers x 8 replica pairs.
  ASSERT_EQ(ex.size(), 16u);
  ModelCost mc = model_cost(f.m, 128, 64);
  for (auto* c : ex) {
    ASSERT_EQ(c->ranks.size(), 2u);
    EXPECT_EQ(c->ranks[1] - c->ranks[0], 8);
    EXPECT_DOUBLE_EQ(c->bytes[0], mc.expert_param_bytes);
    EXPECT_DOUBLE_EQ(mc.expert_param_bytes, static_cast<double>(count_params(f.m).per_expert) * 4);
  }
}

// ZeRO-1 (policy.zero_stage = 1): the same gradient buckets are reduce-scattered instead of allreduced; each rank's
// optimizer updates its shard (1/N of the non-expert parameters, 1/replicas of its experts'); then the updated
// weights are all-gathered over the same groups, after the optimizer, ending the step.
TEST(TrainingPlan, ZeroOneReduceScattersShardsTheOptimizerAndGathersTheWeights) {
  for (const char* policy : {"deepspeed", "lina"}) {
    SCOPED_TRACE(policy);
    Fixture f(2, 8, policy);  // 8 experts on 16 GPUs: each expert on 2 GPUs (replicas)
    const Plan plain = f.build(1);
    f.pol.zero_stage = 1;
    const Plan zero = f.build(1);
    const ModelCost mc = model_cost(f.m, 128, 64);
    std::vector<const Collective*> ar, rs, ag;
    for (const auto& c : plain.collectives) {
      if (c.role == Role::kGradSync) ar.push_back(&c);
    }
    for (const auto& c : zero.collectives) {
      if (c.role != Role::kGradSync) continue;
      ASSERT_NE(c.kind, CommKind::kAllReduce);
      (c.kind == CommKind::kReduceScatter ? rs : ag).push_back(&c);
    }
    // The same buckets or micro-ops, over the same groups.
    ASSERT_EQ(rs.size(), ar.size());
    for (size_t i = 0; i < rs.size(); ++i) {
      EXPECT_EQ(rs[i]->ranks, ar[i]->ranks);
      EXPECT_EQ(rs[i]->bytes, ar[i]->bytes);
    }
    // One gather of the non-expert weights over all 16 GPUs, one of each expert's weights over its 2 replicas.
    ASSERT_EQ(ag.size(), 1u + 8u);
    EXPECT_EQ(ag[0]->ranks.size(), 16u);
    EXPECT_DOUBLE_EQ(ag[0]->bytes.at(0), mc.replicated_param_bytes);
    for (size_t i = 1; i < ag.size(); ++i) {
      ASSERT_EQ(ag[i]->ranks.size(), 2u);
      EXPECT_EQ(ag[i]->ranks[1] - ag[i]->ranks[0], 8);
      EXPECT_DOUBLE_EQ(ag[i]->bytes.at(0), 2 * mc.expert_param_bytes);  // 2 MoE layers, one expert per GPU
    }
    // The optimizer's work shrinks to the shard: params = replicated / 16 + experts / 2.
    auto optimizer_flops = [](const Plan& p) {
      for (const auto& t : p.tasks) {
        if (t.rank == 0 && t.phase == Phase::kStep && t.kind == TaskKind::kCompute) return t.flops;
      }
      return -1.0;
    };
    const double params = mc.replicated_param_bytes / 4, experts = 2 * mc.expert_param_bytes / 4;
    EXPECT_DOUBLE_EQ(optimizer_flops(plain), 12 * (params + experts));
    EXPECT_DOUBLE_EQ(optimizer_flops(zero), 12 * (params / 16 + experts / 2));
    // Every gather comes after its rank's optimizer, and nothing of the step comes after the gathers.
    for (const auto& t : zero.tasks) {
      if (t.kind != TaskKind::kComm || coll(zero, t).kind != CommKind::kAllGather) continue;
      ASSERT_FALSE(t.deps.empty());
      const Task& before = zero.tasks[static_cast<size_t>(t.deps.front())];
      EXPECT_TRUE(before.phase == Phase::kStep && before.rank == t.rank) << "gather after the optimizer";
    }
    EXPECT_NO_THROW(validate_plan(zero));
    // Stage 2 differs in memory only: the same plan.
    f.pol.zero_stage = 2;
    const Plan two = f.build(1);
    ASSERT_EQ(two.collectives.size(), zero.collectives.size());
    for (size_t i = 0; i < two.collectives.size(); ++i) {
      EXPECT_EQ(two.collectives[i].kind, zero.collectives[i].kind);
      EXPECT_EQ(two.collectives[i].bytes, zero.collectives[i].bytes);
    }
    EXPECT_EQ(two.tasks.size(), zero.tasks.size());
  }
}

TEST(TrainingPlan, LinkClassesFollowTheRouteShapes) {
  ClusterSpec testbed = load_cluster_preset_or_file("lina-testbed");  // 4 x 4, one NIC per node
  ClusterSpec dgx = load_cluster_preset_or_file("dgx-h100");          // 4 x 8, NVLink, a NIC per GPU
  EXPECT_EQ(link_classes(dgx, {3}), 0);                               // nobody to talk to
  EXPECT_EQ(link_classes(dgx, {0, 1, 2, 3, 4, 5, 6, 7}), kNodeLinks);
  EXPECT_EQ(link_classes(dgx, {5, 13, 21, 29}), kNicLinks);  // one GPU a node: NIC to NIC
  EXPECT_EQ(link_classes(dgx, {0, 1, 8, 9}), kAllLinks);
  EXPECT_EQ(link_classes(testbed, {4, 5, 6, 7}), kNodeLinks);
  // One NIC per node: GPU -> node switch -> NIC, so inter-node traffic crosses the GPU's port as well.
  EXPECT_EQ(link_classes(testbed, {1, 5}), kAllLinks);
  EXPECT_EQ(link_classes(testbed, {15, 0, 4, 8}), kAllLinks);  // order does not matter
}

TEST(TrainingPlan, CollectivesSayWhichLinksTheyCross) {
  // 8 experts on 16 GPUs of 2 DGX-like nodes: the all-to-all stays in a node, each expert's replicas sit on
  // different nodes (NIC only), and the data-parallel allreduce of the rest spans both.
  Fixture f(2, 8, "lina");
  f.cluster = load_cluster_preset_or_file("dgx-h100");
  f.cluster.nodes = 2;
  Plan p = f.build(1);
  std::set<std::pair<int, int>> seen;  // (kind, links)
  for (const Collective& c : p.collectives) {
    seen.insert({static_cast<int>(c.kind), c.links});
    EXPECT_EQ(c.links, link_classes(f.cluster, c.ranks));
  }
  EXPECT_TRUE(seen.count({static_cast<int>(CommKind::kAllToAll), kNodeLinks}));
  EXPECT_TRUE(seen.count({static_cast<int>(CommKind::kAllReduce), kNicLinks}));
  EXPECT_TRUE(seen.count({static_cast<int>(CommKind::kAllReduce), kAllLinks}));
  EXPECT_FALSE(seen.count({static_cast<int>(CommKind::kAllToAll), kNicLinks}));
}

TEST(TrainingPlan, LinaMicroOpsAreEqualChunksOfOneTensorAndBounded) {
  Fixture f(2, 16, "lina");
  f.pol.micro_op_bytes = 1e6;
  Plan p = f.build();
  validate_plan(p);
  auto ops = grad_syncs(p);
  const double total = static_cast<double>(count_params(f.m).non_expert) * 4;
  EXPECT_NEAR(sum_bytes(ops), total, total * 1e-12);
  for (auto* c : ops) EXPECT_LE(c->bytes[0], 1e6 * (1 + 1e-12));
  // Expected sequence, tensor by tensor in backward order: a tensor of b bytes becomes n = ceil(b / 1 MB) chunks of
  // b / n (equal, never fused with the next tensor).
  ModelCost mc = model_cost(f.m, 128, 64);
  std::vector<std::pair<int, double>> want;  // (layer, chunk bytes)
  for (int l = 1; l >= 0; --l) {
    for (double b : mc.layers[static_cast<size_t>(l)].grad_tensor_bytes) {
      int n = static_cast<int>(std::ceil(b / 1e6));
      for (int i = 0; i < n; ++i) want.emplace_back(l, b / n);
    }
  }
  for (double b : mc.embedding_grad_bytes) {
    int n = static_cast<int>(std::ceil(b / 1e6));
    for (int i = 0; i < n; ++i) want.emplace_back(-1, b / n);
  }
  ASSERT_EQ(ops.size(), want.size());
  EXPECT_GT(ops.size(), 10u);  // some tensors really are cut (the attention weights are > 1 MB in fp32)
  for (size_t i = 0; i < ops.size(); ++i) {
    EXPECT_EQ(ops[i]->layer, want[i].first) << i;
    EXPECT_DOUBLE_EQ(ops[i]->bytes[0], want[i].second) << i;
    EXPECT_EQ(ops[i]->micro_op, static_cast<int>(i));
  }
}

TEST(TrainingPlan, FusedMicroOpsAreFullExceptTheLast) {
  // micro_op_fusion: gradients stream into one buffer in readiness order and every full micro_op_bytes is a
  // micro-op, so all micro-ops but the last hold exactly 1 MB and the count is ceil(total / 1 MB).
  Fixture f(2, 16, "lina");
  f.pol.micro_op_bytes = 1e6;
  f.pol.micro_op_fusion = true;
  Plan p = f.build();
  validate_plan(p);
  auto ops = grad_syncs(p);
  const double total = static_cast<double>(count_params(f.m).non_expert) * 4;
  EXPECT_NEAR(sum_bytes(ops), total, total * 1e-12);
  ASSERT_EQ(static_cast<double>(ops.size()), std::ceil(total / 1e6 - 1e-9));
  for (size_t i = 0; i + 1 < ops.size(); ++i) EXPECT_DOUBLE_EQ(ops[i]->bytes[0], 1e6) << i;
  EXPECT_LE(ops.back()->bytes[0], 1e6);
  EXPECT_GT(ops.back()->bytes[0], 0);
}

TEST(TrainingPlan, DenseDispatchAddsTheEinsumsAroundEachAllToAllPair) {
  // Transformer-XL's preset dispatches densely (DeepSpeed-MoE). Per MoE layer and rank, against sparse dispatch:
  // forward masks + two einsums, backward 2x the same, and the backward combine computation (where Lina stops
  // launching allreduce micro-ops) is the combine einsum's backward instead of a small elementwise op.
  Fixture dense(2, 16, "deepspeed");
  ASSERT_TRUE(dense.m.dense_dispatch);
  Fixture sparse(2, 16, "deepspeed");
  sparse.m.dense_dispatch = false;
  auto flops_of = [](const Plan& p) {
    double f = 0;
    for (const auto& t : p.tasks)
      if (t.kind == TaskKind::kCompute && t.rank == 0) f += t.flops;
    return f;
  };
  auto pre_flops = [](const Plan& p) {
    double f = 0;
    for (const auto& t : p.tasks)
      if (t.rank == 0 && t.role == Role::kPreAllToAll) f += t.flops;
    return f;
  };
  const double T = 128, d = 512;
  const double C = expert_capacity(dense.m, T, 2 * T / 16);
  const double einsum = dense_dispatch_einsum_cost(dense.m, T, C).flops,
               masks = dense_dispatch_masks_cost(dense.m, T, C).flops;
  EXPECT_DOUBLE_EQ(einsum, 2 * T * 16 * C * d);
  const double sparse_pre = 2 * T * 2 * d;  // the elementwise combine backward of sparse dispatch
  const Plan pd = dense.build(), ps = sparse.build();
  EXPECT_NEAR(pre_flops(pd), 2 * 2 * einsum, 1e-6 * einsum);
  EXPECT_NEAR(flops_of(pd) - flops_of(ps), 2 * (3 * (2 * einsum + masks)) - 2 * sparse_pre, 1e-9 * flops_of(pd));
}

TEST(TrainingPlan, LinaPriorityDoesNotPartition) {
  // lina-priority is the ablation without partitioning: DDP buckets.
  Fixture f(2, 16, "lina-priority");
  f.pol.bucket_bytes = 1e15;
  f.pol.micro_op_bytes = 1e6;
  Plan p = f.build();
  EXPECT_EQ(grad_syncs(p).size(), 1u);
}

TEST(TrainingLayout, PackingOnSixteenGpus) {
  ClusterSpec c = load_cluster_preset_or_file("lina-testbed");
  struct L {
    int experts, k, want_k, group, replicas;
  };
  const L cases[] = {
      {2, 0, 1, 2, 8},                         // default: one expert per GPU, each expert on 8 GPUs
      {2, 2, 2, 1, 16},                        // both experts on every GPU: no all-to-all group
      {8, 0, 1, 8, 2},                         //
      {8, 2, 2, 4, 4},                         // all-to-all inside one 4-GPU node
      {16, 0, 1, 16, 1},                       // E = N
      {16, 2, 2, 8, 2},                        //
      {16, 16, 16, 1, 16}, {32, 0, 2, 16, 1},  // more experts than GPUs: E / N per GPU
  };
  for (const auto& x : cases) {
    SCOPED_TRACE(::testing::Message() << x.experts << " experts, k=" << x.k);
    TrainingLayout l = make_layout(model(2, x.experts), c, x.k, 0);
    EXPECT_EQ(l.ranks, 16);
    EXPECT_EQ(l.experts, x.experts);
    EXPECT_EQ(l.experts_per_device, x.want_k);
    EXPECT_EQ(l.group_size, x.group);
    EXPECT_EQ(l.replicas, x.replicas);
    EXPECT_EQ(l.pipeline_degree, 1);  // 0 means 1
    EXPECT_EQ(l.group_size * l.replicas, 16);
    EXPECT_EQ(l.group_size * l.experts_per_device, x.experts);
  }
  EXPECT_EQ(make_layout(model(2, 16), c, 0, 4).pipeline_degree, 4);
}

TEST(TrainingLayout, ImpossibleLayoutsAreInputErrors) {
  ClusterSpec c = load_cluster_preset_or_file("lina-testbed");
  EXPECT_THROW(make_layout(model(2, 16), c, 3, 1), InputError);  // 3 does not divide 16
  EXPECT_THROW(make_layout(model(2, 8), c, 16, 1), InputError);  // more per GPU than experts
  EXPECT_THROW(make_layout(model(2, 6), c, 1, 1), InputError);   // a group of 6 does not divide 16 GPUs
}

// k = 0 picks the smallest k with E/k dividing the rank count: 24 experts on 16 GPUs need k = 3 (groups of 8).
TEST(TrainingLayout, DefaultPackingFindsSmallestValidK) {
  ClusterSpec c = load_cluster_preset_or_file("lina-testbed");
  TrainingLayout l = make_layout(model(2, 24), c, 0, 1);
  EXPECT_EQ(l.experts_per_device, 3);
  EXPECT_EQ(l.group_size, 8);
  EXPECT_EQ(l.replicas, 2);
}

TEST(TrainingPlan, PackedLayoutsConfineTheAllToAll) {
  // 2 experts packed 2 per GPU: groups of one GPU, nothing crosses the network.
  Fixture f2(2, 2, "lina");
  Plan p = f2.build(2, 1);
  validate_plan(p);
  int a2a = 0;
  for (const auto& c : p.collectives) {
    if (c.kind != CommKind::kAllToAll) continue;
    ++a2a;
    EXPECT_EQ(c.ranks.size(), 1u);
    EXPECT_DOUBLE_EQ(c.total_bytes(), 0.0);
  }
  EXPECT_EQ(a2a, 16 * 2 * 4);  // one single-rank group per GPU, 4 per MoE layer
  // 8 experts packed 2 per GPU: groups of 4 GPUs = one node of lina-testbed.
  Fixture f8(2, 8, "lina");
  ClusterSpec c = f8.cluster;
  Plan q = f8.build(2, 1);
  validate_plan(q);
  for (const auto& col : q.collectives) {
    if (col.kind != CommKind::kAllToAll) continue;
    ASSERT_EQ(col.ranks.size(), 4u);
    for (int r : col.ranks) EXPECT_EQ(c.node_of(r), c.node_of(col.ranks[0]));
    // Each rank sends T * top_k * (3 of 4 GPUs' experts) / E tokens: 128 * 2 * 6 / 8 = 192 tokens x 2,048 bytes.
    EXPECT_DOUBLE_EQ(sent_by(col, col.ranks[0]), 192.0 * 2048);
  }
}

TEST(TrainingPlan, DependenciesPointBackwardsOnTheSameRank) {
  Fixture f(2, 16, "lina");
  Plan p = f.build(0, 2, 2);
  for (size_t i = 0; i < p.tasks.size(); ++i) {
    for (int d : p.tasks[i].deps) {
      ASSERT_LT(static_cast<size_t>(d), i);
      EXPECT_EQ(p.tasks[static_cast<size_t>(d)].rank, p.tasks[i].rank);
    }
  }
  // Every rank runs the same number of backward compute tasks, twice the forward FLOPs for the layer ops.
  double fwd = 0, bwd = 0;
  for (const auto& t : p.tasks) {
    if (t.rank != 0 || t.kind != TaskKind::kCompute || t.step != 0 || t.role != Role::kExpert) continue;
    (t.phase == Phase::kForward ? fwd : bwd) += t.flops;
  }
  EXPECT_GT(fwd, 0);
  EXPECT_DOUBLE_EQ(bwd, 2 * fwd);
}

// ---- validate_plan on hand-built plans ----

Plan two_rank_plan() {
  Plan p;
  p.ranks = 2;
  Collective c;
  c.kind = CommKind::kAllToAll;
  c.ranks = {0, 1};
  c.bytes = {0, 100, 100, 0};
  int cid = p.add_collective(c);
  Task a;
  a.rank = 0;
  a.flops = 10;
  int t0 = p.add_task(a);
  Task comm0;
  comm0.rank = 0;
  comm0.kind = TaskKind::kComm;
  comm0.stream = Stream::kAllToAll;
  comm0.collective = cid;
  comm0.deps = {t0};
  p.add_task(comm0);
  Task comm1 = comm0;
  comm1.rank = 1;
  comm1.deps = {};
  p.add_task(comm1);
  return p;
}

TEST(ValidatePlan, AcceptsAGoodPlan) {
  Plan p = two_rank_plan();
  EXPECT_NO_THROW(validate_plan(p));
  EXPECT_EQ(p.task_name(1), "fwd a2a");
  EXPECT_DOUBLE_EQ(p.collectives[0].total_bytes(), 200);
}

TEST(ValidatePlan, RejectsBrokenPlans) {
  auto expect_bad = [](Plan p, const std::string& what) {
    SCOPED_TRACE(what);
    try {
      validate_plan(p);
      ADD_FAILURE() << "accepted";
    } catch (const std::logic_error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  Plan p = two_rank_plan();
  p.tasks[0].deps = {1};  // a later task
  expect_bad(p, "not an earlier task");
  p = two_rank_plan();
  p.tasks[0].deps = {0};  // itself: a cycle
  expect_bad(p, "not an earlier task");
  p = two_rank_plan();
  p.tasks[2].deps = {0};  // rank 1 depending on rank 0's task
  expect_bad(p, "across ranks");
  p = two_rank_plan();
  p.tasks.pop_back();  // rank 1 never joins the all-to-all
  expect_bad(p, "lacks a task");
  p = two_rank_plan();
  p.tasks[2].rank = 0;  // rank 0 twice, rank 1 never
  expect_bad(p, "lacks a task");
  p = two_rank_plan();
  p.collectives[0].ranks = {0, 0};
  expect_bad(p, "repeats a rank");
  p = two_rank_plan();
  p.collectives[0].ranks = {0, 5};  // a rank the plan does not have
  expect_bad(p, "names rank 5 of 2");
  p = two_rank_plan();
  p.collectives[0].bytes = {100};  // an all-to-all needs P x P sizes
  expect_bad(p, "1 sizes for 2 ranks");
  p = two_rank_plan();
  p.collectives[0].bytes[1] = -1;
  expect_bad(p, "negative size");
  p = two_rank_plan();
  p.collectives[0].bytes[2] = std::nan("");
  expect_bad(p, "negative size");
  p = two_rank_plan();
  p.tasks[0].flops = std::numeric_limits<double>::infinity();
  expect_bad(p, "non-finite");
  p = two_rank_plan();
  p.tasks[1].collective = 7;
  expect_bad(p, "names collective 7");
  p = two_rank_plan();
  p.tasks[0].rank = 2;
  expect_bad(p, "rank 2 of 2");
  p = two_rank_plan();
  p.collectives[0].kind = CommKind::kAllReduce;  // an allreduce has one size
  expect_bad(p, "4 sizes for 2 ranks");
}

}  // namespace
}  // namespace lina

namespace lina {
namespace {

// Gradients are synchronised in the order they become ready: with 8 experts on 16 GPUs (2 replicas each) and one
// DDP bucket per tensor, rank 0's first expert-gradient allreduce (the last layer's experts, ready in the middle of
// that layer's backward) is issued on the allreduce stream before the non-expert gradients of the first layer,
// which are ready only at the end of the backward pass.
TEST(TrainingPlan, ExpertAndNonExpertGradientsInterleaveInReadinessOrder) {
  Fixture f(3, 8, "deepspeed");
  f.pol.bucket_bytes = 1;  // one bucket per tensor
  Plan p = f.build();
  int first_expert = -1, last_dense = -1, first_expert_layer = -1;
  for (size_t i = 0; i < p.tasks.size(); ++i) {
    const Task& t = p.tasks[i];
    if (t.rank != 0 || t.kind != TaskKind::kComm || t.role != Role::kGradSync) continue;
    bool expert = static_cast<int>(coll(p, t).ranks.size()) != p.ranks;
    if (expert && first_expert < 0) {
      first_expert = static_cast<int>(i);
      first_expert_layer = t.layer;
    }
    if (!expert) last_dense = static_cast<int>(i);
  }
  ASSERT_GE(first_expert, 0);
  EXPECT_EQ(first_expert_layer, 2);     // the last layer's experts come first in backward
  EXPECT_LT(first_expert, last_dense);  // ... and are not queued behind every non-expert gradient
}

}  // namespace
}  // namespace lina

namespace lina {
namespace {

// Packed experts that do not fit in GPU memory are offloaded (DESIGN.md 3.1): with room for R parameters after the
// non-expert ones (memory / 16 bytes per parameter - non-expert), a device holding X expert parameters keeps R and
// loads the share 1 - R/X from host memory before each forward and backward expert computation.
// The results' note on memory: none when everything fits; the offloaded share and its size when experts do not; the
// non-expert parameters' need when even they do not fit (no ZeRO or model parallelism is modelled).
TEST(TrainingPlan, MemoryNoteSaysWhatDoesNotFit) {
  Fixture f(2, 16, "lina");
  const ParamCounts pc = count_params(f.m);
  EXPECT_EQ(memory_note(f.m, f.cluster, 1), "");
  const double expert_params = 16.0 * static_cast<double>(pc.per_expert) * 2;
  f.cluster.gpu.memory_bytes = 16.0 * (static_cast<double>(pc.non_expert) + expert_params / 4);
  const std::string quarter = memory_note(f.m, f.cluster, 16);
  EXPECT_EQ(quarter.rfind("75% of the GPU's expert parameters", 0), 0u) << quarter;
  EXPECT_EQ(memory_note(f.m, f.cluster, 1), "");
  f.cluster.gpu.memory_bytes = 16.0 * static_cast<double>(pc.non_expert) / 2;
  const std::string rest = memory_note(f.m, f.cluster, 1);
  EXPECT_EQ(rest.rfind("the non-expert parameters alone need", 0), 0u) << rest;
}

// ZeRO-1 memory: a parameter costs 4 bytes plus its 12 bytes of optimizer state over its data-parallel group. Full
// Mixtral-8x7B on 4 DGX-H100 nodes (32 GPUs, one expert per GPU: 4 replicas of each) does not fit in 80 GB with
// plain data parallelism and fits with ZeRO-1.
TEST(TrainingPlan, ZeroOneShardsTheOptimizerStateInTheMemoryCount) {
  const ModelSpec m = load_model(json("mixtral-8x7b"), "", "");
  const ClusterSpec c = load_cluster_preset_or_file("dgx-h100");
  const ParamCounts pc = count_params(m);
  const double experts = static_cast<double>(pc.per_expert) * 32, rest = static_cast<double>(pc.non_expert);
  const double room0 = c.gpu.memory_bytes - 16 * rest;
  EXPECT_NEAR(offloaded_expert_share(m, c, 1), 1 - room0 / (16 * experts), 1e-12);
  const double room1 = c.gpu.memory_bytes - (4 + 12.0 / 32) * rest;
  ASSERT_GT(room1, (4 + 12.0 / 4) * experts);  // the closed form says it fits
  EXPECT_EQ(offloaded_expert_share(m, c, 1, 1), 0);
  EXPECT_EQ(memory_note(m, c, 1, 1), "");
  EXPECT_NE(memory_note(m, c, 1, 0).find("with mixed-precision Adam)"), std::string::npos);
  // With a quarter of the room the note names ZeRO-1.
  ClusterSpec small = c;
  small.gpu.memory_bytes = (4 + 12.0 / 32) * rest + (4 + 12.0 / 4) * experts / 4;
  EXPECT_NEAR(offloaded_expert_share(m, small, 1, 1), 0.75, 1e-9);
  EXPECT_NE(memory_note(m, small, 1, 1).find("mixed-precision Adam, ZeRO-1"), std::string::npos);
  // ZeRO-2 shards the gradients too: 2 + 14/group bytes a parameter, so the same GPU holds half of them.
  const double room2 = small.gpu.memory_bytes - (2 + 14.0 / 32) * rest;
  EXPECT_NEAR(offloaded_expert_share(m, small, 1, 2), std::max(0.0, 1 - room2 / ((2 + 14.0 / 4) * experts)), 1e-12);
  EXPECT_LT(offloaded_expert_share(m, small, 1, 2), offloaded_expert_share(m, small, 1, 1));
  EXPECT_NE(memory_note(m, small, 1, 2).find("mixed-precision Adam, ZeRO-2"), std::string::npos);
}

TEST(TrainingPlan, OffloadedExpertsAreLoadedOverPcieBeforeEachExpertComputation) {
  Fixture f(2, 16, "lina");
  const ParamCounts pc = count_params(f.m);
  const double expert_params = 16.0 * static_cast<double>(pc.per_expert) * 2;  // k = 16 experts x 2 MoE layers
  // Room for exactly a quarter of the packed experts.
  f.cluster.gpu.memory_bytes = 16.0 * (static_cast<double>(pc.non_expert) + expert_params / 4);
  EXPECT_DOUBLE_EQ(offloaded_expert_share(f.m, f.cluster, 16), 0.75);
  EXPECT_DOUBLE_EQ(offloaded_expert_share(f.m, f.cluster, 1), 0.0);  // one expert per GPU fits
  Plan p = f.build(16, 1);
  int loads = 0;
  for (const auto& t : p.tasks) {
    if (t.kind != TaskKind::kComm || coll(p, t).kind != CommKind::kHostLoad) continue;
    ++loads;
    EXPECT_EQ(t.stream, Stream::kHost);
    // 3/4 of 16 experts' weights of one layer, in the model's dtype.
    EXPECT_DOUBLE_EQ(coll(p, t).bytes[0], 0.75 * 16 * static_cast<double>(pc.per_expert) * f.m.dtype_bytes());
  }
  EXPECT_EQ(loads, 16 * 2 * 2);  // every rank, both MoE layers, forward and backward
  // Expert computations wait for their layer's load.
  for (size_t i = 0; i < p.tasks.size(); ++i) {
    const Task& t = p.tasks[i];
    if (t.role != Role::kExpert) continue;
    bool waits = false;
    for (int d : t.deps) {
      const Task& dt = p.tasks[static_cast<size_t>(d)];
      waits = waits || (dt.kind == TaskKind::kComm && coll(p, dt).kind == CommKind::kHostLoad);
    }
    EXPECT_TRUE(waits) << p.task_name(static_cast<int>(i));
  }
}

}  // namespace
}  // namespace lina
