#!/usr/bin/env bash
# sd2ctl's control commands against a live sd2-coordinator: submit (--dry-run and real),
# status --json (the documented schema), cancel of one trial and of a sweep, resume, logs,
# watch --once, and the exit codes for bad input and an unreachable coordinator.
#   control_test.sh BIN_DIR
set -euo pipefail
BIN=$1
TMP=$(mktemp -d /tmp/sd2_control.XXXXXX)
COORD_PID=""
cleanup() { [ -n "$COORD_PID" ] && kill "$COORD_PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$TMP/coord.log" ] && tail -20 "$TMP/coord.log" >&2; exit 1; }
EP="ipc://$TMP/coord.sock"
CTL() { "$BIN/sd2ctl" "$@" --coordinator "$EP"; }

cat > "$TMP/smoke.toml" <<'TOML'
name = "control-smoke"
methods = ["smoke"]
scales = [100]
seeds = [0, 1, 2]

[data]
manifest = "/nonexistent/manifest.jsonl"

[[eval]]
name = "E1"
TOML

# No coordinator yet: a clear failure, exit 1.
set +e
"$BIN/sd2ctl" status --coordinator "$EP" >"$TMP/out" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "status without a coordinator exited $rc: $(cat "$TMP/out")"

"$BIN/sd2-coordinator" --db "$TMP/sd2.db" --bind "$EP" >"$TMP/coord.log" 2>&1 &
COORD_PID=$!
for _ in $(seq 1 50); do CTL status >/dev/null 2>&1 && break; sleep 0.2; done

# --dry-run prints the table and submits nothing.
CTL submit "$TMP/smoke.toml" --dry-run >"$TMP/dry" || fail "dry-run failed"
grep -q "smoke" "$TMP/dry" || fail "dry-run table lacks the trials: $(cat "$TMP/dry")"
n=$(sqlite3 "$TMP/sd2.db" "select count(*) from trials")
[ "$n" -eq 0 ] || fail "dry-run submitted $n trials"

# A bad sweep file: exit 2 with file:line:col.
printf 'name = "x"\nmethods = ["nope"]\n' >"$TMP/bad.toml"
set +e
CTL submit "$TMP/bad.toml" >"$TMP/out" 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "bad sweep exited $rc"
grep -q "bad.toml:2:" "$TMP/out" || fail "no file:line:col in: $(cat "$TMP/out")"

# Nesting beyond 64 levels is bad input with its position, never a crash: a sweep (100,000-part
# dotted key), an --override, and a coordinator config.
python3 -c 'print("x" + ".x" * 100000 + " = 1")' >"$TMP/deep.toml"
cat "$TMP/smoke.toml" >>"$TMP/deep.toml"
set +e
CTL submit "$TMP/deep.toml" >"$TMP/out" 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "deep sweep exited $rc: $(head -c 300 "$TMP/out")"
grep -q "deep.toml:1:128: TOML nests deeper than 64 levels" "$TMP/out" ||
  fail "deep sweep: $(head -c 300 "$TMP/out")"
set +e
CTL submit "$TMP/smoke.toml" --override "{\"x\": $(python3 -c 'print("[" * 1000)')" >"$TMP/out" 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "deep --override exited $rc: $(head -c 300 "$TMP/out")"
grep -q "override: JSON nests deeper than 64 levels (at byte 70)" "$TMP/out" ||
  fail "deep --override: $(head -c 300 "$TMP/out")"
python3 -c 'print("[launcher]\nkind" + ".x" * 100000 + " = 1")' >"$TMP/deep_coordinator.toml"
set +e
"$BIN/sd2-coordinator" --config "$TMP/deep_coordinator.toml" --db "$TMP/other.db" \
  --bind "ipc://$TMP/other.sock" >"$TMP/out" 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "deep coordinator config exited $rc: $(head -c 300 "$TMP/out")"
grep -q "deep_coordinator.toml:2:129: TOML nests deeper than 64 levels" "$TMP/out" ||
  fail "deep coordinator config: $(head -c 300 "$TMP/out")"
[ ! -e "$TMP/other.db" ] || fail "a refused config created a store"

CTL submit "$TMP/smoke.toml" >"$TMP/sub" || fail "submit failed: $(cat "$TMP/sub")"
CTL status --json >"$TMP/status.json" || fail "status --json failed"
/usr/bin/python3 - "$TMP/status.json" <<'PY' || fail "status --json schema: $(cat "$TMP/status.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert isinstance(d["groups"], list), d
s = d["sweeps"][0] if "sweeps" in d else d
t = s["trials"]
for k in ("total", "queued", "running", "succeeded", "failed", "reused", "cancelled"):
    assert isinstance(t[k], int), k
assert t["total"] == 3 and t["queued"] == 3, t
assert "sweep" in s, s
PY

key=$(sqlite3 "$TMP/sd2.db" "select trial_key from trials order by id limit 1")
CTL cancel "$key" >/dev/null || fail "cancel trial failed"
[ "$(sqlite3 "$TMP/sd2.db" "select state from trials where trial_key='$key'")" = cancelled ] ||
  fail "trial not cancelled"
sweep=$(sqlite3 "$TMP/sd2.db" "select id from sweeps limit 1")
CTL cancel --sweep "$sweep" >/dev/null || fail "cancel sweep failed"
[ "$(sqlite3 "$TMP/sd2.db" "select count(*) from trials where state='cancelled'")" -eq 3 ] ||
  fail "sweep not cancelled"
CTL resume "$sweep" >/dev/null || fail "resume failed"
[ "$(sqlite3 "$TMP/sd2.db" "select count(*) from trials where state='queued'")" -eq 3 ] ||
  fail "resume did not re-queue"
CTL logs "$key" >"$TMP/logs" || fail "logs failed"
grep -qi "cancel" "$TMP/logs" || fail "logs lack the cancel event: $(cat "$TMP/logs")"
CTL watch --once >"$TMP/watch" || fail "watch --once failed"
grep -q "control-smoke" "$TMP/watch" || fail "watch lacks the sweep: $(cat "$TMP/watch")"
echo "control commands: ok"
