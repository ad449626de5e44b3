#!/usr/bin/env bash
# Sets up the machine, builds, and runs every test (unit, mpi, end-to-end demo --quick).
#   scripts/test.sh            everything
#   scripts/test.sh -L unit    only tests with that CTest label
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
scripts/setup.sh
PRESET="${SD2_PRESET:-ci}"
scripts/build.sh "$PRESET"
ctest --preset "$PRESET" -j "$(nproc)" "$@"
