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
for spec in experiments/traces/deepseek-v2-lite.json experiments/traces/mixtral-8x7b.json; do
  "$lina" run "$spec" "$@"
done
