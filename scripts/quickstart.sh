#!/usr/bin/env bash
# Quick start: installs what is missing, builds lina, and runs the default experiment
# (experiments/quickstart.json): prints the comparison table and writes results/quickstart/
# (results.json, results.csv, timeline-*.json for ui.perfetto.dev, results.png).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
./build/cli/lina run experiments/quickstart.json "$@"
