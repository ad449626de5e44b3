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
echo "PASS"
