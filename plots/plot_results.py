#!/usr/bin/python3
"""Draws the standard plots of a `lina run` output folder (reads results.json, schema lina.results/1).

Training: step time per policy (grouped by sweep point, as the Lina paper's Figure 10) with the all-to-all and
allreduce time beside it, and (with several points) each policy's speedup over the first policy along the sweep,
as a curve (the micro-op size sweep, the sensitivity sweep). Inference: median, p95 and p99 latency per policy, and for the first point the latency CDF,
the per-layer tail all-to-all and the expert popularity heatmap. Writes PNG files next to results.json.
Uses matplotlib from Debian (python3-matplotlib); the Agg backend, so no display is needed.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def value_label(v):
    """A sweep value for a tick label: a swept object (a whole model or cluster) by its name, as `lina run` prints it."""
    if isinstance(v, dict):
        return v.get("name", json.dumps(v, sort_keys=True))
    return v


def main(out_dir):
    with open(os.path.join(out_dir, "results.json")) as f:
        res = json.load(f)
    if res.get("schema") != "lina.results/1":
        sys.exit(f"plot_results: {out_dir}/results.json: unsupported schema {res.get('schema')!r}")
    points = res["points"]
    training = res["mode"] == "training"
    # (metric, panel title, scale, unit)
    metrics = (
        [("step_time_s", "step", 1e3, "ms"), ("a2a_time_s", "all-to-all", 1e3, "ms"),
         ("allreduce_time_s", "allreduce", 1e3, "ms")]
        if training
        else [("latency_p50_s", "median", 1e3, "ms"), ("latency_p95_s", "p95", 1e3, "ms"),
              ("latency_p99_s", "p99", 1e3, "ms")]
    )
    # With a price per GPU-hour (cluster.price_usd_per_gpu_hour) the cost is what a comparison of clusters is about.
    if any("usd_per_million_tokens" in q["metrics"] for p in points for q in p["policies"]):
        metrics.append(("usd_per_million_tokens", "cost", 1.0, "USD per million tokens"))
    policies = [p["policy"] for p in points[0]["policies"]]
    # Up to 4 points the panels sit side by side; beyond, one above the other with the point labels once, below, so
    # that a sweep of many points (or of long names) keeps its labels readable.
    stacked = len(points) > 4
    if stacked:
        fig, grid = plt.subplots(len(metrics), 1, figsize=(max(6.0, 1.2 * len(points)), 2.6 * len(metrics)),
                                 sharex=True, squeeze=False)
        axes = [row[0] for row in grid]
    else:
        fig, grid = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
        axes = list(grid[0])
    width = 0.8 / max(1, len(policies))
    # One line per swept path: "bandwidth=100Gbps" over "model=Mixtral-8x7B".
    labels = ["\n".join(f"{k.split('.')[-1]}={value_label(v)}" for k, v in p["params"].items()) or res["experiment"]
              for p in points]
    for n, (ax, (key, title, scale, unit)) in enumerate(zip(axes, metrics)):
        for i, pol in enumerate(policies):
            xs, ys = [], []
            for j, p in enumerate(points):
                m = next(q for q in p["policies"] if q["policy"] == pol)["metrics"]
                xs.append(j + (i - (len(policies) - 1) / 2) * width)
                ys.append(m.get(key, 0) * scale)
            ax.bar(xs, ys, width, label=pol)
        ax.set_xticks(range(len(points)))
        if not stacked or n == len(metrics) - 1:
            ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(f"{title} ({unit})")
        ax.set_title(title)
    # One legend for the figure, to the right of the panels: inside a panel it covers the tallest bars.
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.suptitle(f"{res['experiment']} ({res['mode']})")
    fig.tight_layout()
    save(fig, os.path.join(out_dir, "results.png"))
    if training:
        if len(points) > 1 and len(policies) > 1:  # one policy has no speedup to draw
            speedup_curve(res, points, policies, labels, out_dir)
        import plot_timeline

        # Only this run's policies: an output folder reused by an earlier run may hold other timelines.
        for pol in policies:
            path = os.path.join(out_dir, f"timeline-{pol}.json")
            if os.path.exists(path):
                plot_timeline.main(path, path[: -len(".json")] + ".png")
    else:
        inference_plots(res, out_dir)


def speedup_curve(res, points, policies, labels, out_dir):
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(points)), 3.6))
    first = policies[0]
    for pol in policies[1:]:
        ys = []
        for p in points:
            by = {q["policy"]: q["metrics"] for q in p["policies"]}
            ys.append(by[first]["step_time_s"] / by[pol]["step_time_s"] if by[pol]["step_time_s"] > 0 else 0)
        ax.plot(range(len(points)), ys, marker="o", label=pol)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(points)))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"speedup over {first} (step time)")
    ax.legend(fontsize=8)
    fig.suptitle(f"{res['experiment']}: speedup along the sweep")
    fig.tight_layout()
    save(fig, os.path.join(out_dir, "speedup.png"))


def save(fig, path):
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=120, bbox_inches="tight")  # keeps a legend placed beside the panels
    os.replace(tmp, path)
    plt.close(fig)
    print(f"plot_results: wrote {path}")


def inference_plots(res, out_dir):
    """First point: latency CDF per policy, per-layer tail all-to-all, expert popularity heatmap (layer x expert)."""
    point = res["points"][0]
    pols = point["policies"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for p in pols:
        lat = sorted(json.loads(p["notes"].get("latency_s", "[]")))
        if lat:
            ys = [(i + 1) / len(lat) for i in range(len(lat))]
            ax.step([x * 1e3 for x in lat], ys, where="post", label=p["policy"])
    ax.set_xlabel("batch latency (ms)")
    ax.set_ylabel("CDF")
    ax.legend(fontsize=7)
    ax.set_title("latency CDF")
    fig.tight_layout()
    save(fig, os.path.join(out_dir, "latency_cdf.png"))

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for p in pols:
        tail = json.loads(p["notes"].get("a2a_tail_per_layer_s", "[]"))
        if tail:
            ax.plot(range(len(tail)), [x * 1e3 for x in tail], marker="o", ms=3, label=p["policy"])
    ax.set_xlabel("MoE layer")
    ax.set_ylabel("tail all-to-all (ms)")
    ax.legend(fontsize=7)
    ax.set_title("per-layer tail all-to-all (p95)")
    fig.tight_layout()
    save(fig, os.path.join(out_dir, "a2a_tail_per_layer.png"))

    pop = json.loads(pols[0]["notes"].get("popularity", "[]"))
    if pop:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        im = ax.imshow(pop, aspect="auto", cmap="viridis")
        ax.set_xlabel("expert")
        ax.set_ylabel("MoE layer")
        ax.set_title("mean tokens per expert")
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        save(fig, os.path.join(out_dir, "popularity.png"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: plot_results.py RESULTS_DIR")
    main(sys.argv[1])
