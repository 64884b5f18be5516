#!/usr/bin/python3
"""Draws the standard plots of a `lina run` output folder (reads results.json, schema lina.results/1).

Training: step time per policy (grouped by sweep point, as the Lina paper's Figure 10) with the all-to-all and
allreduce time beside it. Inference: median and p95 latency per policy. Writes PNG files next to results.json.
Uses matplotlib from Debian (python3-matplotlib); the Agg backend, so no display is needed.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(out_dir):
    with open(os.path.join(out_dir, "results.json")) as f:
        res = json.load(f)
    if res.get("schema") != "lina.results/1":
        sys.exit(f"plot_results: {out_dir}/results.json: unsupported schema {res.get('schema')!r}")
    points = res["points"]
    training = res["mode"] == "training"
    metrics = (
        [("step_time_s", "step"), ("a2a_time_s", "all-to-all"), ("allreduce_time_s", "allreduce")]
        if training
        else [("latency_p50_s", "median"), ("latency_p95_s", "p95"), ("latency_p99_s", "p99")]
    )
    policies = [p["policy"] for p in points[0]["policies"]]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    width = 0.8 / max(1, len(policies))
    labels = [",".join(f"{k.split('.')[-1]}={v}" for k, v in p["params"].items()) or res["experiment"] for p in points]
    for ax, (key, title) in zip(axes[0], metrics):
        for i, pol in enumerate(policies):
            xs, ys = [], []
            for j, p in enumerate(points):
                m = next(q for q in p["policies"] if q["policy"] == pol)["metrics"]
                xs.append(j + (i - (len(policies) - 1) / 2) * width)
                ys.append(m.get(key, 0) * 1e3)
            ax.bar(xs, ys, width, label=pol)
        ax.set_xticks(range(len(points)))
        ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(f"{title} (ms)")
        ax.set_title(title)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{res['experiment']} ({res['mode']})")
    fig.tight_layout()
    path = os.path.join(out_dir, "results.png")
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)
    print(f"plot_results: wrote {path}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: plot_results.py RESULTS_DIR")
    main(sys.argv[1])
