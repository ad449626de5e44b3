#!/bin/bash
# bench/train/run_method.sh METHOD: the training-step benchmark of one method (bench/train-*.sh).
# Ours: the C++ worker's train step (train_step_bench: sd2::worker::train::Trainer, forward, the
# losses, backward, AdamW). Reference: the same model, weights, batch and optimizer in PyTorch
# (bench/reference/train_step_<ref>.py) under Debian's /usr/bin/python3 (torch 1.13, the same
# libtorch). Both sides get the same thread count (intra-op, OpenMP and OpenBLAS); runs alternate
# ours/ref and the best of TRAIN_REPEATS is kept for each. Fails when the first-step (eval-mode)
# losses differ by more than 1e-4 (relative to max(1, |loss|)).
# Env: TRAIN_MODEL (tiny), TRAIN_BATCH (8), TRAIN_STEPS (20), TRAIN_WARMUP (3), TRAIN_THREADS (1),
# TRAIN_REPEATS (3).
set -euo pipefail
method="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "$method" in
  sd2) ref_py="$here/reference/train_step_sd2.py" ;;
  *) echo "bench train-$method: no training-step benchmark for '$method' (have: sd2)" >&2; exit 2 ;;
esac
: "${SD2_BUILD_DIR:?SD2_BUILD_DIR must be set (bench/run sets it)}"
bin="$SD2_BUILD_DIR/bin/train_step_bench"
cmake --build "$SD2_BUILD_DIR" --target train_step_bench -j "${SD2_BENCH_JOBS:-2}" >/dev/null
model="${TRAIN_MODEL:-tiny}" batch="${TRAIN_BATCH:-8}" steps="${TRAIN_STEPS:-20}"
warmup="${TRAIN_WARMUP:-3}" threads="${TRAIN_THREADS:-1}" repeats="${TRAIN_REPEATS:-3}"
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
tmp="$(mktemp -d /tmp/sd2_bench_train.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
common=(--steps "$steps" --warmup "$warmup" --threads "$threads")
ours_lines=() ref_lines=()
for ((r = 0; r < repeats; ++r)); do
  ours_lines+=("$("$bin" "$method" --out "$tmp" --model "$model" --batch "$batch" "${common[@]}")")
  ref_lines+=("$(/usr/bin/python3 "$ref_py" --weights "$tmp/in.safetensors" "${common[@]}")")
done
/usr/bin/python3 - "$method" "$model" "$batch" "$steps" "$threads" "${#ours_lines[@]}" \
  "${ours_lines[@]}" "${ref_lines[@]}" <<'PY'
import sys
method, model, batch, steps, threads, n = sys.argv[1:7]
n = int(n)
lines = sys.argv[7:]
parse = lambda l: {k: float(v) for k, v in (kv.split("=") for kv in l.split())}
ours = [parse(l) for l in lines[:n]]
ref = [parse(l) for l in lines[n:]]
o = max(r["images_per_s"] for r in ours)
p = max(r["images_per_s"] for r in ref)
l_o, l_r = ours[0]["loss0"], ref[0]["loss0"]
diff = abs(l_o - l_r)
print(f"bench train-{method}: ours={o:.2f}img/s ref={p:.2f}img/s ratio={o / p:.2f}x "
      f"({model}, batch {batch}, {steps} steps after warm-up, {threads} thread(s), best of {n}; "
      f"PyTorch {'eager'} AdamW; first-step loss {l_o:.6f} vs {l_r:.6f}, diff {diff:.1e})")
sys.exit(0 if diff <= 1e-4 * max(1.0, abs(l_r)) else 1)
PY
