#!/usr/bin/env bash
# scripts/bench-cluster.sh — the cluster-mode benchmark of issue 8, on this machine.
#
# 1. Overshoot vs sync interval. For each sync interval (SYNCS) and node count
#    (NODE_COUNTS): a fresh redis-server on a free 127.0.0.1 port, N sluice nodes
#    (1 worker each, own state_dir / pid / port) sharing one global
#    `limit_req_zone $host ... rate=${RATE}r/s cluster=on` (burst 0), and all nodes
#    driven at once for DURATION seconds, open loop (sluice-bench --mode rate), each
#    at LOAD x RATE / N requests/s, all with the same Host (one global key).
#    Admitted = 200 responses of all nodes; reported as admitted / (RATE x DURATION)
#    and as overshoot %, next to the stated bound nodes x RATE x sync (as % of
#    RATE x DURATION).
# 2. Moving load (the share estimator adapting): 2 nodes; node 1 gets all the load
#    (LOAD x RATE) for the first half, node 2 for the second; admitted per half, and
#    how long each node takes to reach 90 % of RATE (from a /status sampler).
# 3. Cost of cluster mode: one node, 1 worker, `sluice-bench` keep-alive
#    (TP_CONNS conns, TP_SECS s) against a limit_req location with a rate nothing
#    reaches, the zone with `cluster=on` (and a `cluster` directive) vs the same zone
#    local (no `cluster` directive); TP_RUNS alternating runs each; medians, ratio.
#
# Usage: scripts/bench-cluster.sh [OUT_DIR]     (default /tmp/bench-cluster-out)
# Environment: QUICK=1 (about 2 minutes instead of about 4), RATE (100), DURATION
# (10 s; 4 with QUICK), LOAD (4: total demand / RATE), SYNCS ("10ms 50ms 100ms
# 250ms 500ms 1s"), NODE_COUNTS ("2 4"), MOVE_SYNCS ("100ms 1s"; "100ms" with
# QUICK), TP_SECS (5; 2), TP_CONNS (50), TP_RUNS (3), SLUICE, BENCH (binaries;
# default $CARGO_TARGET_DIR or target/release, built if missing).
# Output: results.md (the tables), overshoot.csv, move.csv, move-timeline.csv,
# throughput.csv, overshoot.png and move.png (gnuplot, if installed), raw/ (every
# sluice-bench JSON and node error log). Only 127.0.0.1; everything it starts is
# stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-/tmp/bench-cluster-out}
QUICK=${QUICK:-0}
RATE=${RATE:-100}
LOAD=${LOAD:-4}
SYNCS=${SYNCS:-10ms 50ms 100ms 250ms 500ms 1s}
NODE_COUNTS=${NODE_COUNTS:-2 4}
TP_CONNS=${TP_CONNS:-50}
TP_RUNS=${TP_RUNS:-3}
if [ "$QUICK" = 1 ]; then
  DURATION=${DURATION:-4}; MOVE_SYNCS=${MOVE_SYNCS:-100ms}; TP_SECS=${TP_SECS:-2}
else
  DURATION=${DURATION:-10}; MOVE_SYNCS=${MOVE_SYNCS:-100ms 1s}; TP_SECS=${TP_SECS:-5}
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SLUICE=${SLUICE:-$TARGET/release/sluice}
BENCH=${BENCH:-$TARGET/release/sluice-bench}

die() { echo "bench-cluster.sh: $*" >&2; exit 1; }
log() { echo "bench-cluster.sh: $(date +%T) $*" >&2; }

for v in RATE LOAD DURATION TP_SECS TP_CONNS TP_RUNS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v wants a positive integer (got '${!v}')"
done
[ "$RATE" -le 1000000 ] || die "RATE is at most 1000000"
command -v redis-server >/dev/null || die "redis-server is needed (apt-get install redis-server)"
command -v python3 >/dev/null || die "python3 is needed"
command -v gnuplot >/dev/null || log "gnuplot missing: no plots"

# sync interval -> milliseconds (10ms, 1s, 1.5s, 2m)
to_ms() {
  python3 - "$1" <<'PY'
import re, sys
m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", sys.argv[1])
if not m:
    sys.exit(f"bad interval {sys.argv[1]!r} (like 10ms, 1s)")
print(int(round(float(m[1]) * {"ms": 1, "s": 1000, "m": 60000}[m[2]])))
PY
}
for s in $SYNCS $MOVE_SYNCS; do to_ms "$s" >/dev/null || die "bad sync interval '$s'"; done
for n in $NODE_COUNTS; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "bad node count '$n'"; done

cd "$ROOT"
if [ ! -x "$SLUICE" ] || [ ! -x "$BENCH" ]; then
  log "building sluice and sluice-bench (release)"
  cargo build --release -q -p sluice -p sluice-bench || die "cargo build failed"
fi
[ -x "$SLUICE" ] && [ -x "$BENCH" ] || die "no $SLUICE or $BENCH"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------- work dir, cleanup
W=$(mktemp -d /tmp/bench-cluster.XXXXXX)
chmod 755 "$W"
mkdir -p "$OUT/raw"
START=$(date +%s)
PIDFILES=() # sluice masters
PIDS=()     # redis-server, sluice-bench, samplers: our own children

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"  # stop_pidfile, free_port, wait_port
forget() { # pid: reaped, so no longer ours to stop
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
stop_pid() { # pid (a child of this shell): TERM, wait up to 2 s, KILL, reap
  if kill -0 "$1" 2>/dev/null; then
    kill "$1" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
  fi
  wait "$1" 2>/dev/null || true
  forget "$1"
}
cleanup() {
  local p
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  for p in "${PIDFILES[@]}"; do stop_pidfile "$p"; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# ---------------------------------------------------------------- redis and nodes
REDIS_PID=""
REDIS_PORT=""
start_redis() { # DIR
  mkdir -p "$1"
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$1" --logfile "$1/redis.log" >/dev/null 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  wait_port "$REDIS_PORT" || die "redis-server did not start (see $1/redis.log)"
}
stop_redis() { [ -n "$REDIS_PID" ] && stop_pid "$REDIS_PID"; REDIS_PID=""; }

# start_node DIR NAME HTTP_EXTRA LOCATIONS: one sluice node, 1 worker; DIR/port
start_node() {
  local d=$1 port
  mkdir -p "$d/www/g" "$d/www/t" "$d/state" "$d/logs"
  echo g >"$d/www/g/x"
  head -c 612 /dev/zero | tr '\0' a >"$d/www/t/index.html"
  port=$(free_port)
  echo "$port" >"$d/port"
  cat >"$d/sluice.conf" <<CONF
worker_processes 1;
daemon on;
pid $d/sluice.pid;
state_dir $d/state;
error_log $d/logs/error.log info;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_timeout 75s;
  $3
  server {
    listen 127.0.0.1:$port;
    root $d/www;
    location = /status { status; }
    $4
  }
}
CONF
  PIDFILES+=("$d/sluice.pid")
  "$SLUICE" -c "$d/sluice.conf" >"$d/start.out" 2>&1 || die "node $2 did not start: $(tail -2 "$d/start.out")"
  for _ in $(seq 50); do [ -s "$d/sluice.pid" ] && break; sleep 0.1; done
  [ -s "$d/sluice.pid" ] || die "node $2: no pid file"
  wait_port "$port" || die "node $2: port $port not listening"
}
stop_nodes() { # DIR...: QUIT all masters at once, wait, KILL leftovers; keep the error logs
  local d m any kids=() live=()
  for d in "$@"; do
    m=$(cat "$d/sluice.pid" 2>/dev/null) || continue
    [ -n "$m" ] && kill -0 "$m" 2>/dev/null || continue
    # shellcheck disable=SC2207 # pids
    kids+=($(pgrep -P "$m" || true))
    live+=("$m")
    kill -QUIT "$m" 2>/dev/null || true
  done
  for _ in $(seq 50); do
    any=0
    for m in "${live[@]}"; do kill -0 "$m" 2>/dev/null && any=1; done
    [ $any = 0 ] && break
    sleep 0.1
  done
  for m in "${live[@]}" "${kids[@]}"; do kill -0 "$m" 2>/dev/null && kill -KILL "$m" 2>/dev/null; done
  for d in "$@"; do
    # without the one line per refused request
    grep -v 'limiting requests by zone' "$d/logs/error.log" \
      >"$OUT/raw/$(basename "$(dirname "$d")")-$(basename "$d")-error.log" 2>/dev/null || true
  done
  return 0
}

# wait_synced N PORT...: every node's zone g synced and seeing N nodes (10 s at most)
wait_synced() {
  python3 - "$@" <<'PY'
import http.client, json, sys, time
n, ports = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
end = time.time() + 10
def ok(p):
    try:
        c = http.client.HTTPConnection("127.0.0.1", p, timeout=2)
        c.request("GET", "/status", headers={"Accept": "application/json"})
        g = json.loads(c.getresponse().read())["cluster"]["g"]
        return g["synced"] and g["nodes"] == n
    except Exception:
        return False
while time.time() < end:
    if all(ok(p) for p in ports):
        sys.exit(0)
    time.sleep(0.05)
sys.exit(f"nodes not synced with {n} live nodes after 10 s")
PY
}

# cluster_nodes DIR N SYNC: N nodes DIR/n1.. sharing zone g; their ports in PORTS
PORTS=()
cluster_nodes() {
  local dir=$1 n=$2 sync=$3 i
  local zone="limit_req_zone \$host zone=g:1m rate=${RATE}r/s cluster=on;"
  PORTS=()
  for i in $(seq "$n"); do
    start_node "$dir/n$i" "n$i" \
      "cluster redis://127.0.0.1:$REDIS_PORT sync=$sync failure=local node=n$i; $zone" \
      "location /g/ { limit_req zone=g; }"
    PORTS+=("$(cat "$dir/n$i/port")")
  done
  wait_synced "$n" "${PORTS[@]}" || die "$(basename "$dir"): nodes did not sync"
}

# drive PORT RPS MS JSON: open-loop load on /g/x for MS milliseconds, in the background
BENCH_PIDS=()
drive() {
  "$BENCH" --mode rate --rate "$2" -c 8 -d "$3ms" --timeout 5s --json -H "Host: cluster-bench" \
    "http://127.0.0.1:$1/g/x" >"$4" 2>"${4%.json}.log" &
  BENCH_PIDS+=("$!")
  PIDS+=("$!")
}
wait_bench() { local p; for p in "${BENCH_PIDS[@]}"; do wait "$p" || true; forget "$p"; done; BENCH_PIDS=(); }
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], 0))' "$1" "$2" 2>/dev/null || echo 0; }

# start_sampler TAG FILE PORT...: in the background, every node's "allowed" count of
# zone g every 50 ms, as "TAG,unix_time,node,count" lines; its pid in SAMPLER
SAMPLER=""
start_sampler() {
  python3 - "$@" <<'PY' &
import http.client, json, sys, time
tag, out, ports = sys.argv[1], open(sys.argv[2], "w"), [int(p) for p in sys.argv[3:]]
cons = {}
while True:
    for i, p in enumerate(ports):
        try:
            c = cons.get(p) or http.client.HTTPConnection("127.0.0.1", p, timeout=2)
            cons[p] = c
            c.request("GET", "/status", headers={"Accept": "application/json"})
            a = json.loads(c.getresponse().read())["limits"]["g"]["allowed"]
            print(f"{tag},{time.time():.3f},{i + 1},{a}", file=out, flush=True)
        except Exception:
            cons.pop(p, None)
    time.sleep(0.05)
PY
  SAMPLER=$!
  PIDS+=("$SAMPLER")
}

# ---------------------------------------------------------------- 1. overshoot
echo "nodes,sync_ms,rate,duration_s,demand_rps,admitted,sent,limit,admitted_ratio,overshoot_pct,bound_pct,second_half_ratio" >"$OUT/overshoot.csv"
overshoot_run() { # N SYNC
  local n=$1 sync=$2 ms dir ports i admitted=0 sent=0 per line t0 second
  ms=$(to_ms "$sync")
  dir="$W/over-$n-$sync"
  log "overshoot: $n nodes, sync=$sync, ${RATE} r/s, ${DURATION} s"
  start_redis "$dir/redis"
  cluster_nodes "$dir" "$n" "$sync"; ports=("${PORTS[@]}")
  per=$(( (LOAD * RATE + n - 1) / n ))
  start_sampler "$n-$ms" "$OUT/raw/over-$n-$sync-timeline.csv" "${ports[@]}"
  sleep 0.2
  t0=$(date +%s.%N)
  echo "$t0" >"$OUT/raw/over-$n-$sync-t0"
  for i in "${!ports[@]}"; do
    drive "${ports[$i]}" "$per" $((DURATION * 1000)) "$OUT/raw/over-$n-$sync-n$((i + 1)).json"
  done
  wait_bench
  sleep 0.2
  stop_pid "$SAMPLER"
  # admissions in the second half of the run (the first holds the start-up transient)
  second=$(python3 - "$OUT/raw/over-$n-$sync-timeline.csv" "$t0" "$DURATION" "$RATE" <<'PY'
import sys
t0, dur, rate = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
by = {}
for line in open(sys.argv[1]):
    _, t, node, a = line.strip().split(",")
    by.setdefault(node, []).append((float(t), int(a)))
tot = 0
for s in by.values():
    mid = min(s, key=lambda x: abs(x[0] - (t0 + dur / 2)))
    tot += s[-1][1] - mid[1]
print(f"{tot / (rate * dur / 2):.4f}")
PY
  ) || second=-
  for i in "${!ports[@]}"; do
    admitted=$((admitted + $(json_field "$OUT/raw/over-$n-$sync-n$((i + 1)).json" ok)))
    sent=$((sent + $(json_field "$OUT/raw/over-$n-$sync-n$((i + 1)).json" sent)))
  done
  local nd=()
  for i in $(seq "$n"); do nd+=("$dir/n$i"); done
  stop_nodes "${nd[@]}"
  stop_redis
  line=$(awk -v n="$n" -v ms="$ms" -v r="$RATE" -v t="$DURATION" -v d=$((per * n)) -v a="$admitted" -v s="$sent" -v h="$second" \
    'BEGIN { l = r * t; printf "%d,%d,%d,%d,%d,%d,%d,%d,%.4f,%.2f,%.2f,%s", n, ms, r, t, d, a, s, l, a / l, 100 * (a / l - 1), 100 * n * ms / 1000 / t, h }')
  echo "$line" >>"$OUT/overshoot.csv"
}
for n in $NODE_COUNTS; do
  for s in $SYNCS; do overshoot_run "$n" "$s"; done
done

# ---------------------------------------------------------------- 2. moving load
echo "sync_ms,phase,node,admitted,sent,expected,reach_90pct_s" >"$OUT/move.csv"
echo "sync_ms,t_s,node,admitted_total" >"$OUT/move-timeline.csv"
move_run() { # SYNC
  local sync=$1 ms dir ports half sampler
  ms=$(to_ms "$sync")
  dir="$W/move-$sync"
  log "moving load: 2 nodes, sync=$sync, node 1 then node 2, $((DURATION * 500)) ms each"
  start_redis "$dir/redis"
  cluster_nodes "$dir" 2 "$sync"; ports=("${PORTS[@]}")
  half=$((DURATION * 500))
  start_sampler "$ms" "$dir/timeline.csv" "${ports[@]}"
  sampler=$SAMPLER
  sleep 0.3
  echo "$(date +%s.%N)" >"$dir/t_start"
  drive "${ports[0]}" $((LOAD * RATE)) "$half" "$OUT/raw/move-$sync-n1.json"; wait_bench
  echo "$(date +%s.%N)" >"$dir/t_move"
  drive "${ports[1]}" $((LOAD * RATE)) "$half" "$OUT/raw/move-$sync-n2.json"; wait_bench
  sleep 0.3
  stop_pid "$sampler"
  stop_nodes "$dir/n1" "$dir/n2"
  stop_redis
  awk -F, -v t0="$(cat "$dir/t_start")" '{printf "%s,%.3f,%s,%s\n", $1, $2 - t0, $3, $4}' "$dir/timeline.csv" >>"$OUT/move-timeline.csv"
  # phase rows: admitted per node, and when the loaded node first reached 90 % of RATE
  # (admitted over a sliding 0.5 s of samples), counted from the start of its phase
  python3 - "$ms" "$RATE" "$half" "$dir/timeline.csv" "$OUT/raw/move-$sync-n1.json" \
    "$OUT/raw/move-$sync-n2.json" "$dir/t_start" "$dir/t_move" >>"$OUT/move.csv" <<'PY'
import json, sys
ms, rate, half = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000
samples = {1: [], 2: []}
for line in open(sys.argv[4]):
    _, t, node, a = line.strip().split(",")
    samples[int(node)].append((float(t), int(a)))
starts = {1: float(open(sys.argv[7]).read()), 2: float(open(sys.argv[8]).read())}
for node, path in ((1, sys.argv[5]), (2, sys.argv[6])):
    d = json.load(open(path))
    s = [x for x in samples[node] if x[0] >= starts[node] - 0.06]
    reach = "-"
    for j in range(len(s)):
        k = next((k for k in range(j, len(s)) if s[k][0] >= s[j][0] + 0.5), None)
        if k is None:
            break
        r = (s[k][1] - s[j][1]) / (s[k][0] - s[j][0])
        if r >= 0.9 * rate:
            reach = f"{max(0.0, s[j][0] - starts[node]):.2f}"
            break
    print(f"{ms},{'first' if node == 1 else 'second'} half,{node},{d['ok']},{d['sent']},{rate * half:.0f},{reach}")
PY
}
for s in $MOVE_SYNCS; do move_run "$s"; done

# ---------------------------------------------------------------- 3. throughput cost
echo "variant,run,rps,ok,non2xx,errors,p99_ms,cpu_us_per_req" >"$OUT/throughput.csv"
TCK=$(getconf CLK_TCK)
cpu_ticks() { # DIR: utime + stime of the node's workers (all their threads)
  local t=0 p
  for p in $(pgrep -P "$(cat "$1/sluice.pid")"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}
log "throughput: cluster=on vs local zone, $TP_RUNS x ${TP_SECS} s each, -c $TP_CONNS"
TPD="$W/tp"
start_redis "$TPD/redis"
TPZONE="limit_req_zone \$host zone=g:1m rate=1000000r/s"
TPLOC="location /t/ { limit_req zone=g burst=1000 nodelay; }"
start_node "$TPD/cluster" cluster "cluster redis://127.0.0.1:$REDIS_PORT sync=100ms failure=local node=tp; $TPZONE cluster=on;" "$TPLOC"
start_node "$TPD/local" local "$TPZONE;" "$TPLOC"
wait_synced 1 "$(cat "$TPD/cluster/port")" || die "throughput node did not sync"
tp_run() { # VARIANT RUN SECS
  local port json c0 c1
  port=$(cat "$TPD/$1/port")
  c0=$(cpu_ticks "$TPD/$1")
  json="$OUT/raw/tp-$1-r$2.json"
  "$BENCH" -c "$TP_CONNS" -d "$3s" --json "http://127.0.0.1:$port/t/index.html" >"$json" 2>"${json%.json}.log" &
  local pid=$!
  PIDS+=("$pid")
  wait "$pid" || true
  forget "$pid"
  c1=$(cpu_ticks "$TPD/$1")
  [ "$2" = warmup ] && return 0
  python3 - "$json" "$1" "$2" "$((c1 - c0))" "$TCK" >>"$OUT/throughput.csv" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
n = d["sent"] or 1
cpu = int(sys.argv[4]) / int(sys.argv[5]) * 1e6 / n
print(f"{sys.argv[2]},{sys.argv[3]},{d['rps']:.0f},{d['ok']},{d['non2xx']},{d['error_total']},{d['latency_ms']['p99']},{cpu:.2f}")
PY
}
tp_run local warmup 1
tp_run cluster warmup 1
for r in $(seq "$TP_RUNS"); do # A B B A ...: neither always goes first
  if [ $((r % 2)) = 1 ]; then tp_run local "$r" "$TP_SECS"; tp_run cluster "$r" "$TP_SECS"
  else tp_run cluster "$r" "$TP_SECS"; tp_run local "$r" "$TP_SECS"; fi
done
TP_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
TP_SYNC=$(curl -s -H 'Accept: application/json' "http://127.0.0.1:$(cat "$TPD/cluster/port")/status" 2>/dev/null |
  python3 -c 'import json,sys; g=json.load(sys.stdin)["cluster"]["g"]; print(g["syncs"], "syncs,", g["sync_failures"], "failed")' 2>/dev/null || echo "status unavailable")
stop_nodes "$TPD/cluster" "$TPD/local"
stop_redis

# ---------------------------------------------------------------- report
ELAPSED=$(($(date +%s) - START))
{
  echo "# sluice cluster mode (issue 8)"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), $(redis-server --version | awk '{print $1, $3}'), git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown); run took ${ELAPSED} s"
  echo
  echo "## Overshoot vs sync interval"
  echo
  echo "Global \`limit_req\` of $RATE r/s (burst 0), one key, every node 1 worker; all nodes driven at once for $DURATION s,"
  echo "open loop, $LOAD x $RATE r/s in total split evenly. Limit = $RATE x $DURATION admissions; bound = nodes x rate x sync, as % of the limit."
  echo
  echo "| nodes | sync | demand r/s | admitted | limit | admitted / limit | overshoot | bound | 2nd half: admitted / limit |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  tail -n +2 "$OUT/overshoot.csv" | while IFS=, read -r n ms _ _ d a _ l ratio over bound half; do
    echo "| $n | ${ms} ms | $d | $a | $l | $ratio | ${over} % | ${bound} % | $half |"
  done
  echo
  echo "Last column: admissions in the second half of the run (from /status, sampled every 50 ms) over rate x half: the steady state, without the start-up transient."
  echo
  echo "## Moving load (2 nodes)"
  echo
  echo "All load ($((LOAD * RATE)) r/s) to node 1 for $((DURATION * 500)) ms, then to node 2 for as long; expected admissions per half = rate x half."
  echo "\"reaches 90 %\": seconds from the start of the node's phase until its admissions over 0.5 s first reach 90 % of the rate (from /status every 50 ms)."
  echo
  echo "| sync | phase | node | admitted | expected | admitted / expected | reaches 90 % after |"
  echo "|---:|---|---:|---:|---:|---:|---:|"
  tail -n +2 "$OUT/move.csv" | while IFS=, read -r ms phase node a _ e reach; do
    echo "| ${ms} ms | $phase | $node | $a | $e | $(awk -v a="$a" -v e="$e" 'BEGIN { printf "%.3f", a / e }') | ${reach} s |"
  done
  tail -n +2 "$OUT/move.csv" | awk -F, '{a[$1] += $4; e[$1] += $6} END {for (k in a) printf "%s %d %d\n", k, a[k], e[k]}' | sort -n |
    while read -r ms a e; do
      echo
      echo "sync ${ms} ms: $a admitted in total of $e ($(awk -v a="$a" -v e="$e" 'BEGIN { printf "%+.1f %%", 100 * (a / e - 1) }'))."
    done
  echo
  echo "## Cost of cluster mode on throughput"
  echo
  echo "One node, 1 worker, sluice-bench keep-alive -c $TP_CONNS for $TP_SECS s, \`limit_req zone=g burst=1000 nodelay\` with rate=1000000r/s;"
  echo "the zone with \`cluster=on\` (sync=100ms; $TP_SYNC) vs the same zone local. $TP_RUNS alternating runs each."
  echo
  echo "| variant | req/s per run | median req/s | non-2xx | p99 ms (median) | worker CPU us/request per run | median |"
  echo "|---|---|---:|---:|---:|---|---:|"
  for v in local cluster; do
    awk -F, -v v="$v" '$1 == v' "$OUT/throughput.csv" >"$W/tp-$v"
    echo "| $v | $(cut -d, -f3 "$W/tp-$v" | paste -sd' ') | $(cut -d, -f3 "$W/tp-$v" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}') | $(awk -F, '{s += $5} END {print s + 0}' "$W/tp-$v") | $(cut -d, -f7 "$W/tp-$v" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}') | $(cut -d, -f8 "$W/tp-$v" | paste -sd' ') | $(cut -d, -f8 "$W/tp-$v" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}') |"
  done
  med() { cut -d, -f"${2:-3}" "$1" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
  echo
  echo "cluster / local throughput: $(awk -v c="$(med "$W/tp-cluster")" -v l="$(med "$W/tp-local")" 'BEGIN { printf "%.1f %%", 100 * c / l }') (issue target >= 95 %);" \
    "CPU per request local / cluster: $(awk -v c="$(med "$W/tp-cluster" 8)" -v l="$(med "$W/tp-local" 8)" 'BEGIN { printf "%.1f %%", 100 * l / c }')."
  echo "Load average during these runs: $TP_LOAD (this machine has $(nproc) cores; anything else running skews req/s more than CPU per request)."
} >"$OUT/results.md"

# ---------------------------------------------------------------- plots
if command -v gnuplot >/dev/null; then
  for n in $NODE_COUNTS; do
    awk -F, -v n="$n" 'NR > 1 && $1 == n {print $2, $10, $11}' "$OUT/overshoot.csv" >"$OUT/overshoot-$n.dat"
  done
  {
    echo "set terminal pngcairo size 900,560 font 'sans,10'"
    echo "set output '$OUT/overshoot.png'"
    echo "set title 'sluice cluster mode: overshoot of a global ${RATE} r/s limit over ${DURATION} s ($LOAD x demand)'"
    echo "set xlabel 'sync interval (ms)'; set ylabel 'admitted above the limit (% of rate x time)'"
    echo "set logscale x; set grid; set key top left"
    plot="plot"
    c=0
    for n in $NODE_COUNTS; do
      c=$((c + 1))
      plot="$plot '$OUT/overshoot-$n.dat' using 1:2 with linespoints lw 2 pt 7 lc $c title '$n nodes: measured',"
      plot="$plot '' using 1:3 with lines dt 2 lc $c title '$n nodes: bound (nodes x rate x sync)',"
    done
    echo "${plot%,}"
  } >"$OUT/overshoot.gp"
  gnuplot "$OUT/overshoot.gp" 2>"$OUT/raw/gnuplot.log" || log "gnuplot failed: $(tail -1 "$OUT/raw/gnuplot.log")"
  # moving load: admitted r/s per node over time (differences of the sampled counts)
  for s in $MOVE_SYNCS; do
    ms=$(to_ms "$s")
    for node in 1 2; do
      awk -F, -v ms="$ms" -v node="$node" 'NR > 1 && $1 == ms && $3 == node {
          if (seen && $2 - t >= 0.2) { print (t + $2) / 2, ($4 - a) / ($2 - t); t = $2; a = $4 }
          else if (!seen) { seen = 1; t = $2; a = $4 } }' "$OUT/move-timeline.csv" >"$OUT/move-$ms-n$node.dat"
    done
  done
  {
    echo "set terminal pngcairo size 900,560 font 'sans,10'"
    echo "set output '$OUT/move.png'"
    echo "set title 'moving load: all traffic to node 1, then to node 2 (global ${RATE} r/s)'"
    echo "set xlabel 'time (s)'; set ylabel 'admitted r/s (0.2 s steps)'; set grid; set key top right"
    echo "set yrange [0:$((RATE * 3 / 2))]; set xrange [-0.5:$DURATION.5]"
    plot="plot $RATE with lines lc rgb 'black' dt 3 title 'rate',"
    c=0
    for s in $MOVE_SYNCS; do
      ms=$(to_ms "$s")
      for node in 1 2; do
        c=$((c + 1))
        plot="$plot '$OUT/move-$ms-n$node.dat' using 1:2 with lines lw 2 lc $c title 'sync $s, node $node',"
      done
    done
    echo "${plot%,}"
  } >"$OUT/move.gp"
  gnuplot "$OUT/move.gp" 2>>"$OUT/raw/gnuplot.log" || log "gnuplot failed: $(tail -1 "$OUT/raw/gnuplot.log")"
fi

cat "$OUT/results.md"
echo
log "results in $OUT (results.md, *.csv, *.png, raw/)"
