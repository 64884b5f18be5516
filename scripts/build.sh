#!/usr/bin/env bash
# Configures and builds lina into build/ (Release). Extra arguments go to CMake, e.g. -DLINA_CUDA=OFF.
# LINA_BUILD_DIR changes the folder; LINA_SANITIZE=1 builds with ASan and UBSan into build-asan/.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${LINA_BUILD_DIR:-build}
args=(-G Ninja -DLINA_WERROR=ON)
if [ "${LINA_SANITIZE:-0}" = 1 ]; then
  dir=${LINA_BUILD_DIR:-build-asan}
  args+=(-DCMAKE_BUILD_TYPE=Debug -DLINA_SANITIZE=ON -DLINA_BUILD_BENCH=OFF)
fi
cmake -S . -B "$dir" "${args[@]}" "$@" >/dev/null
cmake --build "$dir" -j "$(nproc)"
