#!/usr/bin/env bash
# Configures and builds sd2 with a CMake preset (default: dev) into build/<preset>.
# ccache (found by CMakeLists.txt) is told to treat paths relative to the repository, so a fresh
# clone elsewhere on the same machine (CI) reuses the objects of earlier builds.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
PRESET="${1:-dev}"
cmake --preset "$PRESET" >/dev/null
cmake --build --preset "$PRESET" -j "$(nproc)"
