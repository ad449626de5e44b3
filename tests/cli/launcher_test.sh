#!/usr/bin/env bash
# sd2-coordinator with a [launcher] table keeps local mpirun worker groups running for a sweep
# that has work: submit a smoke sweep and nothing else — the coordinator starts the groups,
# they run every trial, and exit when idle.
#   launcher_test.sh BIN_DIR
set -euo pipefail
BIN=$1
TMP=$(mktemp -d /tmp/sd2_launcher.XXXXXX)
COORD_PID=""
cleanup() {
  [ -n "$COORD_PID" ] && kill "$COORD_PID" 2>/dev/null
  sleep 0.5
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -30 "$TMP/coord.log" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
EP="ipc://$TMP/coord.sock"

cat > "$TMP/coordinator.toml" <<TOML
db = "$TMP/sd2.db"
bind = "$EP"
lease_s = 5

[launcher]
kind = "local"
groups = 2
ranks = 1
idle_exit = 3
worker = "$BIN/sd2-worker"
work_dir = "$TMP/work"
log_dir = "$TMP/logs"
oversubscribe = true
TOML
mkdir -p "$TMP/logs"
cat > "$TMP/smoke.toml" <<'TOML'
name = "launched"
methods = ["smoke"]
scales = [100]
seeds = [0, 1, 2, 3]

[data]
manifest = "/nonexistent/manifest.jsonl"

[[eval]]
name = "E1"
TOML

"$BIN/sd2-coordinator" --config "$TMP/coordinator.toml" >"$TMP/coord.log" 2>&1 &
COORD_PID=$!
for _ in $(seq 1 50); do "$BIN/sd2ctl" status --coordinator "$EP" >/dev/null 2>&1 && break; sleep 0.2; done
"$BIN/sd2ctl" submit "$TMP/smoke.toml" --coordinator "$EP" >/dev/null || fail "submit failed"
for _ in $(seq 1 120); do
  done_n=$(sqlite3 "$TMP/sd2.db" "select count(*) from trials where state='succeeded'")
  [ "$done_n" -eq 4 ] && break
  sleep 0.5
done
[ "$done_n" -eq 4 ] || fail "only $done_n of 4 trials succeeded"
grep -q "launcher: sweep-1: launched" "$TMP/coord.log" || fail "no launch logged"
groups=$(sqlite3 "$TMP/sd2.db" "select count(*) from groups")
[ "$groups" -ge 1 ] || fail "no group registered"
# Idle groups exit by themselves (idle_exit = 3 s).
for _ in $(seq 1 40); do
  pgrep -f "sd2-worker --coordinator $EP" >/dev/null || break
  sleep 0.5
done
if pgrep -f "sd2-worker --coordinator $EP" >/dev/null; then fail "groups did not exit when idle"; fi
echo "launcher: ok ($groups groups launched by the coordinator)"
