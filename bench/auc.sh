#!/bin/bash
# The `auc` benchmark: ROC AUC of 10^7 scores with ties, sd2 (bench_auc, one thread) against
# scikit-learn's roc_auc_score (the project venv's python (scripts/setup.sh)) on the same data in the same run.
# Needs $SD2_BUILD_DIR (set by bench/run). Fails (exit 1) when the values differ by more than
# 1e-9. Env: AUC_N (default 10000000), AUC_REPEATS (default 3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && cd ".." && pwd)/.venv/bin/python}"
[[ -x "$py" ]] || py=python3  # the project venv (scripts/setup.sh), else python3
n="${AUC_N:-10000000}"
repeats="${AUC_REPEATS:-3}"
tmp="$(mktemp -d /tmp/sd2-bench-auc.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
# One thread for the reference too (numpy's BLAS is not used by roc_auc_score, but be explicit).
read -r ref_auc ref_s < <(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
  "$py" "$here/auc_ref.py" "$tmp" "$n" "$repeats")
read -r our_auc our_s < <("$SD2_BUILD_DIR/bin/bench_auc" "$tmp" --repeats "$repeats")
"$py" - "$our_auc" "$our_s" "$ref_auc" "$ref_s" "$n" <<'PY'
import sys
ours, ours_s, ref, ref_s, n = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
diff = abs(ours - ref)
ok = diff <= 1e-9
print("bench auc: ours=%.3fs ref=%.3fs ratio=%.1fx (n=%d, auc ours=%.12f ref=%.12f |diff|=%.1e%s)"
      % (ours_s, ref_s, ref_s / ours_s, n, ours, ref, diff, "" if ok else " MISMATCH > 1e-9"))
sys.exit(0 if ok else 1)
PY
