#!/bin/sh
# Usage: loopback.sh SERVER CLIENT
# Starts SERVER on port 0, takes its address from its first line ("listening on URI"), runs
# CLIENT URI 200 (which checks every echo), then stops SERVER with SIGTERM (by its PID) and
# requires both to have exited 0. Every wait is bounded.
set -eu
server=$1 client=$2
out=$(mktemp)
"$server" --listen tcp://127.0.0.1:0 >"$out" &
pid=$!
trap 'kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
uri=
for _ in $(seq 100); do  # 10 s at most
  uri=$(sed -n '1s/^listening on \([^ ]*\).*/\1/p' "$out")
  [ -n "$uri" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "loopback: $server exited before listening" >&2; exit 1; }
  sleep 0.1
done
[ -n "$uri" ] || { echo "loopback: no 'listening on' line from $server" >&2; exit 1; }
timeout 30 "$client" "$uri" 200
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[ "$status" -eq 0 ] || { echo "loopback: $server exited with status $status" >&2; exit 1; }
