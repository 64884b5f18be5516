#!/usr/bin/env bash
# Builds every bench/bench_*.cpp in a Release build folder, runs each benchmark in its own process (so that peak RSS
# is that benchmark's) and prints one table: wall and CPU time per iteration, events/s and flows/s (per CPU second,
# Google Benchmark's rate counters), peak RSS. On a shared machine wall time includes waiting for a core.
#
# usage: bench/run.sh [REGEX]  (matched against PROGRAM/BENCHMARK; env: BUILD_DIR=build-bench, JOBS=2)
# Counters a benchmark does not report (events_per_s, flows_per_s) are shown as "-". Peak RSS comes from
# /usr/bin/time when it exists, else from the benchmark's own peak_rss_mb counter.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-bench}
JOBS=${JOBS:-2}
FILTER=${1:-.}

progs=()
for src in bench/bench_*.cpp; do progs+=("$(basename "$src" .cpp)"); done
[ ${#progs[@]} -gt 0 ] || { echo "no bench/bench_*.cpp" >&2; exit 1; }

if [ -f "$BUILD_DIR/CMakeCache.txt" ]; then
  # An existing build folder (e.g. BUILD_DIR=build): keep its options, but it must be a Release build.
  cmake -S . -B "$BUILD_DIR" >/dev/null
  grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$BUILD_DIR/CMakeCache.txt" ||
    echo "warning: $BUILD_DIR is not a Release build; numbers are not comparable" >&2
else
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLINA_BUILD_TESTS=OFF -DLINA_BUILD_BENCH=ON >/dev/null
fi
ninja -C "$BUILD_DIR" -j "$JOBS" "${progs[@]}" >/dev/null

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
have_time=0
[ -x /usr/bin/time ] && have_time=1
n=0
for p in "${progs[@]}"; do
  exe="$BUILD_DIR/bench/$p"
  while IFS= read -r name; do
    [ -n "$name" ] || continue
    [[ "$p/$name" =~ $FILTER ]] || continue
    n=$((n + 1))
    out="$results/$n.json"
    esc=${name//./\\.}  # benchmark names hold letters, digits, _ / : and at most dots
    filter="^${esc}\$"
    if [ $have_time = 1 ]; then
      /usr/bin/time -f '%M' -o "$results/$n.rss" "$exe" --benchmark_filter="$filter" --benchmark_format=json \
        >"$out" 2>/dev/null
    else
      "$exe" --benchmark_filter="$filter" --benchmark_format=json >"$out" 2>/dev/null
    fi
    echo "$p" >"$results/$n.prog"
  done < <("$exe" --benchmark_list_tests 2>/dev/null)
done

python3 - "$results" "$n" <<'PY'
import json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
rows = []
for i in range(1, n + 1):
    with open(os.path.join(d, f"{i}.json")) as f:
        j = json.load(f)
    prog = open(os.path.join(d, f"{i}.prog")).read().strip()
    rss_kb = None
    p = os.path.join(d, f"{i}.rss")
    if os.path.exists(p):
        try:
            rss_kb = float(open(p).read().split()[-1])
        except (ValueError, IndexError):
            rss_kb = None
    for b in j.get("benchmarks", []):
        if b.get("run_type") == "aggregate":
            continue
        unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b.get("time_unit", "ns")]
        wall = b["real_time"] * unit
        cpu = b["cpu_time"] * unit
        def fmt_rate(k):
            v = b.get(k)
            return "-" if v is None else f"{v:,.0f}"
        rss = rss_kb / 1024 if rss_kb is not None else b.get("peak_rss_mb")
        extra = []
        for k in ("flows", "recomputes", "sim_ms"):
            if k in b:
                extra.append(f"{k}={b[k]:,.6g}")
        rows.append((prog, b["name"], f"{wall:.4f}", f"{cpu:.4f}", fmt_rate("events_per_s"), fmt_rate("flows_per_s"),
                     "-" if rss is None else f"{rss:.0f}", " ".join(extra)))
hdr = ("program", "benchmark", "wall_s", "cpu_s", "events/s", "flows/s", "peak_rss_MB", "notes")
w = [max(len(str(r[c])) for r in rows + [hdr]) for c in range(len(hdr))]
line = lambda r: "  ".join(str(r[c]).ljust(w[c]) if c < 2 or c == 7 else str(r[c]).rjust(w[c]) for c in range(len(hdr)))
print(line(hdr))
print("  ".join("-" * x for x in w))
for r in rows:
    print(line(r))
PY
