#!/usr/bin/env bash
# Coordinator time per trial: 10,000 zero-length smoke trials over 64 fake groups.
set -euo pipefail
"${SD2_BUILD_DIR:-build/bench}/bin/bench_schedule" "${SCHEDULE_TRIALS:-10000}" "${SCHEDULE_GROUPS:-64}"
