#!/usr/bin/env bash
# End-to-end checks of `sd2ctl slurm render` and `sd2ctl launch`: exit codes, files written,
# exact error messages. Usage: cli_test.sh SD2CTL SOURCE_DIR
set -uo pipefail
SD2CTL="$1"
SRC="$2"
TMP="$(mktemp -d /tmp/sd2-cluster-cli-XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
SWEEP="$SRC/sweeps/paper/table6_scaling.toml"
failures=0

check() {  # check NAME EXPECTED_RC ACTUAL_RC
  if [[ "$2" != "$3" ]]; then
    echo "FAIL $1: exit code $3, expected $2" >&2
    failures=$((failures + 1))
  fi
}
contains() {  # contains NAME FILE TEXT
  if ! grep -qF -- "$3" "$2"; then
    echo "FAIL $1: '$3' not in $2:" >&2
    cat "$2" >&2
    failures=$((failures + 1))
  fi
}

# groups shape, array size given, user options in the header.
"$SD2CTL" slurm render "$SWEEP" --out "$TMP/out" --coordinator tcp://login1:5555 --groups 4 \
  --partition p1 --account a1 --time 02:00:00 --signal-seconds 120 --sbatch=--constraint=a100 \
  >"$TMP/stdout" 2>"$TMP/stderr"
check render-groups 0 $?
F="$TMP/out/table6_scaling-groups.sbatch"
contains render-groups-stdout "$TMP/stdout" "$F"
contains render-groups "$F" "#SBATCH --array=0-3"
contains render-groups "$F" "#SBATCH --partition=p1"
contains render-groups "$F" "#SBATCH --account=a1"
contains render-groups "$F" "#SBATCH --signal=B:USR1@120"
contains render-groups "$F" "#SBATCH --constraint=a100"
contains render-groups "$F" "#SBATCH --gpus-per-node=8"
# The paper sweep asks for gpus_per_rank = 1: the workers start on CUDA.
contains render-groups "$F" '"$SD2_WORKER" --coordinator tcp://login1:5555 --idle-exit 300 --devices cuda &'
bash -n "$F"
check render-groups-syntax 0 $?

# allocation shape over 2 nodes, relative db made absolute.
(cd "$TMP" && "$SD2CTL" slurm render "$SWEEP" --out out --shape allocation --db sd2.db \
  --nodes 2 --var SD2_DATA=/data --rank-launcher mpirun >/dev/null 2>"$TMP/stderr")
check render-allocation 0 $?
F="$TMP/out/table6_scaling-allocation.sbatch"
contains render-allocation "$F" "#SBATCH --nodes=2"
contains render-allocation "$F" "--group-size 8 --db $TMP/sd2.db --var SD2_DATA=/data"
contains render-allocation "$F" 'mpirun -np "${SLURM_NTASKS:-1}"'
contains render-allocation "$F" "#SBATCH --ntasks-per-node=8"
contains render-allocation "$F" "#SBATCH --gpus-per-node=8"
contains render-allocation "$F" "--var SD2_DATA=/data --devices cuda &"

# GPUs as generic resources, and the user's --devices over the sweep's GPUs.
"$SD2CTL" slurm render "$SWEEP" --out "$TMP/gres" --coordinator tcp://login1:5555 --groups 2 \
  --nodes 2 --gpu-request gres --devices cpu >/dev/null 2>"$TMP/stderr"
check render-gres 0 $?
F="$TMP/gres/table6_scaling-groups.sbatch"
contains render-gres "$F" "#SBATCH --ntasks-per-node=4"
contains render-gres "$F" "#SBATCH --gres=gpu:4"
contains render-gres "$F" "--idle-exit 300 --devices cpu &"
if grep -q -e "--gpus-per-node" -e "--devices cuda" "$F"; then
  echo "FAIL render-gres: --gpus-per-node or --devices cuda in $F" >&2
  failures=$((failures + 1))
fi
(cd "$TMP" && "$SD2CTL" slurm render "$SWEEP" --out gres --shape allocation --db sd2.db \
  --var SD2_DATA=/data --gpu-request gres >/dev/null 2>"$TMP/stderr")
check render-gres-allocation 0 $?
contains render-gres-allocation "$TMP/gres/table6_scaling-allocation.sbatch" "#SBATCH --gres=gpu:8"
contains render-gres-allocation "$TMP/gres/table6_scaling-allocation.sbatch" "--devices cuda &"
"$SD2CTL" slurm render "$SWEEP" --out "$TMP/bad" --coordinator tcp://h:1 --groups 1 \
  --devices gpu 2>"$TMP/stderr"
check bad-devices 2 $?
contains bad-devices "$TMP/stderr" "--devices 'gpu': expected cpu or cuda"
"$SD2CTL" slurm render "$SWEEP" --out "$TMP/bad" --coordinator tcp://h:1 --groups 1 \
  --gpu-request tres 2>"$TMP/stderr"
check bad-gpu-request 2 $?
contains bad-gpu-request "$TMP/stderr" "gpu_request 'tres': expected gpus-per-node or gres"

# Bad input: exit 2 and a message that says what to fix.
"$SD2CTL" slurm render "$SWEEP" --out "$TMP/bad" --groups 2 2>"$TMP/stderr"
check no-coordinator 2 $?
contains no-coordinator "$TMP/stderr" "--shape groups needs --coordinator tcp://HOST:PORT"
"$SD2CTL" slurm render "$SWEEP" --out "$TMP/bad" --coordinator tcp://h:1 2>"$TMP/stderr"
check no-vars 2 $?
contains no-vars "$TMP/stderr" "give --groups K or the --var values it needs"
contains no-vars "$TMP/stderr" "undefined variable \${SD2_DATA}"
"$SD2CTL" slurm render "$SWEEP" --out "$TMP/bad" --shape allocation 2>"$TMP/stderr"
check no-db 2 $?
contains no-db "$TMP/stderr" "--shape allocation needs --db PATH"
"$SD2CTL" slurm render "$SWEEP" --out "$TMP/bad" --shape blob --db x 2>"$TMP/stderr"
check bad-shape 2 $?
contains bad-shape "$TMP/stderr" "--shape 'blob': expected groups or allocation"
"$SD2CTL" slurm render "$SWEEP" --coordinator tcp://h:1 --groups 1 --time 5h 2>"$TMP/stderr"
check bad-time 2 $?
contains bad-time "$TMP/stderr" "bad Slurm time '5h'"
"$SD2CTL" slurm render "$SWEEP" --coordinator tcp://h:1 --groups 1 --gpus-per-node 4 \
  2>"$TMP/stderr"
check bad-gpus 2 $?
contains bad-gpus "$TMP/stderr" "--gpus-per-node 4 does not match the sweep"
"$SD2CTL" slurm render "$TMP/missing.toml" --coordinator tcp://h:1 2>"$TMP/stderr"
check missing-sweep 2 $?
contains missing-sweep "$TMP/stderr" "missing.toml"
[[ ! -e "$TMP/bad" ]] || { echo "FAIL: a failed render wrote files" >&2; failures=$((failures + 1)); }

# launch through real mpirun: two one-rank groups whose "worker" is /bin/true.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# launch --sweep: the paper sweep's GPUs reach the worker's command line (one rank here; the
# "worker" records its arguments), and --devices overrides them.
printf '#!/usr/bin/env bash\necho "$*" >>"%s/worker-args"\n' "$TMP" >"$TMP/record.sh"
chmod +x "$TMP/record.sh"
"$SD2CTL" launch --launcher local --sweep "$SWEEP" --coordinator tcp://127.0.0.1:1 --ranks 1 \
  --worker "$TMP/record.sh" --oversubscribe --wait >"$TMP/stdout" 2>"$TMP/stderr"
check launch-sweep-gpus 0 $?
contains launch-sweep-gpus "$TMP/worker-args" "--coordinator tcp://127.0.0.1:1 --devices cuda"
rm -f "$TMP/worker-args"
"$SD2CTL" launch --launcher local --sweep "$SWEEP" --coordinator tcp://127.0.0.1:1 --ranks 1 \
  --devices cpu --worker "$TMP/record.sh" --oversubscribe --wait >"$TMP/stdout" 2>"$TMP/stderr"
check launch-sweep-cpu 0 $?
contains launch-sweep-cpu "$TMP/worker-args" "--coordinator tcp://127.0.0.1:1 --devices cpu"
# launch --launcher slurm with a stand-in sbatch: the script it submits asks for the GPUs and
# starts the workers on CUDA.
mkdir -p "$TMP/fakebin"
printf '#!/usr/bin/env bash\ncp "${@: -1}" "%s/submitted.sbatch"\necho 4242\n' "$TMP" \
  >"$TMP/fakebin/sbatch"
chmod +x "$TMP/fakebin/sbatch"
PATH="$TMP/fakebin:$PATH" "$SD2CTL" launch --launcher slurm --sweep "$SWEEP" \
  --coordinator tcp://login1:5555 --script-dir "$TMP/scripts" >"$TMP/stdout" 2>"$TMP/stderr"
check launch-slurm 0 $?
contains launch-slurm "$TMP/stdout" "slurm 4242"
contains launch-slurm "$TMP/submitted.sbatch" "#SBATCH --gpus-per-node=8"
contains launch-slurm "$TMP/submitted.sbatch" "--coordinator tcp://login1:5555 --devices cuda &"
"$SD2CTL" launch --launcher local --coordinator tcp://127.0.0.1:1 --groups 2 --ranks 1 \
  --worker /bin/true --oversubscribe --wait >"$TMP/stdout" 2>"$TMP/stderr"
check launch-local 0 $?
[[ "$(grep -c ' done$' "$TMP/stdout")" == 2 ]] || {
  echo "FAIL launch-local: expected two groups done:" >&2
  cat "$TMP/stdout" "$TMP/stderr" >&2
  failures=$((failures + 1))
}
"$SD2CTL" launch --launcher local --coordinator tcp://127.0.0.1:1 --ranks 1 --worker /bin/false \
  --oversubscribe --wait >"$TMP/stdout" 2>"$TMP/stderr"
check launch-local-fail 1 $?
contains launch-local-fail "$TMP/stdout" " failed"
"$SD2CTL" launch --launcher pbs --coordinator tcp://h:1 2>"$TMP/stderr"
check launch-bad-launcher 2 $?
contains launch-bad-launcher "$TMP/stderr" "--launcher 'pbs': expected local or slurm"

if ((failures)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all sd2ctl cluster checks passed"
