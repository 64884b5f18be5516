#include "sched/inference_plan.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace lina {

std::vector<double> rank_expert_counts(const BatchRouting& b, int layer, int E, int N) {
  std::vector<double> c(static_cast<size_t>(N) * static_cast<size_t>(E), 0.0);
  // Token t is on rank floor(t N / T): rank r holds tokens ceil(r T / N) .. ceil((r + 1) T / N) - 1 (no division per
  // token, which was most of this loop).
  const int64_t T = b.tokens;
  for (int r = 0; r < N; ++r) {
    const int64_t first = (r * T + N - 1) / N, end = ((r + 1) * T + N - 1) / N;
    double* row = c.data() + static_cast<size_t>(r) * static_cast<size_t>(E);
    for (int64_t t = first; t < end; ++t) {
      if (!b.recorded(layer, static_cast<int>(t))) continue;
      for (uint16_t e : b.choices(layer, static_cast<int>(t))) {
        if (e != kNoExpert && e < E) row[e] += 1;
      }
    }
  }
  return c;
}

namespace {

// The ideal gate's split of a source's tokens: evenly over every device, or over the source's expert-parallel group
// when the placement has DeepSpeed's groups (the same even load per device, without leaving the group). Calls
// f(device, ways): the device gets 1/ways of the tokens.
template <class F>
void even_targets(const Placement& p, int source, int N, F&& f) {
  const int G = p.group_size > 0 ? p.group_size : N;
  const int first = source / G * G;
  for (int j = first; j < first + G; ++j) f(j, G);
}

}  // namespace

std::vector<double> drop_over_capacity(std::vector<double>& counts, const ModelSpec& m, int N) {
  if (!(m.capacity_factor > 0)) return {};
  const int E = m.experts;
  std::vector<double> dropped(static_cast<size_t>(N), 0.0);
  for (int r = 0; r < N; ++r) {
    const auto row = counts.begin() + static_cast<std::ptrdiff_t>(r) * E;
    const double cap = expert_capacity(m, std::accumulate(row, row + E, 0.0) / m.top_k);
    for (auto c = row; c != row + E; ++c) {
      if (*c > cap) {
        dropped[static_cast<size_t>(r)] += *c - cap;
        *c = cap;
      }
    }
  }
  return dropped;
}

LayerTraffic layer_traffic(const std::vector<double>& counts, const LayerDecision& d, int N, int E, bool dense,
                           double min_capacity) {
  LayerTraffic t;
  t.tokens.assign(static_cast<size_t>(N) * N, 0.0);
  t.work.assign(static_cast<size_t>(N) * E, 0.0);
  for (int i = 0; i < N; ++i) {
    for (int e = 0; e < E; ++e) {
      const double c = counts[static_cast<size_t>(i) * E + e];
      if (c == 0) continue;
      if (d.even_split) {
        // The ideal gate: every device computes an even share of all tokens as one expert's batch (one GEMM pair).
        even_targets(d.placement, i, N, [&](int j, int ways) {
          t.tokens[static_cast<size_t>(i) * N + j] += c / ways;
          t.work[static_cast<size_t>(j) * E + j % E] += c / ways;
        });
        continue;
      }
      d.placement.targets(i, e, [&](int j, double share) {
        t.tokens[static_cast<size_t>(i) * N + j] += c * share;
        t.work[static_cast<size_t>(j) * E + e] += c * share;
      });
    }
  }
  if (!dense) return t;
  // Buffers: from every source to every device that holds an expert (every device under the even split), or, with
  // DeepSpeed's expert-parallel groups, to those of the source's group.
  std::vector<char> holds(static_cast<size_t>(N), d.even_split ? 1 : 0);
  if (!d.even_split) {
    for (const auto& reps : d.placement.replicas) {
      for (int j : reps) holds[static_cast<size_t>(j)] = 1;
    }
  }
  const int G = d.placement.group_size;
  auto addressed = [&](int i, int j) { return holds[static_cast<size_t>(j)] && (G == 0 || i / G == j / G); };
  double most = 0;
  for (double x : t.tokens) most = std::max(most, x);
  t.capacity = std::max(std::ceil(most), min_capacity);
  for (int i = 0; i < N; ++i) {
    int n = 0;
    for (int j = 0; j < N; ++j) n += addressed(i, j);
    t.slots = std::max(t.slots, n);
  }
  for (int j = 0; j < N; ++j) {
    if (!holds[static_cast<size_t>(j)]) continue;
    int senders = 0;
    for (int i = 0; i < N; ++i) {
      if (!addressed(i, j)) continue;
      t.tokens[static_cast<size_t>(i) * N + j] = t.capacity;
      ++senders;
    }
    // The device computes senders * C rows, shared among its experts as their routed tokens are (padding included).
    const double rows = senders * t.capacity;
    const auto row = t.work.begin() + static_cast<std::ptrdiff_t>(j) * E;
    double sum = 0;
    for (int e = 0; e < E; ++e) sum += row[e];
    if (sum > 0) {
      for (int e = 0; e < E; ++e) row[e] *= rows / sum;
    } else {
      const int e = d.even_split ? j % E : d.placement.hosted()[static_cast<size_t>(j)].front();
      row[e] = rows;
    }
  }
  return t;
}

Plan build_inference_plan(const InferenceBatchInput& in) {
  const ModelSpec& m = *in.model;
  const ModelCost& cost = *in.cost;
  const int N = in.ranks, E = m.experts;
  const double token_bytes = static_cast<double>(m.hidden) * m.dtype_bytes();
  const int layers = static_cast<int>(cost.layers.size());
  if (static_cast<int>(in.counts.size()) != m.moe_layer_count() || in.decisions.size() != in.counts.size()) {
    throw std::logic_error("build_inference_plan: one routing and one decision per MoE layer expected");
  }
  Plan plan;
  plan.ranks = N;
  // About the tasks a rank has per layer (its dense operators, the gate, dispatch and combine, the host work), so
  // that the task list rarely grows.
  size_t per_rank = 2 + cost.head.size();
  for (const LayerCost& lc : cost.layers) per_rank += lc.other.size() + (lc.moe ? 10 : 1);
  plan.tasks.reserve(per_rank * static_cast<size_t>(N));
  std::vector<TaskDeps> deps(static_cast<size_t>(N));  // what the next compute of each rank waits for

  auto add = [&](Task&& t) { return plan.add_task(std::move(t)); };
  auto compute = [&](int r, const OpCost& op, int layer, Role role) {
    Task t;
    t.rank = r;
    t.kind = TaskKind::kCompute;
    t.stream = Stream::kCompute;
    t.op = op.kind;
    t.flops = op.flops;
    t.bytes = op.bytes;
    t.layer = layer;
    t.role = role;
    t.deps = std::move(deps[static_cast<size_t>(r)]);
    int id = add(std::move(t));
    deps[static_cast<size_t>(r)].assign(1, id);  // assign, not = {id}: no temporary list copied in
    return id;
  };
  auto chain = [&](int r, const std::vector<OpCost>& ops, int layer) {
    for (const auto& op : ops) {
      if (op.flops == 0 && op.bytes == 0) continue;
      compute(r, op, layer, Role::kOther);
    }
  };
  auto host = [&](int r, double seconds, int layer, TaskDeps d) {
    Task t;
    t.rank = r;
    t.kind = TaskKind::kHost;
    t.stream = Stream::kHost;
    t.host_seconds = seconds;
    t.layer = layer;
    t.deps = std::move(d);
    return add(std::move(t));
  };
  // Weight loads of one rank (host memory -> GPU over PCIe), one transfer for all its missing experts.
  auto loads = [&](int r, const std::vector<std::pair<int, int>>& missing, int layer, TaskDeps d) {
    int n = 0;
    for (const auto& [dev, e] : missing) n += dev == r;
    if (n == 0) return -1;
    // On the allreduce stream, which inference does not otherwise use.
    return plan.add_host_load(r, n * in.expert_param_bytes, Stream::kAllReduce, Phase::kForward, layer, std::move(d));
  };

  for (int r = 0; r < N; ++r) {
    compute(r, cost.embedding, -1, Role::kOther);
  }
  std::vector<TaskDeps> phase1(static_cast<size_t>(N));  // per rank: Phase 1 tasks of the next MoE layer
  int mi = 0;
  for (int l = 0; l < layers; ++l) {
    const LayerCost& lc = cost.layers[static_cast<size_t>(l)];
    for (int r = 0; r < N; ++r) chain(r, lc.other, l);
    if (!lc.moe) {
      for (int r = 0; r < N; ++r) chain(r, {lc.ffn}, l);
      continue;
    }
    const LayerDecision& dec = in.decisions[static_cast<size_t>(mi)];
    const std::vector<double>& counts = in.counts[static_cast<size_t>(mi)];
    // The most tokens a rank has (dropped ones included): the einsums' S, and the capacity's.
    const std::vector<double>* dropped = in.dropped.empty() ? nullptr : &in.dropped[static_cast<size_t>(mi)];
    double tokens = 0;
    for (int i = 0; i < N; ++i) {
      double t = dropped ? (*dropped)[static_cast<size_t>(i)] : 0.0;
      for (int e = 0; e < E; ++e) t += counts[static_cast<size_t>(i) * E + e];
      tokens = std::max(tokens, t / m.top_k);
    }
    const double capacity_floor = m.capacity_factor > 0 ? expert_capacity(m, tokens) : 0.0;
    const LayerTraffic traffic = layer_traffic(counts, dec, N, E, m.dense_dispatch, capacity_floor);
    const std::vector<double>& work = traffic.work;

    // Dispatch: rank i sends its tokens for expert e to e's replicas (or to every device, ideal); combine: back.
    Collective disp;
    disp.kind = CommKind::kAllToAll;
    disp.hierarchical = in.hierarchical_a2a;
    disp.role = Role::kDispatch;
    disp.layer = l;
    disp.bytes.assign(static_cast<size_t>(N) * N, 0.0);
    for (int i = 0; i < N; ++i) {
      disp.ranks.push_back(i);
      for (int j = 0; j < N; ++j) {
        if (i != j)
          disp.bytes[static_cast<size_t>(i) * N + j] = traffic.tokens[static_cast<size_t>(i) * N + j] * token_bytes;
      }
    }
    Collective comb = disp;
    comb.role = Role::kCombine;
    for (int i = 0; i < N; ++i) {
      for (int j = 0; j < N; ++j)
        comb.bytes[static_cast<size_t>(j) * N + i] = disp.bytes[static_cast<size_t>(i) * N + j];
    }
    const int disp_id = plan.add_collective(std::move(disp));
    const int comb_id = plan.add_collective(std::move(comb));

    // Dense dispatch (DeepSpeed-MoE, sched/flops.hpp): the masks and the "sec,sm->ecm" einsum over the padded
    // buffers (the capacity of layer_traffic), over all of the rank's tokens.
    OpCost dispatch_masks, dispatch_einsum;
    if (m.dense_dispatch) {
      dispatch_masks = dense_dispatch_masks_cost(m, tokens, traffic.capacity, traffic.slots);
      dispatch_einsum = dense_dispatch_einsum_cost(m, tokens, traffic.capacity, traffic.slots);
    }
    for (int r = 0; r < N; ++r) {
      const auto rs = static_cast<size_t>(r);
      const int gate = compute(r, lc.gate, l, Role::kOther);
      // Scheduling after the gate (Phase 2's check or a reschedule) blocks the dispatch: the dense dispatch's
      // masks and einsum lay tokens out by destination device (which copy of an expert gets which rows, and the
      // capacity C), so they wait for the final placement too.
      TaskDeps before_dispatch;
      int blocking = -1;
      if (dec.blocking_seconds > 0) {
        blocking = host(r, dec.blocking_seconds, l, {gate});
        deps[rs].push_back(blocking);
        before_dispatch.push_back(blocking);
      }
      int encoded = gate;
      if (m.dense_dispatch) {
        compute(r, dispatch_masks, l, Role::kOther);
        encoded = compute(r, dispatch_einsum, l, Role::kOther);
      }
      before_dispatch.push_back(encoded);
      for (int t : phase1[rs]) before_dispatch.push_back(t);
      phase1[rs].clear();
      if (!dec.blocking_loads.empty()) {
        int ld = loads(r, dec.blocking_loads, l, {blocking >= 0 ? blocking : gate});
        if (ld >= 0) before_dispatch.push_back(ld);
      }
      // Phase 1 for the next MoE layer: from this gate's output, overlapped with this layer.
      if (dec.next_phase1_seconds > 0) {
        int h = host(r, dec.next_phase1_seconds, l, {gate});
        phase1[rs].push_back(h);
        int ld = loads(r, dec.next_phase1_loads, l, {h});
        if (ld >= 0) phase1[rs].push_back(ld);
      }
      // Shared experts (every token) run while the tokens travel.
      TaskDeps after;
      if (lc.ffn.flops > 0 || lc.ffn.bytes > 0) {
        Task t;
        t.rank = r;
        t.kind = TaskKind::kCompute;
        t.stream = Stream::kCompute;
        t.op = lc.ffn.kind;
        t.flops = lc.ffn.flops;
        t.bytes = lc.ffn.bytes;
        t.layer = l;
        t.deps = {gate};
        after.push_back(add(std::move(t)));
      }
      const int dispatch = plan.add_comm_task(r, disp_id, Stream::kAllToAll, std::move(before_dispatch));
      deps[rs].assign(1, dispatch);
      // Packed experts run one after another; an expert without tokens costs nothing.
      bool any = false;
      for (int e = 0; e < E; ++e) {
        double tok = work[rs * E + e];
        if (tok <= 0) continue;
        compute(r, expert_ffn_cost(m, tok), l, Role::kExpert);
        any = true;
      }
      const int combine = plan.add_comm_task(r, comb_id, Stream::kAllToAll, any ? deps[rs] : TaskDeps{dispatch});
      deps[rs].assign(1, combine);
      for (int a : after) deps[rs].push_back(a);
      if (m.dense_dispatch) compute(r, dispatch_einsum, l, Role::kOther);  // "sec,ecm->sm" after the combine
    }
    ++mi;
  }
  for (int r = 0; r < N; ++r) chain(r, cost.head, -1);
  return plan;
}

}  // namespace lina
