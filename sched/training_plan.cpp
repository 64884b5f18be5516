#include "sched/training_plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "sched/error.hpp"
#include "sched/units.hpp"

namespace lina {
namespace {

// Splits `bytes` of one gradient tensor into equal micro-ops of at most `micro` bytes (Lina 4.1: equal-size chunks,
// never fused across tensors).
std::vector<double> partition(double bytes, double micro) {
  int n = std::max(1, static_cast<int>(std::ceil(bytes / micro - 1e-9)));
  return std::vector<double>(static_cast<size_t>(n), bytes / n);
}

struct GradEvent {
  std::vector<int> ready;  // per rank: the task after which the tensor's gradient is ready
  double bytes = 0;
  bool expert = false;
  int layer = -1;
};

}  // namespace

ModelCost model_cost(const ModelSpec& m, double tokens, double seq_len) {
  ModelCost mc;
  const ParamCounts pc = count_params(m);
  const double b = m.dtype_bytes();
  const int layers = m.total_layers();
  const int moe_layers = std::max(1, m.moe_layer_count());
  const int dense_layers = std::max(1, layers - m.moe_layer_count());
  // Per-layer shares of the parameter groups (layers of one model are alike within a group).
  const double attn = static_cast<double>(pc.attention) / layers * b;
  const double norms = static_cast<double>(pc.norms) / (layers + 1) * b;
  mc.expert_param_bytes = static_cast<double>(pc.per_expert) * b;
  for (int l = 0; l < layers; ++l) {
    LayerCost lc;
    lc.moe = m.is_moe_layer(l);
    lc.other.push_back(norm_cost(m, tokens));
    lc.other.push_back(attention_proj_cost(m, tokens));
    lc.other.push_back(attention_scores_cost(m, tokens, seq_len));
    lc.other.push_back(residual_cost(m, tokens));
    if (m.has_cross_attention(l)) {
      lc.other.push_back(cross_attention_proj_cost(m, tokens));
      lc.other.push_back(attention_scores_cost(m, tokens, seq_len));
    }
    lc.other.push_back(norm_cost(m, tokens));
    lc.other.push_back(residual_cost(m, tokens));
    if (lc.moe) {
      lc.gate = gate_cost(m, tokens);
      lc.ffn = shared_experts_cost(m, tokens);
      double shared = static_cast<double>(pc.shared_experts) / moe_layers * b;
      if (shared > 0) lc.grad_tensor_bytes.push_back(shared);
      lc.grad_tensor_bytes.push_back(static_cast<double>(pc.gates) / moe_layers * b);
      lc.expert_grad_bytes = mc.expert_param_bytes;
    } else {
      lc.ffn = dense_ffn_cost(m, tokens);
      // Two FFN weight tensors (up and down projections).
      double ffn = static_cast<double>(pc.dense_ffn) / dense_layers * b;
      lc.grad_tensor_bytes.push_back(ffn / 2);
      lc.grad_tensor_bytes.push_back(ffn / 2);
    }
    // Attention: the fused QKV projection (3/4 of the weights with d x d blocks) and the output projection.
    lc.grad_tensor_bytes.push_back(attn / 4);
    lc.grad_tensor_bytes.push_back(attn * 3 / 4);
    lc.grad_tensor_bytes.push_back(norms);
    mc.layers.push_back(std::move(lc));
  }
  mc.embedding = embedding_cost(m, tokens);
  mc.head = {norm_cost(m, tokens), lm_head_cost(m, tokens), loss_cost(m, tokens)};
  mc.embedding_grad_bytes = {static_cast<double>(pc.embedding) * b, norms};
  mc.replicated_param_bytes = static_cast<double>(pc.non_expert) * b;
  return mc;
}

TrainingLayout make_layout(const ModelSpec& m, const ClusterSpec& c, int k, int pipeline_degree, int zero_stage) {
  TrainingLayout l;
  l.ranks = c.gpu_count();
  l.experts = m.experts;
  l.pipeline_degree = std::max(1, pipeline_degree);
  if (m.experts <= 0) throw InputError("training needs an MoE model (model.experts > 0)");
  if (k <= 0) {
    // The smallest packing that places every expert: k experts per GPU such that E/k (the expert-parallel group)
    // divides the GPU count. Falls through to the error below when none exists.
    k = 1;
    while (k < m.experts && (m.experts % k != 0 || l.ranks % (m.experts / k) != 0)) ++k;
  }
  l.experts_per_device = k;
  if (m.experts % k != 0 || l.ranks % (m.experts / k) != 0) {
    throw InputError(
        fmt::format("cannot place {} experts on {} GPUs with {} experts per GPU: the expert-parallel group (experts / "
                    "experts-per-GPU) must divide the GPU count",
                    m.experts, l.ranks, k));
  }
  l.group_size = m.experts / k;
  l.replicas = l.ranks / l.group_size;
  l.offloaded_share = offloaded_expert_share(m, c, k, zero_stage);
  return l;
}

namespace {
// Mixed-precision Adam: bf16 weights and gradients (2 + 2 bytes), fp32 master copy and two moments (4 + 4 + 4).
constexpr double kWeightBytesPerParam = 2, kGradientBytesPerParam = 2, kOptimizerBytesPerParam = 12;

// Bytes a parameter costs a GPU when its data-parallel group has `group` GPUs: ZeRO stage 1 shards the optimizer
// state over the group, stage 2 the gradients too (Rajbhandari et al., SC'20, figure 1: 2 + 2 + 12 bytes, then
// 2 + 2 + 12/group, then 2 + 14/group).
double bytes_per_param(int zero_stage, double group) {
  const double g = std::max(1.0, group);
  return kWeightBytesPerParam + (zero_stage >= 2 ? kGradientBytesPerParam / g : kGradientBytesPerParam) +
         (zero_stage >= 1 ? kOptimizerBytesPerParam / g : kOptimizerBytesPerParam);
}

// The data-parallel group of an expert's parameters at k experts per GPU: its replicas, N k / E.
double expert_group(const ModelSpec& m, const ClusterSpec& c, int k) {
  return m.experts > 0 ? static_cast<double>(c.gpu_count()) * k / m.experts : 1.0;
}
}  // namespace

double offloaded_expert_share(const ModelSpec& m, const ClusterSpec& c, int k, int zero_stage) {
  const ParamCounts pc = count_params(m);
  const double expert = static_cast<double>(k) * static_cast<double>(pc.per_expert) * m.moe_layer_count() *
                        bytes_per_param(zero_stage, expert_group(m, c, k));
  if (expert <= 0) return 0;
  const double room =
      c.gpu.memory_bytes - static_cast<double>(pc.non_expert) * bytes_per_param(zero_stage, c.gpu_count());
  if (room >= expert) return 0;
  return std::min(1.0, 1.0 - std::max(0.0, room) / expert);
}

std::string optimizer_state_name(int zero_stage) {
  return zero_stage >= 1 ? fmt::format("mixed-precision Adam, ZeRO-{}", zero_stage) : "mixed-precision Adam";
}

std::string memory_note(const ModelSpec& m, const ClusterSpec& c, int k, int zero_stage) {
  const ParamCounts pc = count_params(m);
  const double mem = c.gpu.memory_bytes;
  const double rest = bytes_per_param(zero_stage, c.gpu_count()) * static_cast<double>(pc.non_expert);
  const std::string adam = optimizer_state_name(zero_stage);
  if (rest > mem) {
    return fmt::format(
        "the non-expert parameters alone need {} per GPU with {} ({:.3g} bytes each), more than the GPU's {}; lina "
        "models data and expert parallelism (and ZeRO-1/2 with policy.zero_stage), not tensor or pipeline parallelism, "
        "so this step assumes they fit, with every expert offloaded to host memory",
        format_quantity(rest, Dimension::kBytes), adam, bytes_per_param(zero_stage, c.gpu_count()),
        format_quantity(mem, Dimension::kBytes));
  }
  const double share = offloaded_expert_share(m, c, k, zero_stage);
  if (share <= 0) return "";
  const double experts = bytes_per_param(zero_stage, expert_group(m, c, k)) * k * static_cast<double>(pc.per_expert) *
                         static_cast<double>(m.moe_layer_count());
  return fmt::format(
      "{:.0f}% of the GPU's expert parameters ({} of {} with {}) do not fit beside the rest in {}: they are "
      "offloaded to host memory and loaded over PCIe before each expert computation",
      share * 100, format_quantity(share * experts, Dimension::kBytes), format_quantity(experts, Dimension::kBytes),
      adam, format_quantity(mem, Dimension::kBytes));
}

double balanced_a2a_bytes_per_rank(const ModelSpec& m, const WorkloadSpec& w) {
  return static_cast<double>(w.tokens_per_gpu()) * m.top_k * m.hidden * m.dtype_bytes();
}

int lina_pipeline_degree(const ModelSpec& m, const WorkloadSpec& w, double micro_op_bytes) {
  if (!(micro_op_bytes > 0)) throw InputError("policy.micro_op_size: expected a positive size");
  const double chunks = std::ceil(balanced_a2a_bytes_per_rank(m, w) / micro_op_bytes);
  return static_cast<int>(std::clamp(chunks, 1.0, static_cast<double>(kMaxPipelineDegree)));
}

uint8_t link_classes(const ClusterSpec& c, const std::vector<int>& ranks) {
  std::vector<int> nodes(ranks.size());
  for (size_t i = 0; i < ranks.size(); ++i) nodes[i] = c.node_of(ranks[i]);
  std::sort(nodes.begin(), nodes.end());
  const bool shares_node = std::adjacent_find(nodes.begin(), nodes.end()) != nodes.end();
  const bool spans_nodes = !nodes.empty() && nodes.front() != nodes.back();
  uint8_t links = 0;
  if (shares_node) links |= kNodeLinks;
  if (spans_nodes) links |= kNicLinks | (c.nic_per == ClusterSpec::NicPer::kNode ? kNodeLinks : 0);
  return links;
}

Plan build_training_plan(const TrainingPlanInput& in) {
  const ModelSpec& m = *in.model;
  const ClusterSpec& cl = *in.cluster;
  const PolicySpec& pol = *in.policy;
  const TrainingLayout& L = in.layout;
  const int N = L.ranks, E = L.experts, k = L.experts_per_device, G = L.group_size, P = L.pipeline_degree;
  const double T = static_cast<double>(in.workload->tokens_per_gpu());
  const double token_bytes = static_cast<double>(m.hidden) * m.dtype_bytes();
  const ModelCost cost = model_cost(m, T, static_cast<double>(in.workload->seq_len));
  const int layers = static_cast<int>(cost.layers.size());

  // Network classes: all-to-all and allreduce share links fairly; naive priority and Lina order launches instead
  // (DESIGN.md 3.1), and the ideal bound runs gradient synchronisation on a network of its own (sim/training_sim).
  const int a2a_class = 0, ar_class = 0;
  const bool micro_ops = pol.name == "lina" || pol.name == "lina-partition";

  Plan plan;
  plan.ranks = N;

  // Tokens rank r routes to expert e of MoE layer `mi` (balanced: T * top_k / E each), capped at the expert's
  // capacity per source rank when a capacity factor is set (tokens above it are dropped, as in GShard/DeepSpeed).
  auto routed_to = [&](int mi, int r, int e) {
    double t =
        in.routing.empty() ? T * m.top_k / E : in.routing[static_cast<size_t>(mi)][static_cast<size_t>(r) * E + e];
    if (m.capacity_factor > 0) t = std::min(t, expert_capacity(m, T));
    return t;
  };
  // DeepSpeed-MoE's dense dispatch (sched/flops.hpp) pads every [expert, capacity] buffer: capacity_factor * k * T /
  // E; dropless, the most tokens any rank sends to one expert (DeepSpeed all-reduces the max of the expert counts
  // over the group), k * T / E with balanced routing. Every rank then sends C tokens' worth to every expert and each
  // expert computes all of them, padding included (sched/inference_plan.hpp, layer_traffic).
  const bool dense = m.dense_dispatch;
  std::vector<double> dense_capacity;  // [MoE layer]
  for (int mi = 0; dense && mi < m.moe_layer_count(); ++mi) {
    double most = 0;
    for (int r = 0; r < N; ++r) {
      for (int e = 0; e < E; ++e) most = std::max(most, routed_to(mi, r, e));
    }
    dense_capacity.push_back(expert_capacity(m, T, most));
  }
  // Tokens from rank r to expert e of MoE layer `mi` as the all-to-all moves them.
  auto tokens_to = [&](int mi, int r, int e) {
    return dense ? dense_capacity[static_cast<size_t>(mi)] : routed_to(mi, r, e);
  };
  // Received tokens of each rank in a MoE layer (its experts' tokens from its group).
  auto received_tokens = [&](int mi, int r) {
    int g = r / G, pos = r % G;
    double t = 0;
    for (int src = g * G; src < (g + 1) * G; ++src) {
      for (int e = pos * k; e < (pos + 1) * k; ++e) t += tokens_to(mi, src, e);
    }
    return t;
  };

  // Backward costs twice the forward (DESIGN.md 2.5): `scale` is 1 forward, 2 backward.
  auto add_compute = [&](int r, const OpCost& op, double scale, Phase ph, int layer, Role role, int micro,
                         TaskDeps deps, int step) {
    Task t;
    t.rank = r;
    t.kind = TaskKind::kCompute;
    t.stream = Stream::kCompute;
    t.op = op.kind;
    t.flops = op.flops * scale;
    t.bytes = op.bytes * scale;
    t.phase = ph;
    t.layer = layer;
    t.role = role;
    t.micro_op = micro;
    t.deps = std::move(deps);
    t.step = step;
    return plan.add_task(std::move(t));
  };
  auto add_comm = [&](int r, int collective, Stream s, TaskDeps deps, int step) {
    return plan.add_comm_task(r, collective, s, std::move(deps), step);
  };

  // One all-to-all per expert-parallel group for chunk `chunk` of MoE layer `mi`; `reverse` transposes the matrix
  // (expert devices back to token owners).
  auto add_a2a = [&](int mi, int layer, int chunk, bool reverse, Phase ph, Role role, int g) {
    Collective c;
    c.kind = CommKind::kAllToAll;
    c.hierarchical = pol.hierarchical_a2a;
    c.priority_class = a2a_class;
    c.phase = ph;
    c.role = role;
    c.layer = layer;
    c.micro_op = P > 1 ? chunk : -1;
    c.bytes.assign(static_cast<size_t>(G) * G, 0.0);
    for (int i = 0; i < G; ++i) {
      for (int j = 0; j < G; ++j) {
        if (i == j) continue;  // tokens for the rank's own experts stay local
        double tok = 0;
        for (int e = j * k; e < (j + 1) * k; ++e) tok += tokens_to(mi, g * G + i, e);
        double b = tok * token_bytes / P;
        if (reverse) {
          c.bytes[static_cast<size_t>(j) * G + i] = b;
        } else {
          c.bytes[static_cast<size_t>(i) * G + j] = b;
        }
      }
    }
    for (int i = 0; i < G; ++i) c.ranks.push_back(g * G + i);
    c.links = link_classes(cl, c.ranks);
    return plan.add_collective(std::move(c));
  };
  const int groups = N / G;
  // A chain of operators on the compute stream of rank r; returns the last task.
  auto add_ops = [&](int r, const std::vector<OpCost>& ops, double scale, Phase ph, int layer, TaskDeps deps,
                     int step) {
    int last_task = -1;
    for (const auto& op : ops) {
      if (op.flops == 0 && op.bytes == 0) continue;
      last_task = add_compute(r, op, scale, ph, layer, Role::kOther, -1, std::move(deps), step);
      deps = {last_task};
    }
    return last_task;
  };
  // Expert weights that do not fit in GPU memory come from host memory over PCIe before each expert computation
  // (issued when the layer's gate or combine computation starts, so the load overlaps the all-to-all). The
  // gradients go back on the other direction of the full-duplex link and are not modelled as a separate transfer.
  const double offload_bytes = L.offloaded_share * k * cost.expert_param_bytes;
  auto add_host_load = [&](int r, int layer, Phase ph, int after, int step) {
    return offload_bytes > 0 ? plan.add_host_load(r, offload_bytes, Stream::kHost, ph, layer, {after}, step) : -1;
  };
  // Dense dispatch over this rank's T tokens, per MoE layer: [MoE layer] -> (masks, einsum), computed once for
  // every step and both passes.
  std::vector<std::pair<OpCost, OpCost>> dispatch_costs;
  for (double capacity : dense_capacity) {
    dispatch_costs.emplace_back(dense_dispatch_masks_cost(m, T, capacity), dense_dispatch_einsum_cost(m, T, capacity));
  }
  auto dispatch_cost = [&](int mi) {
    return dense ? dispatch_costs[static_cast<size_t>(mi)] : std::pair<OpCost, OpCost>{};
  };
  // Expert FFN of rank r on `tokens` received tokens spread over its k experts (one GEMM pair per expert).
  auto expert_cost = [&](double tokens) {
    OpCost c = expert_ffn_cost(m, tokens / k);
    c.flops *= k;
    c.bytes *= k;
    return c;
  };

  for (int step = 0; step < in.steps; ++step) {
    std::vector<int> last(static_cast<size_t>(N), -1);  // per rank: the task the next compute depends on
    std::vector<TaskDeps> pending(static_cast<size_t>(N));
    auto deps_of = [&](int r) {
      TaskDeps d = pending[static_cast<size_t>(r)];
      if (last[static_cast<size_t>(r)] >= 0) d.push_back(last[static_cast<size_t>(r)]);
      pending[static_cast<size_t>(r)].clear();
      return d;
    };

    // ---- forward ----
    for (int r = 0; r < N; ++r) {
      last[static_cast<size_t>(r)] =
          add_compute(r, cost.embedding, 1, Phase::kForward, -1, Role::kOther, -1, deps_of(r), step);
    }
    int mi = 0;
    for (int l = 0; l < layers; ++l) {
      const LayerCost& lc = cost.layers[static_cast<size_t>(l)];
      for (int r = 0; r < N; ++r) {
        last[static_cast<size_t>(r)] = add_ops(r, lc.other, 1, Phase::kForward, l, deps_of(r), step);
      }
      if (!lc.moe) {
        for (int r = 0; r < N; ++r) {
          last[static_cast<size_t>(r)] = add_ops(r, {lc.ffn}, 1, Phase::kForward, l, deps_of(r), step);
        }
        continue;
      }
      std::vector<int> gate(static_cast<size_t>(N)), encoded(static_cast<size_t>(N));
      const auto [dispatch_masks, dispatch_einsum] = dispatch_cost(mi);
      for (int r = 0; r < N; ++r) {
        gate[static_cast<size_t>(r)] =
            add_compute(r, lc.gate, 1, Phase::kForward, l, Role::kOther, -1, deps_of(r), step);
        // Shared experts run while the tokens travel.
        add_ops(r, {lc.ffn}, 1, Phase::kForward, l, {gate[static_cast<size_t>(r)]}, step);
        // Dense dispatch: the masks and the "sec,sm->ecm" einsum come between the gate and the all-to-all.
        encoded[static_cast<size_t>(r)] = dense ? add_ops(r, {dispatch_masks, dispatch_einsum}, 1, Phase::kForward, l,
                                                          {gate[static_cast<size_t>(r)]}, step)
                                                : gate[static_cast<size_t>(r)];
      }
      // All dispatch chunks are issued before the combines on the all-to-all stream, so that expert compute on
      // chunk c overlaps the dispatch of chunk c + 1 (pipelining; P = 1 is the plain sequence).
      std::vector<int> dispatch(static_cast<size_t>(P) * groups), combine(dispatch.size());
      for (int c = 0; c < P; ++c) {
        for (int g = 0; g < groups; ++g) {
          dispatch[static_cast<size_t>(c * groups + g)] = add_a2a(mi, l, c, false, Phase::kForward, Role::kDispatch, g);
          combine[static_cast<size_t>(c * groups + g)] = add_a2a(mi, l, c, true, Phase::kForward, Role::kCombine, g);
        }
      }
      for (int r = 0; r < N; ++r) {
        std::vector<int> d(static_cast<size_t>(P)), x(static_cast<size_t>(P));
        double tok = received_tokens(mi, r) / P;
        for (int c = 0; c < P; ++c) {
          d[static_cast<size_t>(c)] = add_comm(r, dispatch[static_cast<size_t>(c * groups + r / G)], Stream::kAllToAll,
                                               {encoded[static_cast<size_t>(r)]}, step);
        }
        const int load = add_host_load(r, l, Phase::kForward, gate[static_cast<size_t>(r)], step);
        for (int c = 0; c < P; ++c) {
          TaskDeps deps = {d[static_cast<size_t>(c)]};
          if (load >= 0) deps.push_back(load);
          x[static_cast<size_t>(c)] = add_compute(r, expert_cost(tok), 1, Phase::kForward, l, Role::kExpert,
                                                  P > 1 ? c : -1, std::move(deps), step);
        }
        for (int c = 0; c < P; ++c) {
          pending[static_cast<size_t>(r)].push_back(add_comm(r, combine[static_cast<size_t>(c * groups + r / G)],
                                                             Stream::kAllToAll, {x[static_cast<size_t>(c)]}, step));
        }
      }
      // Dense dispatch: the "sec,ecm->sm" einsum gathers the combined expert outputs back into token order.
      if (dense) {
        for (int r = 0; r < N; ++r) {
          last[static_cast<size_t>(r)] =
              add_compute(r, dispatch_einsum, 1, Phase::kForward, l, Role::kOther, -1, deps_of(r), step);
        }
      }
      ++mi;
    }
    for (int r = 0; r < N; ++r) {
      last[static_cast<size_t>(r)] = add_ops(r, cost.head, 1, Phase::kForward, -1, deps_of(r), step);
    }

    // ---- backward (2x the forward FLOPs) ----
    std::vector<GradEvent> grads;
    for (int r = 0; r < N; ++r) {
      std::vector<OpCost> head(cost.head.rbegin(), cost.head.rend());
      last[static_cast<size_t>(r)] = add_ops(r, head, 2, Phase::kBackward, -1, deps_of(r), step);
    }
    for (int l = layers - 1; l >= 0; --l) {
      const LayerCost& lc = cost.layers[static_cast<size_t>(l)];
      if (lc.moe) {
        --mi;
        const auto [dispatch_masks, dispatch_einsum] = dispatch_cost(mi);
        std::vector<int> pre(static_cast<size_t>(N));
        for (int r = 0; r < N; ++r) {
          // The combine's backward (gradient of the weighted sum of expert outputs): its start is where Lina stops
          // launching allreduce micro-ops on this device (DESIGN.md 3.1).
          // Dense dispatch: this is the backward of the "sec,ecm->sm" einsum (2x its forward).
          pre[static_cast<size_t>(r)] =
              dense ? add_compute(r, dispatch_einsum, 2, Phase::kBackward, l, Role::kPreAllToAll, -1, deps_of(r), step)
                    : add_compute(
                          r, OpCost{OpKind::kElementwise, 2 * T * m.top_k * m.hidden, 3 * T * m.top_k * token_bytes}, 1,
                          Phase::kBackward, l, Role::kPreAllToAll, -1, deps_of(r), step);
          add_ops(r, {lc.ffn}, 2, Phase::kBackward, l, {pre[static_cast<size_t>(r)]}, step);
        }
        std::vector<int> expert_last(static_cast<size_t>(N));
        std::vector<int> first(static_cast<size_t>(P) * groups), second(first.size());
        for (int c = 0; c < P; ++c) {
          for (int g = 0; g < groups; ++g) {
            first[static_cast<size_t>(c * groups + g)] = add_a2a(mi, l, c, false, Phase::kBackward, Role::kCombine, g);
            second[static_cast<size_t>(c * groups + g)] = add_a2a(mi, l, c, true, Phase::kBackward, Role::kDispatch, g);
          }
        }
        for (int r = 0; r < N; ++r) {
          std::vector<int> a(static_cast<size_t>(P)), x(static_cast<size_t>(P));
          double tok = received_tokens(mi, r) / P;
          for (int c = 0; c < P; ++c) {
            a[static_cast<size_t>(c)] = add_comm(r, first[static_cast<size_t>(c * groups + r / G)], Stream::kAllToAll,
                                                 {pre[static_cast<size_t>(r)]}, step);
          }
          const int load = add_host_load(r, l, Phase::kBackward, pre[static_cast<size_t>(r)], step);
          for (int c = 0; c < P; ++c) {
            TaskDeps deps = {a[static_cast<size_t>(c)]};
            if (load >= 0) deps.push_back(load);
            x[static_cast<size_t>(c)] = add_compute(r, expert_cost(tok), 2, Phase::kBackward, l, Role::kExpert,
                                                    P > 1 ? c : -1, std::move(deps), step);
          }
          expert_last[static_cast<size_t>(r)] = x.back();
          for (int c = 0; c < P; ++c) {
            pending[static_cast<size_t>(r)].push_back(add_comm(r, second[static_cast<size_t>(c * groups + r / G)],
                                                               Stream::kAllToAll, {x[static_cast<size_t>(c)]}, step));
          }
        }
        if (L.replicas > 1) grads.push_back(GradEvent{expert_last, k * lc.expert_grad_bytes, true, l});
        for (int r = 0; r < N; ++r) {
          // Dense dispatch: backward of the "sec,sm->ecm" einsum and of the masks (gradients of the gate weights).
          TaskDeps deps = deps_of(r);
          if (dense) deps = {add_ops(r, {dispatch_einsum, dispatch_masks}, 2, Phase::kBackward, l, deps, step)};
          last[static_cast<size_t>(r)] = add_compute(r, lc.gate, 2, Phase::kBackward, l, Role::kOther, -1, deps, step);
        }
      } else {
        for (int r = 0; r < N; ++r) {
          last[static_cast<size_t>(r)] = add_ops(r, {lc.ffn}, 2, Phase::kBackward, l, deps_of(r), step);
        }
      }
      for (int r = 0; r < N; ++r) {
        std::vector<OpCost> reversed(lc.other.rbegin(), lc.other.rend());
        last[static_cast<size_t>(r)] = add_ops(r, reversed, 2, Phase::kBackward, l, deps_of(r), step);
      }
      for (double b : lc.grad_tensor_bytes) grads.push_back(GradEvent{last, b, false, l});
    }
    for (double b : cost.embedding_grad_bytes) grads.push_back(GradEvent{last, b, false, -1});

    // ---- gradient synchronisation ----
    // Non-expert gradients over all ranks; expert gradients among the replicas of each expert (ranks at the same
    // position of every expert-parallel group). DDP buckets fuse tensors until bucket_size; Lina cuts each tensor
    // into equal micro-ops and never fuses.
    std::vector<int> last_sync(static_cast<size_t>(N), -1);
    int micro_index = 0;
    // The data-parallel groups: every rank for the non-expert parameters; for the experts, the ranks at the same
    // position of every expert-parallel group (an expert's replicas).
    const std::vector<std::vector<int>> all_ranks = [&] {
      std::vector<int> s(static_cast<size_t>(N));
      for (int r = 0; r < N; ++r) s[static_cast<size_t>(r)] = r;
      return std::vector<std::vector<int>>{s};
    }();
    const std::vector<std::vector<int>> replica_sets = [&] {
      std::vector<std::vector<int>> sets;
      for (int pos = 0; pos < G; ++pos) {
        std::vector<int> s;
        for (int g = 0; g < groups; ++g) s.push_back(g * G + pos);
        sets.push_back(std::move(s));
      }
      return sets;
    }();
    // A gradient-synchronisation collective (GradSync role, the allreduce class) over `members`.
    auto sync_collective = [&](CommKind kind, const std::vector<int>& members, double bytes, Phase phase) {
      Collective c;
      c.kind = kind;
      c.ranks = members;
      c.links = link_classes(cl, members);
      c.bytes = {bytes};
      c.priority_class = ar_class;
      c.phase = phase;
      c.role = Role::kGradSync;
      return c;
    };
    auto emit = [&](const std::vector<int>& ready, double bytes, bool expert, int layer) {
      for (const auto& members : expert ? replica_sets : all_ranks) {
        // ZeRO-1: each rank keeps only its shard of the reduced gradients.
        Collective c = sync_collective(pol.zero_stage >= 1 ? CommKind::kReduceScatter : CommKind::kAllReduce, members,
                                       bytes, Phase::kBackward);
        c.layer = layer;
        c.micro_op = micro_index;
        int id = plan.add_collective(std::move(c));
        for (int r : members) {
          last_sync[static_cast<size_t>(r)] =
              add_comm(r, id, Stream::kAllReduce, {ready[static_cast<size_t>(r)]}, step);
        }
      }
      ++micro_index;
    };
    // Gradients are synchronised in the order they become ready, expert and non-expert interleaved (each kind
    // has its own buckets, as they reduce over different groups), so expert gradients overlap the rest of the
    // backward pass instead of waiting behind every non-expert bucket on the allreduce stream.
    struct Bucket {
      double bytes = 0;
      std::vector<int> ready;
      int layer = -1;
    };
    Bucket buckets[2];
    for (const auto& ev : grads) {
      if (micro_ops && pol.micro_op_fusion) {
        // BytePS-style: gradients of one kind flow into a buffer in readiness order; each full micro_op_bytes is
        // a micro-op, ready when its last byte is.
        Bucket& b = buckets[ev.expert ? 1 : 0];
        b.bytes += ev.bytes;
        while (b.bytes >= pol.micro_op_bytes) {
          emit(ev.ready, pol.micro_op_bytes, ev.expert, ev.layer);
          b.bytes -= pol.micro_op_bytes;
        }
        b.ready = ev.ready;
        b.layer = ev.layer;
        continue;
      }
      if (micro_ops) {
        for (double chunk : partition(ev.bytes, pol.micro_op_bytes)) emit(ev.ready, chunk, ev.expert, ev.layer);
        continue;
      }
      Bucket& b = buckets[ev.expert ? 1 : 0];
      b.bytes += ev.bytes;
      b.ready = ev.ready;
      b.layer = ev.layer;
      if (b.bytes >= pol.bucket_bytes) {
        emit(b.ready, b.bytes, ev.expert, b.layer);
        b.bytes = 0;
      }
    }
    for (bool expert : {false, true}) {
      Bucket& b = buckets[expert ? 1 : 0];
      if (b.bytes > 0) emit(b.ready, b.bytes, expert, b.layer);
    }

    // ---- optimizer (Adam: reads and writes fp32 params, grads and two moments) ----
    // ZeRO-1: each rank updates its shard, 1/N of the non-expert parameters and 1/replicas of its experts'.
    const bool zero = pol.zero_stage >= 1;
    const double replicated = cost.replicated_param_bytes, experts = k * cost.expert_param_bytes * m.moe_layer_count();
    double params = (zero ? replicated / N + experts / L.replicas : replicated + experts) / m.dtype_bytes();
    for (int r = 0; r < N; ++r) {
      TaskDeps d = deps_of(r);
      if (last_sync[static_cast<size_t>(r)] >= 0) d.push_back(last_sync[static_cast<size_t>(r)]);
      last[static_cast<size_t>(r)] = add_compute(r, OpCost{OpKind::kElementwise, 12 * params, 32 * params}, 1,
                                                 Phase::kStep, -1, Role::kOther, -1, std::move(d), step);
    }
    // ZeRO-1: the updated weights are all-gathered over the same groups as the gradients, which ends the step
    // (DeepSpeed's stage 1 gathers them in step(), before the next forward pass may start).
    if (zero) {
      auto gather = [&](const std::vector<int>& members, double bytes) {
        const int id = plan.add_collective(sync_collective(CommKind::kAllGather, members, bytes, Phase::kStep));
        for (int r : members) {
          last[static_cast<size_t>(r)] = add_comm(r, id, Stream::kAllReduce, deps_of(r), step);
        }
      };
      if (N > 1 && replicated > 0) gather(all_ranks[0], replicated);
      if (L.replicas > 1 && experts > 0) {
        for (const auto& members : replica_sets) gather(members, experts);
      }
    }
  }
  return plan;
}

}  // namespace lina
