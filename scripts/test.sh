#!/usr/bin/env bash
# Installs what is missing, builds lina and runs every test (ctest). LINA_SANITIZE=1 runs the suite under
# AddressSanitizer and UndefinedBehaviorSanitizer instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
dir=build
[ "${LINA_SANITIZE:-0}" = 1 ] && dir=${LINA_BUILD_DIR:-build-asan}
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)"
