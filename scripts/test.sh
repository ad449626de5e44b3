#!/usr/bin/env bash
# Sets up the machine, builds, and runs every test (unit, mpi, end-to-end demo --quick), then
# builds the `asan` preset and runs the unit suite under AddressSanitizer + UBSan
# (docs/security.md). CI runs this (.ci/run).
#   scripts/test.sh            everything
#   scripts/test.sh -L unit    only tests with that CTest label (the sanitizer run is always -L unit)
#   SD2_ASAN=0 scripts/test.sh skip the sanitizer build and run (CI never sets it)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
scripts/setup.sh
PRESET="${SD2_PRESET:-ci}"
scripts/build.sh "$PRESET"
ctest --preset "$PRESET" -j "$(nproc)" "$@"
if [ "${SD2_ASAN:-1}" != 0 ]; then
  echo "test: unit suite under AddressSanitizer + UndefinedBehaviorSanitizer (preset asan)"
  scripts/build.sh asan
  ctest --preset asan -L unit -j "$(nproc)"
fi
