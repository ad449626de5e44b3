#!/usr/bin/env bash
# Configures and builds sd2 with a CMake preset (default: dev) into build/<preset>.
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET="${1:-dev}"
cmake --preset "$PRESET" >/dev/null
cmake --build --preset "$PRESET" -j "$(nproc)"
