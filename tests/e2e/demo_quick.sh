#!/usr/bin/env bash
# End to end: `sd2ctl demo --quick` from nothing, interrupted once and resumed, then run again
# (every trial reused, tables in seconds). Checks the tables, the report files and the store.
#   demo_quick.sh BIN_DIR WORK_DIR
set -euo pipefail
BIN="$1"
DIR="$2"
rm -rf "$DIR"
mkdir -p "$DIR"
LOG="$DIR/../e2e-demo-logs"
rm -rf "$LOG" && mkdir -p "$LOG"
fail() { echo "FAIL: $*"; for f in "$LOG"/*.out; do echo "== $f"; tail -40 "$f"; done; exit 1; }

# 1. Start, interrupt with SIGINT once some trial has finished, resume.
"$BIN/sd2ctl" demo --quick --dir "$DIR/run" > "$LOG/first.out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  sleep 1
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  n=$(sqlite3 "$DIR/run/sd2.db" "select count(*) from attempts where state='succeeded'" 2>/dev/null || echo 0)
  if [ "${n:-0}" -ge 2 ]; then kill -INT "$pid"; break; fi
done
set +e
wait "$pid"
rc=$?
set -e
if [ "$rc" -ne 130 ] && [ "$rc" -ne 0 ]; then fail "interrupted demo exited $rc"; fi
echo "first run exited $rc"

start=$(date +%s)
"$BIN/sd2ctl" demo --quick --dir "$DIR/run" > "$LOG/second.out" 2>&1 || fail "resumed demo failed"
echo "resumed run took $(( $(date +%s) - start )) s"
out="$LOG/second.out"
for t in 2 3 4 5 6 7 8; do
  grep -q "Table $t" "$out" || fail "Table $t missing from the printed report"
done
for f in report.html scaling.svg sd2.db; do
  [ -s "$DIR/run/$f" ] || fail "$f missing"
done
grep -q "<svg" "$DIR/run/scaling.svg" || fail "scaling.svg is not an SVG"

# 2. Every trial succeeded exactly once; no duplicate metric rows (the primary key forbids
#    them, so count distinct (attempt, seq) against rows as a cross-check).
db="$DIR/run/sd2.db"
bad=$(sqlite3 "$db" "select count(*) from trials where state!='succeeded'")
[ "$bad" -eq 0 ] || fail "$bad trials did not succeed: $(sqlite3 "$db" "select method, state, last_error from trials where state!='succeeded'")"
twice=$(sqlite3 "$db" "select count(*) from (select trial_id from attempts where state='succeeded' group by trial_id having count(*)>1)")
[ "$twice" -eq 0 ] || fail "$twice trials succeeded twice"
methods=$(sqlite3 "$db" "select count(distinct method) from trials")
[ "$methods" -ge 9 ] || fail "only $methods methods ran (want the 7 detectors, univfd and probe)"

# 3. Again: everything reused, in seconds.
attempts_before=$(sqlite3 "$db" "select count(*) from attempts")
start=$(date +%s)
"$BIN/sd2ctl" demo --quick --dir "$DIR/run" > "$LOG/third.out" 2>&1 || fail "third run failed"
took=$(( $(date +%s) - start ))
attempts_after=$(sqlite3 "$db" "select count(*) from attempts")
[ "$attempts_before" -eq "$attempts_after" ] || fail "third run trained something again"
for t in 2 3 4 5 6 7 8; do
  grep -q "Table $t" "$LOG/third.out" || fail "Table $t missing from the third run's report"
done
[ "$took" -le 60 ] || fail "third run took $took s"
cat "$LOG/third.out" | head -80
echo "e2e demo: ok (third run $took s)"
