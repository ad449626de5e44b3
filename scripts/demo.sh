#!/usr/bin/env bash
# Sets up the machine, builds sd2 (release), and runs `sd2ctl demo` — the whole paper end to end
# on a synthetic MMI-DD, on this machine's CPUs. Extra arguments go to `sd2ctl demo`
# (e.g. --quick, --dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
scripts/setup.sh
scripts/build.sh release
exec build/release/bin/sd2ctl demo "$@"
