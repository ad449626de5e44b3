#!/bin/bash
# bench/gpu/run.sh [--dry-run]: the GPU training-step benchmark of issue 9, in one run (< 10 min).
#  1. builds bench/gpu/sd2_step_gpu against the LibTorch of the machine's PyTorch install
#     (torch.utils.cmake_prefix_path; needs only CUDA + that LibTorch);
#  2. checks that it computes what the Python reference computes (tiny config, fp32, eval-mode
#     first-step loss within 1e-4);
#  3. SD² at vit_l14, 224 px, bf16 autocast, fused attention (SDPA, LibTorch >= 2.0): finds the
#     largest power-of-two batch that fits, times the step (forward, three losses, backward, AdamW);
#  4. the same model in Python PyTorch on the same GPU and batch: eager, then torch.compile;
#  5. prints images/s, ratios and the model FLOPs utilisation (formula: BENCHMARKS.md).
# --dry-run: CPU only, tiny config, fp32 (no bf16): tests the build, the check against the Python
# reference, SDPA and torch.compile on a machine without a GPU (CI runs it).
# Env: PYTHON (default: the project's venv, <repo>/.venv/bin/python, made by scripts/setup.sh;
# else python3; any Python whose torch is >= 2.4), GPU_BUILD_DIR (<repo>/build/gpu),
# GPU_STEPS (10), GPU_WARMUP (3), GPU_BATCH (0 = largest that fits), PEAK_TFLOPS (bf16 dense
# peak; default from the GPU name: H100/H200 989).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dry=0
[[ "${1:-}" == "--dry-run" ]] && dry=1
py="${PYTHON:-}"
if [[ -z "$py" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then py="$repo/.venv/bin/python"; else py=python3; fi
fi
build="${GPU_BUILD_DIR:-$repo/build/gpu}"
steps="${GPU_STEPS:-10}" warmup="${GPU_WARMUP:-3}" batch="${GPU_BATCH:-0}"
tmp="$(mktemp -d /tmp/sd2_gpu_bench.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
log() { echo "[gpu-bench +$((SECONDS - start))s] $*" >&2; }

prefix="$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
torch_version="$("$py" -c 'import torch; print(torch.__version__)')"
torch2="$("$py" -c 'import torch, torch.nn.functional as F; print(int(hasattr(F, "scaled_dot_product_attention")))')"
log "PyTorch $torch_version ($py), cmake prefix $prefix"
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$here" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/configure.log" 2>&1 || { cat "$tmp/configure.log" >&2; exit 1; }
cmake --build "$build" -j "$(nproc)" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; exit 1; }
bin="$build/sd2_step_gpu"
get() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

if ((dry)); then dev=cpu config=tiny; else dev=cuda config=vit_l14; fi
# 2. Same computation as the Python reference (fp32, tiny, eval mode).
ours_check="$("$bin" --config tiny --device "$dev" --batch 4 --steps 1 --warmup 1 --check "$tmp/w.pt")"
ref_check="$("$py" "$here/../reference/train_step_sd2.py" --config tiny --device "$dev" \
  --torch-weights "$tmp/w.pt")"
l_ours="$(get loss0 "$ours_check")" l_ref="$(get loss0 "$ref_check")"
log "check (tiny, fp32): loss0 ours $l_ours, PyTorch $l_ref"
"$py" -c "import sys; a, b = $l_ours, $l_ref; sys.exit(0 if abs(a - b) <= 1e-4 * max(1, abs(b)) else 1)" \
  || { echo "bench gpu: FAILED: first-step losses differ ($l_ours vs $l_ref)" >&2; exit 1; }

flags=() pyflags=()
if ((!dry)); then flags+=(--bf16) pyflags+=(--bf16); fi
if ((torch2)); then flags+=(--sdpa) pyflags+=(--sdpa); fi
# 3. Ours (finds the batch when GPU_BATCH=0).
ours="$("$bin" --config "$config" --device "$dev" --batch "$batch" --steps "$steps" \
  --warmup "$warmup" "${flags[@]}")"
b="$(get batch "$ours")"
log "ours: $ours"
# 4. Python eager and torch.compile at the same batch.
ref_common=(--config "$config" --device "$dev" --batch "$b" --steps "$steps" --warmup "$warmup")
eager="$("$py" "$here/../reference/train_step_sd2.py" "${ref_common[@]}" "${pyflags[@]}")"
log "PyTorch eager: $eager"
compiled=""
if ((torch2)); then
  compiled="$("$py" "$here/../reference/train_step_sd2.py" "${ref_common[@]}" "${pyflags[@]}" \
    --compile)" || compiled=""
  log "PyTorch compiled: ${compiled:-failed}"
fi
# 5. Summary with MFU.
gpu_name="cpu"
((dry)) || gpu_name="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
"$py" - "$config" "$b" "$gpu_name" "${PEAK_TFLOPS:-}" "$(get images_per_s "$ours")" \
  "$(get images_per_s "$eager")" "$(get images_per_s "$compiled")" "$torch_version" <<'PY'
import sys
config, batch, gpu, peak, ours, eager, comp, tv = sys.argv[1:9]
C = {"vit_l14": (224, 14, 1024, 24, 768, 12, 768), "tiny": (32, 8, 64, 3, 64, 2, 64)}
img, patch, vw, vl, tw, tl, proj = C[config]
def tower(tokens, width, layers):
    # per layer: q,k,v,out (4 w^2) + MLP (8 w^2) matmuls, 2 FLOPs per MAC; QK^T and AV (2 t w MACs)
    return layers * tokens * (2 * 12 * width * width + 2 * 2 * tokens * width)
t_img = (img // patch) ** 2 + 1
fwd = (tower(t_img, vw, vl) + 2 * (img // patch) ** 2 * 3 * patch * patch * vw
       + 2 * tower(60, tw, tl))  # image + patch conv + 2 descriptions of 60 tokens
flops = 2 * fwd  # forward + input-gradient backward (the frozen backbone needs no weight grads)
if not peak:
    peak = 989.0 if ("H100" in gpu or "H200" in gpu) else 0.0
peak = float(peak) * 1e12
ours, eager = float(ours), float(eager)
mfu = lambda r: f"{100 * r * flops / peak:.1f}%" if peak else "n/a (set PEAK_TFLOPS)"
line = (f"bench gpu-sd2: ours={ours:.1f}img/s ref={eager:.1f}img/s ratio={ours / eager:.2f}x "
        f"({config}, batch {batch}, {gpu}, torch {tv}; eager")
if comp:
    c = float(comp)
    line += f"; torch.compile {c:.1f} img/s, ratio vs compiled {ours / c:.2f}x, MFU compiled {mfu(c)}"
line += f"; {flops / 1e9:.1f} GFLOP/image, MFU ours {mfu(ours)}, eager {mfu(eager)})"
print(line)
PY
log "done"
