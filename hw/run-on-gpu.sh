#!/usr/bin/env bash
# Builds lina with the hardware backend, runs the GPU tests, calibrates, and validates the quick start, the paper's
# training experiment and its Transformer-XL inference experiment, scaled to the GPUs present. Everything goes to one folder (default hw-results/).
# Budget: under 8 minutes on one GPU (the workloads are cut to 2 layers of the spec's model; every policy of the spec runs).
#
#   hw/run-on-gpu.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-hw-results}
BUILD=${LINA_HW_BUILD:-build-gpu}
mkdir -p "$OUT"
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"

log "build ($BUILD)"
cmake -S . -B "$BUILD" -G Ninja -DLINA_CUDA=ON -DLINA_BUILD_BENCH=OFF > "$OUT/configure.log"
ninja -C "$BUILD" -j"$(nproc)" lina lina-hw test_hw > "$OUT/build.log"

log "lina hw info"
"$BUILD/cli/lina" hw info | tee "$OUT/info.txt" | tee -a "$OUT/summary.txt"

log "GPU tests"
timeout 120 "$BUILD/tests/test_hw" --gtest_brief=1 2>&1 | tee "$OUT/test_hw.txt" | tail -3 | tee -a "$OUT/summary.txt"

log "calibrate"
timeout 180 "$BUILD/cli/lina" hw calibrate -o "$OUT/calibration.json" | tee "$OUT/calibrate.txt" | tee -a "$OUT/summary.txt"

for spec in experiments/quickstart.json experiments/paper/training.json; do
  name=$(basename "$spec" .json)
  log "validate $spec"
  timeout 120 "$BUILD/cli/lina" hw validate "$spec" --calibration "$OUT/calibration.json" -o "$OUT/validate-$name" \
    --set model.layers=2 --set workload.steps=2 \
    2>&1 | tee "$OUT/validate-$name.txt" | tee -a "$OUT/summary.txt" || log "validate $spec failed (see $OUT/validate-$name.txt)"
done
# Inference: 4 experts (so that Lina's placement fits even one GPU: at most 4 experts per device), 4 layers, 4
# profiling and 4 evaluated batches of 32 sequences; Lina's placement is decided online, batch by batch.
spec=experiments/paper/inference-transformer-xl.json
log "validate $spec"
timeout 150 "$BUILD/cli/lina" hw validate "$spec" --calibration "$OUT/calibration.json" -o "$OUT/validate-inference" \
  --set model.layers=4 --set model.experts=4 --set workload.batches=4 --set workload.routing.profile_batches=4 \
  --set workload.batch_size=32 \
  2>&1 | tee "$OUT/validate-inference.txt" | tee -a "$OUT/summary.txt" || log "validate $spec failed (see $OUT/validate-inference.txt)"
log "done: $OUT/summary.txt"
