#!/usr/bin/env bash
# Metric ingestion end to end vs raw batched SQLite insert (see bench/README.md).
set -euo pipefail
"${SD2_BUILD_DIR:-build/bench}/bin/bench_ingest" "${INGEST_ROWS:-1000000}" "${INGEST_BATCH:-10000}"
