#!/usr/bin/env bash
# mpirun sweep launch: `mpirun -np 4 sd2-worker --sweep FILE --group-size 2 --db DB` runs a
# smoke sweep to completion on two groups of two ranks; the same command again reuses every
# trial. Usage: sweep_launch_test.sh MPIEXEC SD2_WORKER
set -euo pipefail
MPIEXEC=$1
WORKER=$2
TMP=$(mktemp -d /tmp/sd2_sweep_launch.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export OMPI_MCA_mpi_yield_when_idle=1

cat > "$TMP/smoke.toml" <<'TOML'
name = "smoke-launch"
methods = ["smoke"]
scales = [100]
seeds = [0, 1, 2, 3, 4, 5]

[data]
manifest = "${SD2_TEST_DATA}/manifest.jsonl"

[hparams.smoke]
steps = 4

[[eval]]
name = "E1"

[[eval]]
name = "E2"
TOML

run() {
  timeout 60 "$MPIEXEC" -np 4 --oversubscribe "$WORKER" --sweep "$TMP/smoke.toml" \
    --group-size 2 --db "$TMP/sd2.db" --work-dir "$TMP/work" --var SD2_TEST_DATA="$TMP" \
    --override '{"hparams":{"duration_s":0.2}}' >"$TMP/out.txt" 2>&1
}
q() { sqlite3 "$TMP/sd2.db" "$1"; }

run || { cat "$TMP/out.txt"; fail "first launch exited non-zero"; }
grep -q "6 trials, 6 succeeded, 0 reused, 0 failed" "$TMP/out.txt" || { cat "$TMP/out.txt"; fail "summary"; }
[ "$(q "select count(*) from trials where state='succeeded'")" = 6 ] || fail "trials not succeeded"
[ "$(q "select count(*) from attempts")" = 6 ] || fail "expected one attempt per trial"
[ "$(q "select count(*) from metrics")" = 24 ] || fail "expected 4 metric rows per trial"
[ "$(q "select count(*) from scores")" = 1200 ] || fail "expected 2 x 100 scores per trial"
# Both groups worked (group ids are host:pid of each group's rank 0).
[ "$(q "select count(distinct group_id) from attempts")" = 2 ] || fail "expected two groups"
# Each attempt records where it ran: the host and each rank's device (CPU groups of two).
[ "$(q "select count(*) from attempts where devices = 'cpu,cpu' and host <> ''")" = 6 ] ||
  fail "attempts lack host/devices: $(q "select host, devices from attempts")"

run || { cat "$TMP/out.txt"; fail "second launch exited non-zero"; }
grep -q "6 trials, 0 succeeded, 6 reused, 0 failed" "$TMP/out.txt" || { cat "$TMP/out.txt"; fail "rerun summary"; }
[ "$(q "select count(*) from attempts")" = 6 ] || fail "a reused trial was trained again"
[ "$(q "select count(*) from sweep_trials where reused = 1")" = 6 ] || fail "reused flags"

# A group size that does not divide the job is refused with exit code 2.
set +e
timeout 30 "$MPIEXEC" -np 3 --oversubscribe "$WORKER" --sweep "$TMP/smoke.toml" \
  --group-size 2 --db "$TMP/sd2.db" --var SD2_TEST_DATA="$TMP" >"$TMP/out.txt" 2>&1
rc=$?
set -e
[ "$rc" = 2 ] || { cat "$TMP/out.txt"; fail "bad --group-size: exit $rc, expected 2"; }
grep -q "does not divide the 3 ranks" "$TMP/out.txt" || fail "bad --group-size message"

# A sweep that asks for GPUs starts its groups on CUDA. Without a GPU (or without LibTorch)
# every rank refuses before any group registers: exit 4, the trials stay queued, no attempt.
sed -e 's/^name = "smoke-launch"/name = "smoke-gpu"/' "$TMP/smoke.toml" > "$TMP/gpu.toml"
printf '\n[resources]\nranks = 2\ngpus_per_rank = 1\n' >> "$TMP/gpu.toml"
set +e
timeout 60 "$MPIEXEC" -np 2 --oversubscribe "$WORKER" --sweep "$TMP/gpu.toml" --group-size 2 \
  --db "$TMP/gpu.db" --work-dir "$TMP/work" --var SD2_TEST_DATA="$TMP" >"$TMP/out.txt" 2>&1
rc=$?
set -e
qg() { sqlite3 "$TMP/gpu.db" "$1"; }
if [ -e /dev/nvidia0 ] && [ "$rc" = 0 ]; then
  [ "$(qg "select count(*) from attempts where devices like 'cuda:%'")" = 6 ] ||
    fail "GPU sweep ran, but not on CUDA: $(qg "select devices from attempts")"
else
  [ "$rc" = 4 ] || { cat "$TMP/out.txt"; fail "GPU sweep without a GPU: exit $rc, expected 4"; }
  grep -q -e "built without LibTorch" -e "sees no GPU" -e "need one GPU each" "$TMP/out.txt" ||
    { cat "$TMP/out.txt"; fail "GPU sweep without a GPU: no device message"; }
  grep -q "device set-up failed, no group registered" "$TMP/out.txt" || fail "no summary line"
  [ "$(qg "select count(*) from attempts")" = 0 ] || fail "a lease was taken without a GPU"
  [ "$(qg "select count(*) from groups")" = 0 ] || fail "a group registered without a GPU"
  [ "$(qg "select count(*) from trials where state = 'queued'")" = 6 ] || fail "trials not queued"
fi
# --devices cpu on a sweep that asks for GPUs: bad input (exit 2), said before anything starts.
set +e
timeout 60 "$MPIEXEC" -np 2 --oversubscribe "$WORKER" --sweep "$TMP/gpu.toml" --group-size 2 \
  --devices cpu --db "$TMP/gpu-cpu.db" --var SD2_TEST_DATA="$TMP" >"$TMP/out.txt" 2>&1
rc=$?
set -e
[ "$rc" = 2 ] || { cat "$TMP/out.txt"; fail "--devices cpu on a GPU sweep: exit $rc, expected 2"; }
grep -q "cpu groups cannot take them" "$TMP/out.txt" || { cat "$TMP/out.txt"; fail "message"; }
# Group mode: --devices cuda without a GPU exits 4 before it talks to the coordinator (there
# is none at this endpoint: registering would wait --give-up seconds).
if [ ! -e /dev/nvidia0 ]; then
  set +e
  timeout 30 "$MPIEXEC" -np 2 --oversubscribe "$WORKER" --coordinator "ipc://$TMP/none.sock" \
    --devices cuda --give-up 25 >"$TMP/out.txt" 2>&1
  rc=$?
  set -e
  [ "$rc" = 4 ] || { cat "$TMP/out.txt"; fail "group --devices cuda without GPU: exit $rc"; }
  grep -q "device set-up failed, not registering" "$TMP/out.txt" || fail "group message"
fi
echo "PASS"
