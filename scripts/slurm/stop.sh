#!/usr/bin/env bash
# Stops the single-node test Slurm that scripts/slurm/start.sh started and removes its
# directory. Idempotent: nothing running is fine.
#
#   scripts/slurm/stop.sh               # stop slurmd, slurmctld (and munged if start.sh
#                                       # started it); rm -rf $SD2_SLURM_DIR
#   scripts/slurm/stop.sh --keep-munge  # leave munged running (used by start.sh)
set -uo pipefail

DIR="${SD2_SLURM_DIR:-/tmp/sd2-slurm}"
keep_munge=0
[ "${1:-}" = "--keep-munge" ] && keep_munge=1

stop_pidfile() {
  local file="$1" pid
  [ -f "$file" ] || return 0
  pid="$(cat "$file" 2>/dev/null)"
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

if [ -f "$DIR/slurm.conf" ]; then
  SLURM_CONF="$DIR/slurm.conf" scancel --full --quiet --user=root >/dev/null 2>&1 || true
fi
stop_pidfile "$DIR/slurmd.pid"
stop_pidfile "$DIR/slurmctld.pid"
if [ "$keep_munge" -eq 0 ] && [ -f "$DIR/munged.ours" ]; then
  stop_pidfile /run/munge/munged.pid
fi
# Remove only our own directory, and only if it looks like ours.
if [ -d "$DIR" ] && { [ -f "$DIR/slurm.conf" ] || [ -d "$DIR/state" ]; }; then
  rm -rf "$DIR"
fi
exit 0
