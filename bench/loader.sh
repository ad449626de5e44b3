#!/bin/bash
# bench loader: decode + augment + normalise of 512x512 JPEGs to 224x224 on one core, ours
# (sd2::worker_data, bench/loader_bench.cc) against PIL + numpy (bench/loader_ref.py) on the same
# files in the same run. Env: LOADER_N (images, default 200), LOADER_REPEATS (best of, 3).
# Fails when the mean normalised value differs by more than 0.05 (the operations disagree).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && cd ".." && pwd)/.venv/bin/python}"
[[ -x "$py" ]] || py=python3  # the project venv (scripts/setup.sh), else python3
bin="$SD2_BUILD_DIR/bin/loader_bench"
cmake --build "$SD2_BUILD_DIR" --target loader_bench -j "${SD2_BENCH_JOBS:-2}" >/dev/null
n="${LOADER_N:-200}"
repeats="${LOADER_REPEATS:-3}"
tmp="$(mktemp -d /tmp/sd2_bench_loader.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
"$bin" make "$tmp" "$n"
ours="$("$bin" run "$tmp" "$n" 224 "$repeats")"
ref="$("$py" "$here/loader_ref.py" "$tmp" "$n" 224 "$repeats")"
get() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$2"; }
"$py" - "$(get seconds "$ours")" "$(get seconds "$ref")" "$(get mean "$ours")" \
  "$(get mean "$ref")" "$n" <<'PY'
import sys
ours, ref, m_ours, m_ref, n = map(float, sys.argv[1:])
print(f"bench loader: ours={ours:.3f}s ref={ref:.3f}s ratio={ref / ours:.2f}x "
      f"({int(n)} JPEGs 512->224, all augmentations, 1 core: ours {n / ours:.0f} img/s, "
      f"PIL+numpy {n / ref:.0f} img/s; mean {m_ours:.4f} vs {m_ref:.4f})")
sys.exit(0 if abs(m_ours - m_ref) <= 0.05 else 1)
PY
