#!/bin/bash
# bench/gpu/check.sh: everything only a GPU can show, in one run (< 10 min on one H100/H200).
# docs/gpu.md lists what each step proves. Run it on a GPU node with a CUDA PyTorch >= 2.4
# (the node's own install: `python3 -c 'import torch'`; PYTHON=... picks another), CMake and a
# C++20 compiler; MPI and NCCL headers for step 3 (the NCCL wheel of that PyTorch is enough).
#   1. bench/gpu/run.sh: builds sd2_step_gpu against the node's LibTorch, checks it against the
#      Python reference (tiny, fp32), then SD² at ViT-L/14, 224 px, bf16 autocast, fused
#      attention: images/s, MFU, and the ratios to PyTorch eager and torch.compile;
#   2. the worker's CLIP on CUDA: bf16 autocast and SDPA forward/backward against fp32 on the
#      same GPU (sd2_step_gpu --check-autocast);
#   3. the NCCL communicator: worker/comm/nccl_communicator_test with one rank per visible GPU
#      (device buffers, all-reduce and all-gather, bootstrap over MPI), when mpirun is there.
# Output: one "check: NAME ok|FAILED|skipped (why)" line per step; exit 1 if any step failed.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
py="${PYTHON:-python3}"
out="${CHECK_OUT:-${OUT:-/tmp}/sd2_gpu_check}"
mkdir -p "$out"
failed=0
report() { echo "check: $1 $2"; [[ "$2" == FAILED* ]] && failed=1; return 0; }

# 1. The benchmark (includes the build and the fp32 check against the Python reference).
if PYTHON="$py" GPU_BUILD_DIR="$out/build-gpu" bash "$here/run.sh" >"$out/bench.txt" 2>"$out/bench.log"; then
  report bench "ok: $(tail -1 "$out/bench.txt")"
else
  report bench "FAILED (see $out/bench.log)"; tail -20 "$out/bench.log"
fi

# 2. bf16 autocast + SDPA on the GPU against fp32 (same weights, same batch).
bin="$out/build-gpu/sd2_step_gpu"
if [[ -x "$bin" ]]; then
  if "$bin" --config tiny --device cuda --batch 8 --check-autocast >"$out/autocast.txt" 2>&1; then
    report autocast "ok: $(tail -1 "$out/autocast.txt")"
  else
    report autocast "FAILED: $(tail -3 "$out/autocast.txt")"
  fi
else
  report autocast "FAILED (no sd2_step_gpu binary)"
fi

# 3. NCCL: the communicator's test with one rank per GPU.
gpus="$("$py" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)"
if ! command -v mpirun >/dev/null; then
  report nccl "skipped (no mpirun on this node)"
else
  prefix="$("$py" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
  nb="$out/build-nccl"
  if cmake -S "$repo" -B "$nb" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSD2_WITH_TORCH=OFF \
      -DSD2_WITH_NCCL=ON -DSD2_PYTHON="$(command -v "$py")" -DCMAKE_PREFIX_PATH="$prefix" \
      >"$out/nccl-configure.log" 2>&1 &&
     cmake --build "$nb" --target nccl_communicator_test -j "$(nproc)" >"$out/nccl-build.log" 2>&1; then
    ranks=$((gpus > 1 ? (gpus > 8 ? 8 : gpus) : 1))
    if OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 300 \
        mpirun -np "$ranks" --oversubscribe "$nb/bin/nccl_communicator_test" >"$out/nccl.txt" 2>&1; then
      report nccl "ok ($ranks rank(s) on $gpus GPU(s))"
    else
      report nccl "FAILED: $(tail -5 "$out/nccl.txt")"
    fi
  else
    report nccl "FAILED to build (see $out/nccl-configure.log, $out/nccl-build.log)"
  fi
fi
exit "$failed"
