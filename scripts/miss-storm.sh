#!/usr/bin/env bash
# Cache hits under a miss storm: p99 latency of cache hits (open loop, fixed
# rate) alone, then while 64 clients request keys that are never cached yet
# (every request a MISS that goes to the origin and writes an entry).
# Issue 4's goal: p99 of hits during the storm within 2x of hits alone.
# Usage: scripts/miss-storm.sh [seconds] [hit-rate] [miss-rate]; loopback only,
# stops by itself. FRONT=nginx runs the same with nginx as the caching proxy
# (same config) for comparison; PIN=1 puts the proxy on CPU 0 and all the
# rest on CPU 1. The storm is paced (miss-rate per second over 64 clients) so
# it measures interference, not a saturated CPU.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-5}; RATE=${2:-5000}; MISS_RATE=${3:-2000}; FRONT=${FRONT:-sluice}
BIN=$ROOT/target/release/sluice; BENCH=$ROOT/target/release/sluice-bench
[ -x "$BIN" ] && [ -x "$BENCH" ] || (cd "$ROOT" && cargo build --release --workspace -q)
W=$(mktemp -d /tmp/miss-storm.XXXXXX); chmod 755 "$W"  # nginx workers run as nobody
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"  # stop_pidfile, free_port
OP=$(free_port); PP=$(free_port)
mkdir -p "$W/www" "$W/cache"; head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$W/www/hit.txt"
cat > "$W/origin.conf" <<CONF
worker_processes 1; daemon on; pid $W/o.pid; error_log $W/o.err;
events { worker_connections 4096; }
http { server { listen 127.0.0.1:$OP; root $W/www; add_header Cache-Control "max-age=600"; location /m { return 200 "miss body"; } } }
CONF
cat > "$W/proxy.conf" <<CONF
worker_processes 1; daemon on; pid $W/p.pid; error_log $W/p.err;
$( [ "$FRONT" = nginx ] || echo "state_dir $W/state;" )
events { worker_connections 4096; }
http { proxy_cache_path $W/cache levels=1:2 keys_zone=c:10m;
  server { listen 127.0.0.1:$PP; location / { proxy_pass http://127.0.0.1:$OP; proxy_cache c; proxy_cache_valid 200 10m; } } }
CONF
# A stopping sluice publishes the fills it has queued first: wait for it.
cleanup() { stop_pidfile "$W/p.pid"; stop_pidfile "$W/o.pid"; rm -rf "$W"; }
trap cleanup EXIT
"$BIN" -c "$W/origin.conf"
if [ "$FRONT" = nginx ]; then
  mkdir -p "$W/logs"; nginx -p "$W" -c "$W/proxy.conf"
else
  "$BIN" -c "$W/proxy.conf"
fi
if [ -n "${PIN:-}" ]; then
  # PIN=1: the proxy (master, worker and its threads) on CPU 0, everything
  # else (origin, storm clients, load generator) on CPU 1.
  sleep 0.3
  for p in $(cat "$W/p.pid") $(pgrep -P "$(cat "$W/p.pid")"); do taskset -a -p -c 0 "$p" >/dev/null; done
  for p in $(cat "$W/o.pid") $(pgrep -P "$(cat "$W/o.pid")"); do taskset -a -p -c 1 "$p" >/dev/null; done
  taskset -p -c 1 $$ >/dev/null
fi
sleep 0.5
curl -s -o /dev/null "http://127.0.0.1:$PP/hit.txt"; sleep 0.3
p99() { "$BENCH" --mode rate --rate "$RATE" -c 64 -d "${SECS}s" --json "http://127.0.0.1:$PP/hit.txt" 2>/dev/null |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["latency_ms"]["p99"], d["ok"], d["error_total"])'; }
read -r alone ok1 err1 <<<"$(p99)"
# The storm: sluice-bench at an open-loop rate over 64 connections, every
# request for a new path (`{n}`), so each one is a MISS that is stored.
"$BENCH" --mode rate --rate "$MISS_RATE" -c 64 -d "$((SECS + 1))s" --json \
  "http://127.0.0.1:$PP/m/{n}" 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["ok"])' >"$W/storm.out" &
SP=$!
sleep 0.5
read -r storm ok2 err2 <<<"$(p99)"
wait "$SP"
misses=$(cat "$W/storm.out")
ratio=$(awk -v a="$storm" -v b="$alone" 'BEGIN {printf "%.2f", (b>0)?a/b:0}')
echo "$FRONT: cache hits at $RATE req/s, storm paced at $MISS_RATE misses/s: p99 alone ${alone} ms ($ok1 ok, $err1 errors); during a miss storm ${storm} ms ($ok2 ok, $err2 errors); storm: $misses misses in $((SECS+1)) s; ratio $ratio (goal <= 2)"
