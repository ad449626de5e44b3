#!/bin/bash
# bench/train/run_method.sh METHOD: the training-step benchmark of one method (bench/train-*.sh).
# Ours: the C++ worker's train step (train_step_bench: sd2::worker::train::Trainer, forward, the
# losses, backward, the optimizer; the baselines built by BuildDetector). Reference: the same
# model, weights, batch and optimizer in PyTorch (bench/reference/train_step_sd2.py for sd2,
# train_step_baselines.py for the baselines) under the project venv's python (PyPI torch 2.15:
# the same LibTorch as ours), run twice per repeat: eager, and with torch.compile (inductor's C++
# code on this CPU, compiled during the warm-up steps; TRAIN_COMPILE=0 skips it). sd2's reference
# uses F.scaled_dot_product_attention, as the worker uses the fused kernel. All sides get the
# same threads (TRAIN_THREADS intra-op threads; OPENBLAS_NUM_THREADS/MKL_NUM_THREADS alike). Runs
# alternate and the best of TRAIN_REPEATS is kept for each. Fails when the eval-mode losses before
# training differ by more than 1e-4 (relative to max(1, |loss|)), and, for methods whose training
# step draws no random numbers (xception, spsl, clip, clip_svd, univfd), when the eval-mode losses
# after training differ by more than 1e-3 (the optimizer's updates agree too).
# Both sides report wall-clock images/s (the ratio) and, in the details, images/s of their process
# CPU time (steadier with one thread on a loaded machine; with more it counts spinning threads).
# Env: TRAIN_MODEL (tiny), TRAIN_BATCH (8), TRAIN_IMAGE_SIZE (32; baselines only: sd2 uses its
# model's size), TRAIN_STEPS (50), TRAIN_WARMUP (3), TRAIN_THREADS (1), TRAIN_BLAS_THREADS (1),
# TRAIN_REPEATS (5), TRAIN_COMPILE (1), TRAIN_HPARAMS (baselines: a JSON object merged over the sweep's default
# hparams, e.g. '{"weight_decay": 0}'; the reference reads the result from ours).
set -euo pipefail
method="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && cd "../.." && pwd)/.venv/bin/python}"
[[ -x "$py" ]] || py=python3  # the project venv (scripts/setup.sh), else python3
case "$method" in
  sd2) ref_py="$here/reference/train_step_sd2.py" ;;
  xception | recce | spsl | clip | clip_lora | clip_svd | univfd)
    ref_py="$here/reference/train_step_baselines.py" ;;
  *)
    echo "bench train-$method: no training-step benchmark for '$method'" \
      "(have: sd2 xception recce spsl clip clip_lora clip_svd univfd)" >&2
    exit 2
    ;;
esac
: "${SD2_BUILD_DIR:?SD2_BUILD_DIR must be set (bench/run sets it)}"
bin="$SD2_BUILD_DIR/bin/train_step_bench"
cmake --build "$SD2_BUILD_DIR" --target train_step_bench -j "${SD2_BENCH_JOBS:-2}" >/dev/null
model="${TRAIN_MODEL:-tiny}" batch="${TRAIN_BATCH:-8}" steps="${TRAIN_STEPS:-50}"
warmup="${TRAIN_WARMUP:-3}" threads="${TRAIN_THREADS:-1}" repeats="${TRAIN_REPEATS:-5}"
image_size="${TRAIN_IMAGE_SIZE:-32}" blas="${TRAIN_BLAS_THREADS:-1}"
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$blas"
tmp="$(mktemp -d /tmp/sd2_bench_train.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
common=(--steps "$steps" --warmup "$warmup" --threads "$threads")
ours_args=(--out "$tmp" --model "$model" --batch "$batch")
if [[ "$method" != sd2 ]]; then
  ours_args+=(--image-size "$image_size")
  [[ -n "${TRAIN_HPARAMS:-}" ]] && ours_args+=(--hparams "$TRAIN_HPARAMS")
fi
# sd2's attention is the fused kernel (at::scaled_dot_product_attention): the reference too.
ref_flags=()
[[ "$method" == sd2 ]] && ref_flags+=(--sdpa)
compile="${TRAIN_COMPILE:-1}"
ours_lines=() ref_lines=() comp_lines=()
for ((r = 0; r < repeats; ++r)); do
  ours_lines+=("$("$bin" "$method" "${ours_args[@]}" "${common[@]}")")
  ref_lines+=("$("$py" "$ref_py" --weights "$tmp/in.safetensors" "${common[@]}" "${ref_flags[@]}")")
  if [[ "$compile" == 1 ]]; then
    # torch.compile (inductor, C++ codegen on this CPU); compiled during the warm-up steps.
    comp_lines+=("$("$py" "$ref_py" --weights "$tmp/in.safetensors" "${common[@]}" \
      "${ref_flags[@]}" --compile)")
  fi
done
"$py" - "$method" "$model" "$batch" "$steps" "$threads" "$blas" "$image_size" \
  "${TRAIN_HPARAMS:-}" "${#ours_lines[@]}" "${#comp_lines[@]}" "${ours_lines[@]}" \
  "${ref_lines[@]}" "${comp_lines[@]}" <<'PY'
import sys
method, model, batch, steps, threads, blas, image_size, hparams, n, nc = sys.argv[1:11]
n, nc = int(n), int(nc)
lines = sys.argv[11:]
parse = lambda l: {k: float(v) for k, v in (kv.split("=") for kv in l.split())}
ours = [parse(l) for l in lines[:n]]
ref = [parse(l) for l in lines[n:2 * n]]
comp = [parse(l) for l in lines[2 * n:2 * n + nc]]
o = max(r["images_per_s"] for r in ours)
p = max(r["images_per_s"] for r in ref)
# CPU time of the process: with one thread the steadier measure on a shared machine.
oc = max(r["cpu_images_per_s"] for r in ours)
pc = max(r["cpu_images_per_s"] for r in ref)
ok = True
def agree(a, b, tol):
    return abs(a - b) <= tol * max(1.0, abs(b))
l_o, l_r = ours[0]["loss0"], ref[0]["loss0"]
ok &= agree(l_o, l_r, 1e-4)
checks = f"first-step loss {l_o:.6f} vs {l_r:.6f}, diff {abs(l_o - l_r):.1e}"
if "loss_end" in ours[0] and "loss_end" in ref[0]:
    e_o, e_r = ours[0]["loss_end"], ref[0]["loss_end"]
    deterministic = method in ("xception", "spsl", "clip", "clip_svd", "univfd")
    if deterministic:
        ok &= agree(e_o, e_r, 1e-3)
    checks += (f"; after training {e_o:.6f} vs {e_r:.6f}, diff {abs(e_o - e_r):.1e}"
               + ("" if deterministic else " (dropout: not compared)"))
size = "" if method == "sd2" else f" {image_size}px,"
l2 = ours[0].get("l2", 0)
opt = "AdamW" if method == "sd2" else f"L2 {l2:g}, hparams {hparams}" if hparams else \
    f"Adam, L2 {l2:g}"
if comp:
    q, qc = max(r["images_per_s"] for r in comp), max(r["cpu_images_per_s"] for r in comp)
    l_c = comp[0]["loss0"]
    ok &= agree(l_o, l_c, 1e-4)
    compiled = (f" compiled={q:.2f}img/s ratio_compiled={o / q:.2f}x "
                f"(CPU time {qc:.2f} img/s, ratio {oc / qc:.2f}x; first-step loss {l_c:.6f})")
else:
    compiled = " (torch.compile not run: TRAIN_COMPILE=0)"
print(f"bench train-{method}: ours={o:.2f}img/s eager={p:.2f}img/s ratio_eager={o / p:.2f}x"
      f"{compiled} "
      f"({model},{size} batch {batch}, {steps} steps after warm-up, {threads} thread(s), "
      f"OPENBLAS_NUM_THREADS={blas}, best of {n}; {opt}; "
      f"CPU time: ours {oc:.2f} ref {pc:.2f} img/s, ratio {oc / pc:.2f}x; {checks})")
sys.exit(0 if ok else 1)
PY
