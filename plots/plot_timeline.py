#!/usr/bin/python3
"""Draws the backward pass of the last training step on GPU 0 from a timeline-<policy>.json (the Chrome/Perfetto
trace `lina run` writes): one row per stream (compute, all-to-all, allreduce, host), a bar per task. Shows at a
glance whether allreduce overlaps the all-to-alls (deepspeed) or waits for the gaps between them (lina).

usage: plot_timeline.py TIMELINE.json [OUT.png]
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STREAMS = ["compute", "all-to-all", "allreduce", "host"]
COLOURS = {"compute": "#4c72b0", "all-to-all": "#dd8452", "allreduce": "#55a868", "host": "#8172b3"}


def backward_events(path):
    with open(path) as f:
        events = json.load(f)["traceEvents"]
    # GPU 0: node 0 (pid 0), threads 0..3 (stream = tid % 8).
    gpu0 = [e for e in events if e.get("ph") == "X" and e.get("pid") == 0 and e.get("tid", 99) < 8]
    gpu0.sort(key=lambda e: e["ts"])
    # The last step's backward: from the first "bwd" task after the last forward task to the end.
    last_fwd = max((i for i, e in enumerate(gpu0) if e["name"].startswith("fwd")), default=-1)
    bwd = [e for e in gpu0[last_fwd + 1:] if e["name"].startswith("bwd")]
    return bwd


def main(path, out):
    bwd = backward_events(path)
    if not bwd:
        sys.exit(f"plot_timeline: {path}: no backward tasks on GPU 0")
    t0 = min(e["ts"] for e in bwd)
    fig, ax = plt.subplots(figsize=(10, 2.6))
    for e in bwd:
        stream = STREAMS[e["tid"] % 8] if e["tid"] % 8 < len(STREAMS) else "?"
        row = STREAMS.index(stream) if stream in STREAMS else len(STREAMS)
        ax.broken_barh([((e["ts"] - t0) / 1e3, e["dur"] / 1e3)], (row - 0.4, 0.8), color=COLOURS.get(stream, "grey"))
    ax.set_yticks(range(len(STREAMS)))
    ax.set_yticklabels(STREAMS)
    ax.invert_yaxis()
    ax.set_xlabel("time since the backward pass started (ms)")
    policy = os.path.basename(path)[len("timeline-"):-len(".json")]
    ax.set_title(f"{policy}: backward pass of the last step, GPU 0")
    fig.tight_layout()
    tmp = out + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, out)
    plt.close(fig)
    print(f"plot_timeline: wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: plot_timeline.py TIMELINE.json [OUT.png]")
    src = sys.argv[1]
    main(src, sys.argv[2] if len(sys.argv) == 3 else src[: -len(".json")] + ".png")
