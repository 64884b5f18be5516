#!/usr/bin/env bash
# Converts the public expert-selection traces of ../shared/traces/raw (when present) into results/traces/ and
# replays them with the inference policies. The traces carry no licence: nothing converted is committed (results/
# is ignored by git). Skips with a message where the raw traces are absent.
set -euo pipefail
cd "$(dirname "$0")/../.."
raw=${LINA_TRACES_RAW:-../shared/traces/raw}
lina=${LINA:-./build/cli/lina}
if [ ! -d "$raw" ]; then
  echo "experiments/traces/run.sh: $raw not found: skipping the real-trace experiments" >&2
  exit 0
fi
[ -x "$lina" ] || bash scripts/build.sh
mkdir -p results/traces
"$lina" trace convert --from deepseek-csv "$raw"/ngavhane-moe-beyond/training_data_eamc/*.csv \
  -o results/traces/deepseek-v2-lite.ltr
"$lina" trace convert --from mixtral-raw "$raw"/Mario928-speculative-moe/analysis/deep_analysis/routing_raw.jsonl \
  -o results/traces/mixtral-raw.ltr
specs=(experiments/traces/deepseek-v2-lite.json experiments/traces/mixtral-8x7b.json)
# Llama-4-Maverick: both MMLU subjects, requests in numeric order and alternating between the subjects, 28 per
# continuous batch (their prefills, then step s of the 28 as one batch): 311 batches, whose first half (the first 28
# requests) profiles and whose second half (the other 27) is evaluated. experiments/traces/llama-4-maverick.json
# counts on this layout (156 evaluated batches).
l4="$raw"/andronius-yang-cse223b-proj/traffic-gen
if [ -d "$l4"/llama4-mmlu-abstract_algebra ] && [ -d "$l4"/llama4-mmlu-anatomy ]; then
  mapfile -t algebra < <(printf '%s\n' "$l4"/llama4-mmlu-abstract_algebra/*.json | sort -V)
  mapfile -t anatomy < <(printf '%s\n' "$l4"/llama4-mmlu-anatomy/*.json | sort -V)
  llama=()
  for ((i = 0; i < ${#algebra[@]} || i < ${#anatomy[@]}; ++i)); do
    if ((i < ${#algebra[@]})); then llama+=("${algebra[i]}"); fi
    if ((i < ${#anatomy[@]})); then llama+=("${anatomy[i]}"); fi
  done
  "$lina" trace convert --from llama4-json "${llama[@]}" --regroup-decode 28 -o results/traces/llama-4-maverick.ltr
  specs+=(experiments/traces/llama-4-maverick.json)
else
  echo "experiments/traces/run.sh: $l4/llama4-mmlu-* not found: skipping Llama-4-Maverick" >&2
fi
for spec in "${specs[@]}"; do
  "$lina" run "$spec" "$@"
done
