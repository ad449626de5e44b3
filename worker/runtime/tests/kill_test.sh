#!/usr/bin/env bash
# Crash safety end to end: a coordinator and two worker groups of two ranks (mpirun) run a
# 20-trial smoke sweep; the coordinator is killed with SIGKILL three times and restarted on the
# same database, and one worker rank is killed mid-trial (its group dies, its lease expires,
# the trial resumes elsewhere from its checkpoint). Groups exit after 10 s without work, which
# must outlast the killed group's lease (3 s) plus the retry back-off (1 s). Afterwards every trial succeeded exactly
# once and no metric row is stored twice.
# Usage: kill_test.sh MPIEXEC SD2_WORKER SD2_COORDINATOR SD2CTL
set -euo pipefail
MPIEXEC=$1
WORKER=$2
COORD=$3
SD2CTL=$4
TMP=$(mktemp -d /tmp/sd2_kill_test.XXXXXX)
EP="ipc://$TMP/coordinator.sock"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  echo "--- coordinator log"; tail -20 "$TMP/coordinator.log" >&2 || true
  echo "--- group logs"; tail -n 20 "$TMP"/group*.log >&2 || true
  echo "--- trials and attempts"
  sqlite3 "$TMP/sd2.db" "select t.trial_key, t.state, a.number, a.state, a.group_id, a.error from trials t left join attempts a on a.trial_id = t.id where t.state != 'succeeded' or a.state != 'succeeded'" >&2 || true
  exit 1
}
export OMPI_MCA_mpi_yield_when_idle=1
q() { sqlite3 -cmd ".timeout 5000" "$TMP/sd2.db" "$1"; }

start_coordinator() {
  "$COORD" --db "$TMP/sd2.db" --bind "$EP" --lease-s 3 --heartbeat-s 0.5 \
    >>"$TMP/coordinator.log" 2>&1 &
  CPID=$!
  PIDS+=("$CPID")
}

cat > "$TMP/smoke.toml" <<'TOML'
name = "smoke-kill"
methods = ["smoke"]
scales = [100]
seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]

[data]
manifest = "${SD2_TEST_DATA}/manifest.jsonl"

[hparams.smoke]
steps = 6

[[eval]]
name = "E1"
TOML

start_coordinator
"$SD2CTL" submit "$TMP/smoke.toml" --coordinator "$EP" --var SD2_TEST_DATA="$TMP" \
  --override '{"hparams":{"duration_s":0.6,"checkpoint_every":2}}' >"$TMP/submit.txt" 2>&1 ||
  { cat "$TMP/submit.txt"; fail "submit"; }
grep -q "20 trials, 20 queued" "$TMP/submit.txt" || { cat "$TMP/submit.txt"; fail "submit output"; }

for g in 1 2; do
  "$MPIEXEC" -np 2 --oversubscribe "$WORKER" --coordinator "$EP" --work-dir "$TMP/work" \
    --group-id "group$g" --idle-exit 10 --give-up 60 >"$TMP/group$g.log" 2>&1 &
  eval "G$g=$!"
  PIDS+=("$!")
done

# Kill the coordinator at several points and restart it on the same database.
for pause in 1.2 1.7 1.3; do
  sleep "$pause"
  kill -9 "$CPID"
  wait "$CPID" 2>/dev/null || true
  sleep 0.3
  start_coordinator
done

# Kill one rank of group 1 while it trains (once it holds a running attempt: on a loaded
# machine its ranks may still be starting): mpirun takes the whole group down.
for _ in $(seq 1 240); do
  [ "$(q "select count(*) from attempts where group_id = 'group1' and state = 'running'")" -ge 1 ] && break
  [ "$(q "select count(*) from trials where state = 'succeeded'")" = 20 ] &&
    fail "group 1 never ran a trial before the sweep ended"
  sleep 0.25
done
RANK=$(pgrep -P "$G1" -f sd2-worker | tail -1 || true)
[ -n "$RANK" ] || fail "no rank of group 1 to kill"
kill -9 "$RANK"

# Wait for the sweep (group 2 picks up the lost trial once its lease expires).
for _ in $(seq 1 120); do
  done_count=$(q "select count(*) from trials where state = 'succeeded'")
  [ "$done_count" = 20 ] && break
  sleep 0.5
done
[ "$done_count" = 20 ] || fail "only $done_count of 20 trials succeeded"
wait "$G2" || fail "group 2 exited non-zero"

[ "$(q "select count(*) from (select trial_id from attempts where state = 'succeeded' group by trial_id having count(*) > 1)")" = 0 ] ||
  fail "a trial succeeded twice"
[ "$(q "select count(*) from attempts where state = 'succeeded'")" = 20 ] || fail "succeeded attempts"
lost=$(q "select count(*) from attempts where state = 'lost'")
[ "$lost" -ge 1 ] || fail "the killed group's attempt was not marked lost"
[ "$(q "select count(*) from metrics")" = "$(q "select count(*) from (select distinct attempt_id, step, name from metrics)")" ] ||
  fail "duplicate metric rows"
[ "$(q "select count(*) from scores s join attempts a on a.id = s.attempt_id where a.state = 'succeeded'")" = 2000 ] ||
  fail "expected 100 scores per succeeded trial"
# A trial that lost its group resumed from its checkpoint (resumed_from > 0).
resumed=$(q "select count(*) from attempts where number > 1 and variant_json like '%resumed_from\":%' and variant_json not like '%resumed_from\":0%'")
echo "coordinator restarts: 3, lost attempts: $lost, resumed attempts: $resumed"
[ "$(q "select count(*) from sweeps where state = 'done'")" = 1 ] || fail "sweep not done"
echo "PASS"
