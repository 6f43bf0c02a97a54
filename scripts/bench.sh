#!/usr/bin/env bash
# scripts/bench.sh — sluice vs nginx, reproducibly, on this machine.
#
# Starts nginx and sluice with equivalent generated configs (same worker count, same
# files, access log off in both, same keep-alive timeout) on free 127.0.0.1 ports,
# warms both, runs each scenario on both alternately (sluice, nginx, sluice, nginx, …)
# with sluice-bench, and reports medians. Everything it starts is stopped on exit.
#
# Scenarios (--scenarios, comma separated):
#   static     612-byte file, keep-alive          static64k  64 KiB file, keep-alive
#   latency    612-byte file at one fixed request rate (--latency-rate) for both: p99
#   burst      one-shot connections at once, for each size in --bursts
#   cache      cache hit (612 B) through the caching proxy (one nginx origin behind both)
#   cache64k   the same with a 64 KiB body
#   limits     limit_req on vs off, for each server
#   reload     keep-alive load while each server gets SIGHUP every second
#   tls        https on one ECDSA P-256 certificate (openssl, made at run time), two
#              rows: tls (612-byte file, keep-alive, req/s) and tls-handshake (one
#              request per connection, each a full handshake: connections/s)
#   wrk        (not default) sluice-bench vs wrk on the same nginx: checks the tool
# A scenario sluice cannot run yet (`sluice -t` rejects its config, or sluice is not
# built or does not start) is reported as skipped with the reason; never faked.
#
# Results go to --out (default results/YYYYmmdd-HHMMSS): results.md (table),
# summary.csv, runs.csv, burst.csv, plot.png (gnuplot), machine.txt, raw/ (every
# sluice-bench JSON and server error log).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCENARIOS=static,latency,static64k,burst,cache,cache64k,limits,reload,tls
LAT_RATE=20000
DURATION=5
CONNS=100
WORKERS=1
ACCEPT_MODE=handoff
ROUNDS=2
THREADS=1
WARMUP=1
BURSTS=100,1000,2000,5000,10000
BURST_TIMEOUT=5
OUT=""
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SLUICE=${SLUICE:-$TARGET/release/sluice}
BENCH=${BENCH:-$TARGET/release/sluice-bench}
BUILD=1

usage() {
  cat <<EOF
usage: scripts/bench.sh [options]
  --scenarios LIST   static,latency,static64k,burst,cache,cache64k,limits,reload,tls[,wrk] (default: $SCENARIOS)
  --latency-rate R   requests/s both servers get in the latency scenario (open loop; default 20000)
  --duration SECS    seconds per measured run (default $DURATION)
  --conns N          keep-alive connections (default $CONNS)
  --workers N        worker processes of both servers (default $WORKERS)
  --rounds N         measured runs per server and scenario; medians reported (default $ROUNDS)
  --threads N        sluice-bench threads (default $THREADS)
  --warmup SECS      warm-up run per server before measuring (default $WARMUP)
  --bursts LIST      burst sizes (default $BURSTS)
  --burst-timeout S  per-connection timeout in bursts (default $BURST_TIMEOUT)
  --out DIR          results directory (default results/DATE)
  --sluice PATH      sluice binary (default target/release/sluice)
  --no-build         do not run cargo build for missing binaries
  -h, --help         this text
EOF
}

bad() { echo "bench.sh: $*" >&2; usage >&2; exit 2; }
die() { echo "bench.sh: $*" >&2; exit 1; }
log() { echo "bench.sh: $*" >&2; }

while [ $# -gt 0 ]; do
  if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi
  case $1 in
    -h|--help) usage; exit 0 ;;
    --no-build) BUILD=0; shift; continue ;;
  esac
  [ $# -ge 2 ] || bad "option $1 needs a value"
  case $1 in
    --scenarios) SCENARIOS=$2 ;;
    --latency-rate) LAT_RATE=$2 ;;
    --duration) DURATION=$2 ;;
    --conns) CONNS=$2 ;;
    --workers) WORKERS=$2 ;;
    --accept-mode) ACCEPT_MODE=$2 ;;
    --rounds) ROUNDS=$2 ;;
    --threads) THREADS=$2 ;;
    --warmup) WARMUP=$2 ;;
    --bursts) BURSTS=$2 ;;
    --burst-timeout) BURST_TIMEOUT=$2 ;;
    --out) OUT=$2 ;;
    --sluice) SLUICE=$2 ;;
    *) bad "unknown option $1" ;;
  esac
  shift 2
done
for v in DURATION CONNS WORKERS ROUNDS THREADS BURST_TIMEOUT LAT_RATE; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || bad "--$(tr 'A-Z_' 'a-z-' <<<"$v") wants a positive integer"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || bad "--warmup wants a whole number of seconds"
[[ $BURSTS =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || bad "--bursts wants a list like 100,1000"
for sc in ${SCENARIOS//,/ }; do
  case $sc in static|latency|static64k|burst|cache|cache64k|limits|reload|tls|wrk) ;; *) bad "unknown scenario '$sc'" ;; esac
done
OUT=${OUT:-$ROOT/results/$(date +%Y%m%d-%H%M%S)}

# ---------------------------------------------------------------- tools and binaries
install_pkgs() { # pkg...: Debian packages, without letting them start services
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  local policy=/usr/sbin/policy-rc.d made=0
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' >$policy; chmod +x $policy; made=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1; }
  local rc=$?
  [ $made = 1 ] && rm -f $policy
  return $rc
}
command -v nginx >/dev/null || install_pkgs nginx || die "nginx is needed (apt-get install nginx)"
command -v python3 >/dev/null || install_pkgs python3 || die "python3 is needed"
command -v gnuplot >/dev/null || install_pkgs gnuplot-nox || log "gnuplot missing: no plot"
NGINX=$(command -v nginx)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cd "$ROOT"
if [ ! -x "$BENCH" ]; then
  [ $BUILD = 1 ] || die "no $BENCH (build with: cargo build --release -p sluice-bench)"
  cargo build --release -q -p sluice-bench || die "cannot build sluice-bench"
fi
SLUICE_STATE=ok
if [ ! -x "$SLUICE" ] && [ $BUILD = 1 ]; then
  log "building sluice"
  mkdir -p "$TARGET"
  cargo build --release -q -p sluice >"$TARGET/bench-sluice-build.log" 2>&1 ||
    SLUICE_STATE="sluice does not build (see $TARGET/bench-sluice-build.log)"
fi
[ -x "$SLUICE" ] || { [ "$SLUICE_STATE" != ok ] || SLUICE_STATE="sluice is not built ($SLUICE missing)"; }

# ---------------------------------------------------------------- work dir, cleanup
W=$(mktemp -d /tmp/sluice-bench.XXXXXX)
chmod 755 "$W"
mkdir -p "$W/www" "$OUT/raw"
head -c 612 /dev/zero | tr '\0' 'a' >"$W/www/index.html"
head -c 65536 /dev/urandom >"$W/www/64k.bin"
chmod -R a+rX "$W/www"
PIDFILES=()
BG_PIDS=()

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"  # stop_pidfile, free_port, wait_port
cleanup() {
  local p
  [ -n "$BENCH_PID" ] && kill "$BENCH_PID" 2>/dev/null
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDFILES[@]}"; do stop_pidfile "$p"; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# ---------------------------------------------------------------- configs and servers
# gen_conf KIND DIR PORT HTTP_EXTRA SERVER_EXTRA: the same text for both servers,
# except sluice's state_dir (its limit counters live there; nginx has no such thing).
# LISTEN_OPTS (e.g. "ssl") goes on the listen line.
LISTEN_OPTS=""
gen_conf() {
  local kind=$1 dir=$2 port=$3 state="" mode=""
  [ "$kind" = sluice ] && state="state_dir $dir/state;"
  [ "$kind" = sluice ] && mode="accept_mode $ACCEPT_MODE;"
  cat >"$dir/server.conf" <<CONF
worker_processes $WORKERS;
daemon on;
pid $dir/server.pid;
error_log $dir/logs/error.log warn;
$state
events { worker_connections 20000; $mode }
http {
  access_log off;
  keepalive_timeout 75s;
  $4
  server {
    listen 127.0.0.1:$port${LISTEN_OPTS:+ $LISTEN_OPTS};
    root $W/www;
    index index.html;
    $5
  }
}
CONF
}

# start_server KIND DIR: daemon start; waits for the pid file and the port.
start_server() {
  local kind=$1 dir=$2 port
  port=$(cat "$dir/port")
  PIDFILES+=("$dir/server.pid")
  if [ "$kind" = nginx ]; then
    "$NGINX" -p "$dir" -e "$dir/logs/error.log" -c "$dir/server.conf" >"$dir/start.out" 2>&1 || return 1
  else
    "$SLUICE" -c "$dir/server.conf" >"$dir/start.out" 2>&1 || return 1
  fi
  for _ in $(seq 50); do [ -s "$dir/server.pid" ] && break; sleep 0.1; done
  [ -s "$dir/server.pid" ] || { echo "no pid file" >>"$dir/start.out"; return 1; }
  wait_port "$port" || { echo "port $port not listening" >>"$dir/start.out"; return 1; }
}

# Instances of the current scenario: label (scenario row), kind, dir, state.
I_SCEN=(); I_KIND=(); I_DIR=(); I_OK=()
declare -A NOTE=()
note() { NOTE[$1]="${NOTE[$1]:+${NOTE[$1]}; }$2"; }

# add_instance SCEN KIND FEATURE HTTP_EXTRA SERVER_EXTRA
add_instance() {
  local scen=$1 kind=$2 feature=$3 dir ok=1 why
  dir="$W/$scen-$kind"
  mkdir -p "$dir/logs" "$dir/state" "$dir/cache"
  free_port >"$dir/port"
  gen_conf "$kind" "$dir" "$(cat "$dir/port")" "$4" "$5"
  if [ "$kind" = sluice ]; then
    if [ "$SLUICE_STATE" != ok ]; then
      ok=0; note "$scen" "sluice skipped: $SLUICE_STATE"
    elif ! "$SLUICE" -t -c "$dir/server.conf" >"$dir/test.out" 2>&1; then
      why=$(grep -v '^\s*$' "$dir/test.out" | head -1 | cut -c1-120)
      ok=0; note "$scen" "skipped: sluice does not support $feature yet (sluice -t: ${why:-failed})"
    fi
  fi
  if [ $ok = 1 ] && ! start_server "$kind" "$dir"; then
    why=$(tail -1 "$dir/start.out" 2>/dev/null | cut -c1-120)
    ok=0; note "$scen" "$kind skipped: did not start (${why:-no output})"
  fi
  I_SCEN+=("$scen"); I_KIND+=("$kind"); I_DIR+=("$dir"); I_OK+=("$ok")
}

stop_instances() {
  local i
  for i in "${!I_DIR[@]}"; do
    cp "${I_DIR[$i]}/logs/error.log" "$OUT/raw/${I_SCEN[$i]}-${I_KIND[$i]}-error.log" 2>/dev/null || true
    stop_pidfile "${I_DIR[$i]}/server.pid"
  done
  I_SCEN=(); I_KIND=(); I_DIR=(); I_OK=()
}

# ---------------------------------------------------------------- measuring
echo "scenario,server,round,rps,ok,errors,unfinished,p50_ms,p99_ms,bytes_per_sec" >"$OUT/runs.csv"
echo "server,round,conns,succeeded,connect_failed,reset,timed_out,unfinished,non2xx,time_s,p99_ms" >"$OUT/burst.csv"

# url_of I PATH: the instance's URL (https for the TLS rows).
url_of() {
  local scheme=http
  case ${I_SCEN[$1]} in tls|tls-handshake) scheme=https ;; esac
  echo "$scheme://127.0.0.1:$(cat "${I_DIR[$1]}/port")$2"
}

BENCH_PID=""
bench_cmd() { # seconds-bound args...: sluice-bench with an outer time bound too; run in
  local bound=$1; shift # the background so that a signal to this script acts at once
  timeout -k 5 "$bound" "$BENCH" "$@" &
  BENCH_PID=$!
  wait "$BENCH_PID"
}

# measure I ROUND PATH HOOK: one run against instance I, appended to the CSVs.
measure() {
  local i=$1 r=$2 path=$3 hook=$4 scen=${I_SCEN[$1]} kind=${I_KIND[$1]} url json hook_pid=""
  url=$(url_of "$i" "$path")
  json="$OUT/raw/$scen-$kind-r$r.json"
  log "$scen: $kind round $r"
  if [ "$scen" = burst ]; then
    local nbursts; nbursts=$(tr ',' '\n' <<<"$BURSTS" | wc -l)
    bench_cmd $((nbursts * (BURST_TIMEOUT + 2) + 30)) --mode burst -t "$THREADS" -c "$BURSTS" \
      --timeout "${BURST_TIMEOUT}s" --json "$url" >"$json" 2>"${json%.json}.log" || true
    python3 - "$json" "$kind" "$r" >>"$OUT/burst.csv" <<'PY' || note burst "$kind round $r: no result"
import json, sys
d = json.load(open(sys.argv[1]))
for b in d["bursts"]:
    print(",".join(str(x) for x in [sys.argv[2], sys.argv[3], b["conns"], b["succeeded"], b["connect_failed"],
        b["reset"], b["timed_out"], b["unfinished"], b["non2xx"], b["duration_s"], b["latency_ms"]["p99"]]))
PY
    return
  fi
  if [ -n "$hook" ]; then "$hook" "${I_DIR[$i]}" & hook_pid=$!; BG_PIDS+=("$hook_pid"); fi
  local mode=(--mode keepalive)
  # latency: the same open-loop request rate for both, so p99 compares like with like
  [ "$scen" = latency ] && mode=(--mode rate --rate "$LAT_RATE")
  # tls-handshake: a new connection (a full handshake, no resumption) per request
  [ "$scen" = tls-handshake ] && mode+=(--no-keepalive)
  bench_cmd $((DURATION + 30)) "${mode[@]}" -t "$THREADS" -c "$CONNS" -d "${DURATION}s" --json \
    "$url" >"$json" 2>"${json%.json}.log" || true
  if [ -n "$hook_pid" ]; then kill "$hook_pid" 2>/dev/null || true; wait "$hook_pid" 2>/dev/null || true; fi
  python3 - "$json" "$scen" "$kind" "$r" >>"$OUT/runs.csv" <<'PY' || note "$scen" "$kind round $r: no result"
import json, sys
d = json.load(open(sys.argv[1]))
l = d["latency_ms"]
print(",".join(str(x) for x in sys.argv[2:5] + [d["rps"], d["ok"], d["error_total"], d["unfinished"],
    l["p50"], l["p99"], d["bytes_per_sec"]]))
PY
}

# reload hook: SIGHUP to the master every second while the run lasts.
reload_every_second() {
  local m n=0
  m=$(cat "$1/server.pid")
  while sleep 1; do kill -HUP "$m" 2>/dev/null && n=$((n + 1)); echo "$n" >"$1/reloads"; done
}

# run_instances PATH [HOOK]: warm every instance, then ROUNDS rounds in order.
run_instances() {
  local path=$1 hook=${2:-} i r
  for i in "${!I_DIR[@]}"; do
    [ "${I_OK[$i]}" = 1 ] || continue
    if [ "$WARMUP" = 0 ] || [ "${I_SCEN[$i]}" = burst ]; then continue; fi
    bench_cmd $((WARMUP + 30)) -c "$CONNS" -d "${WARMUP}s" "$(url_of "$i" "$path")" >/dev/null 2>&1 || true
  done
  for r in $(seq "$ROUNDS"); do
    for i in "${!I_DIR[@]}"; do
      [ "${I_OK[$i]}" = 1 ] && measure "$i" "$r" "$path" "$hook"
    done
  done
  for i in "${!I_DIR[@]}"; do
    if [ -s "${I_DIR[$i]}/reloads" ]; then
      note "${I_SCEN[$i]}" "${I_KIND[$i]} got $(cat "${I_DIR[$i]}/reloads") SIGHUP in the last run"
    fi
  done
}

pair() { # SCEN FEATURE HTTP_EXTRA SERVER_EXTRA
  add_instance "$1" sluice "$2" "$3" "$4"
  add_instance "$1" nginx "$2" "$3" "$4"
}

ORDER=()
scenario_static() { ORDER+=(static); pair static "static files" "" ""; run_instances /index.html; stop_instances; }
scenario_latency() { ORDER+=(latency); pair latency "static files" "" ""; run_instances /index.html; stop_instances; }
scenario_static64k() { ORDER+=(static64k); pair static64k "static files" "" ""; run_instances /64k.bin; stop_instances; }
scenario_burst() { ORDER+=(burst); pair burst "static files" "" ""; run_instances /index.html; stop_instances; }
scenario_reload() {
  ORDER+=(reload); pair reload "reload" "" ""
  run_instances /index.html reload_every_second; stop_instances
}
scenario_limits() {
  ORDER+=(limits-off limits-on)
  # shellcheck disable=SC2016 # nginx variables, not shell ones
  local zone='limit_req_zone $binary_remote_addr zone=ip:1m rate=1000000r/s;'
  local rule='limit_req zone=ip burst=1000000 nodelay;'
  add_instance limits-off sluice "static files" "" ""
  add_instance limits-off nginx "static files" "" ""
  add_instance limits-on sluice "limit_req" "$zone" "$rule"
  add_instance limits-on nginx "limit_req" "$zone" "$rule"
  run_instances /index.html; stop_instances
}
scenario_cache() { cache_scenario cache /index.html; }
scenario_cache64k() { cache_scenario cache64k /64k.bin; }
cache_scenario() { # NAME PATH
  local name=$1 path=$2
  ORDER+=("$name")
  # One origin for both fronts: nginx serving the same files with a 10-minute
  # Cache-Control, so the fronts need nothing beyond proxy_pass + proxy_cache.
  local o="$W/origin" before after
  mkdir -p "$o/logs"; free_port >"$o/port"
  gen_conf nginx "$o" "$(cat "$o/port")" "" "expires 10m;"
  sed -i "s|access_log off;|access_log $o/logs/access.log;|" "$o/server.conf"
  if ! start_server nginx "$o"; then note "$name" "skipped: origin nginx did not start"; return; fi
  local sdir="$W/$name-sluice" ndir="$W/$name-nginx"
  local http="proxy_cache_path CACHE levels=1:2 keys_zone=c1:10m;"
  local loc
  loc="location / { proxy_pass http://127.0.0.1:$(cat "$o/port"); proxy_cache c1; }"
  add_instance "$name" sluice "proxy_cache" "${http/CACHE/$sdir/cache}" "$loc"
  add_instance "$name" nginx "proxy_cache" "${http/CACHE/$ndir/cache}" "$loc"
  before=$(wc -l <"$o/logs/access.log")
  run_instances "$path"
  after=$(wc -l <"$o/logs/access.log")
  note "$name" "origin saw $((after - before)) requests during warm-up and runs (misses)"
  stop_instances; stop_pidfile "$o/server.pid"
}
scenario_tls() {
  ORDER+=(tls tls-handshake)
  local c="$W/tls" row
  mkdir -p "$c"
  if ! command -v openssl >/dev/null && ! install_pkgs openssl; then
    for row in tls tls-handshake; do note $row "skipped: openssl not installed"; done
    return
  fi
  # One ECDSA P-256 certificate for both servers. (CA:FALSE so that a verifying
  # client, e.g. sluice-bench --cacert, takes it as a server certificate.)
  if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=bench.test" -addext "subjectAltName=DNS:bench.test" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -keyout "$c/key.pem" -out "$c/cert.pem" >"$c/openssl.log" 2>&1; then
    for row in tls tls-handshake; do note $row "skipped: openssl could not make a certificate"; done
    return
  fi
  local srv="ssl_certificate $c/cert.pem; ssl_certificate_key $c/key.pem;"
  LISTEN_OPTS=ssl
  for row in tls tls-handshake; do
    add_instance $row sluice "TLS (listen ssl)" "" "$srv"
    add_instance $row nginx "TLS (listen ssl)" "" "$srv"
  done
  LISTEN_OPTS=""
  run_instances /index.html
  if [[ " ${I_OK[*]} " == *" 1 "* ]]; then
    note tls-handshake "sluice-bench: rustls, X25519, certificate not verified, no session resumption"
  fi
  stop_instances
}
scenario_wrk() {
  ORDER+=(wrk)
  command -v wrk >/dev/null || { note wrk "skipped: wrk not installed"; return; }
  add_instance wrk nginx "static files" "" ""
  [ "${I_OK[0]}" = 1 ] || { stop_instances; return; }
  local url r w b
  url="http://127.0.0.1:$(cat "${I_DIR[0]}/port")/index.html"
  run_wrk() {
    w=$(timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "$url" | awk '/Requests\/sec/ {print $2}')
  }
  run_sb() {
    b=$(bench_cmd $((DURATION + 30)) -t "$THREADS" -c "$CONNS" -d "${DURATION}s" --json "$url" 2>/dev/null |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["rps"])')
  }
  for r in $(seq "$ROUNDS"); do # A B B A: neither tool always goes first
    if [ $((r % 2)) = 1 ]; then run_wrk; run_sb; else run_sb; run_wrk; fi
    echo "wrk,wrk,$r,${w:-0},,,,,," >>"$OUT/runs.csv"
    echo "wrk,sluice-bench,$r,${b:-0},,,,,," >>"$OUT/runs.csv"
  done
  stop_instances
}

# ---------------------------------------------------------------- machine record
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "kernel: $(uname -srmo)"
  echo "cores: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "nginx: $("$NGINX" -V 2>&1 | sed -n 's/^nginx version: //p; s/^built with //p' | paste -sd' ')"
  echo "openssl: $(openssl version 2>/dev/null || echo missing)"
  echo "sluice: $([ "$SLUICE_STATE" = ok ] && { "$SLUICE" -V 2>&1 | head -1 || true; } || echo "$SLUICE_STATE")"
  echo "sluice-bench: $("$BENCH" --version)"
  echo "rustc: $(rustc --version 2>/dev/null || echo unknown)"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "gnuplot: $(gnuplot --version 2>/dev/null || echo missing)"
  for k in net.core.somaxconn net.ipv4.tcp_max_syn_backlog net.ipv4.ip_local_port_range fs.nr_open; do
    echo "$k: $(sysctl -n $k 2>/dev/null | tr '\t' ' ')"
  done
  echo "ulimit -n: $(ulimit -n)"
  echo "options: --scenarios $SCENARIOS --duration $DURATION --conns $CONNS --workers $WORKERS" \
    "--rounds $ROUNDS --threads $THREADS --warmup $WARMUP --bursts $BURSTS --burst-timeout $BURST_TIMEOUT"
} >"$OUT/machine.txt"

for sc in ${SCENARIOS//,/ }; do "scenario_$sc"; done

# ---------------------------------------------------------------- summary
median_of() { # scenario server column  (from runs.csv)
  awk -F, -v s="$1" -v k="$2" -v c="$3" '$1==s && $2==k && $c!="" {print $c}' "$OUT/runs.csv" |
    sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
burst_median() { # server conns column (from burst.csv)
  awk -F, -v k="$1" -v n="$2" -v c="$3" '$1==k && $3==n {print $c}' "$OUT/burst.csv" |
    sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
burst_errors() { # server conns: "connect+reset+timeout" medians, or "-"
  local c; c=$(burst_median "$1" "$2" 5)
  [ "$c" = - ] && { echo -; return; }
  echo "$c+$(burst_median "$1" "$2" 6)+$(burst_median "$1" "$2" 7)"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a=="-" || b=="-" || b+0==0) print "-"; else printf "%.3f", a/b }'; }
pct() { awk -v a="$1" -v n="$2" 'BEGIN { if (a=="-") print "-"; else printf "%.2f", 100*a/n }'; }
fmt() { awk -v a="$1" 'BEGIN { if (a=="-") print "-"; else if (a+0 < 100) printf "%.3f", a; else printf "%.0f", a }'; }

echo "scenario,metric,sluice,nginx,ratio,sluice_errors,nginx_errors,sluice_p99_ms,nginx_p99_ms,note" >"$OUT/summary.csv"
: >"$W/bars.dat"; : >"$W/burst.dat"
{
  echo "# sluice vs nginx"
  echo
  echo '```'
  cat "$OUT/machine.txt"
  echo '```'
  echo
  echo "Medians of $ROUNDS round(s); each round runs sluice then nginx (A B A B)."
  echo "req/s counts complete responses of any status; errors are by sluice-bench's kinds."
  echo
  echo "| scenario | metric | sluice | nginx | sluice/nginx | errors s / n | p99 ms s / n | note |"
  echo "|---|---|---:|---:|---:|---|---|---|"
} >"$OUT/results.md"
row() { # scen metric s n se ne sp np
  local r; r=$(ratio "$3" "$4")
  echo "| $1 | $2 | $(fmt "$3") | $(fmt "$4") | $r | $5 / $6 | $7 / $8 | ${NOTE[$1]:-} |" >>"$OUT/results.md"
  local n=${NOTE[$1]:-}
  echo "$1,$2,$3,$4,$r,$5,$6,$7,$8,\"${n//\"/\'}\"" >>"$OUT/summary.csv"
}
for sc in "${ORDER[@]}"; do
  case $sc in
    burst)
      for n in ${BURSTS//,/ }; do
        s=$(burst_median sluice "$n" 4); g=$(burst_median nginx "$n" 4)
        row burst "succeeded of $n" "$s" "$g" "$(burst_errors sluice "$n")" "$(burst_errors nginx "$n")" \
          "$(burst_median sluice "$n" 11)" "$(burst_median nginx "$n" 11)"
        echo "$n $(pct "$s" "$n") $(pct "$g" "$n")" >>"$W/burst.dat"
      done
      ;;
    latency)
      s=$(median_of latency sluice 9); g=$(median_of latency nginx 9)
      row latency "p99 ms at $LAT_RATE req/s, open loop (lower is better)" "$s" "$g" \
        "$(median_of latency sluice 6)" "$(median_of latency nginx 6)" "$s" "$g" ;;
    tls)
      s=$(median_of tls sluice 4); g=$(median_of tls nginx 4)
      row tls "req/s over TLS (keep-alive)" "$s" "$g" "$(median_of tls sluice 6)" "$(median_of tls nginx 6)" \
        "$(median_of tls sluice 9)" "$(median_of tls nginx 9)"
      echo "tls $s $g" >>"$W/bars.dat" ;;
    tls-handshake)
      s=$(median_of tls-handshake sluice 4); g=$(median_of tls-handshake nginx 4)
      row tls-handshake "connections/s (full TLS handshake + 1 request each)" "$s" "$g" \
        "$(median_of tls-handshake sluice 6)" "$(median_of tls-handshake nginx 6)" \
        "$(median_of tls-handshake sluice 9)" "$(median_of tls-handshake nginx 9)" ;;
    wrk)
      s=$(median_of wrk sluice-bench 4); g=$(median_of wrk wrk 4)
      row wrk "req/s: sluice-bench vs wrk on nginx" "$s" "$g" - - - - ;;
    *)
      s=$(median_of "$sc" sluice 4); g=$(median_of "$sc" nginx 4)
      row "$sc" "req/s" "$s" "$g" "$(median_of "$sc" sluice 6)" "$(median_of "$sc" nginx 6)" \
        "$(median_of "$sc" sluice 9)" "$(median_of "$sc" nginx 9)"
      echo "$sc $s $g" >>"$W/bars.dat" ;;
  esac
done
{
  echo
  echo "Burst columns: errors = connect_failed+reset+timed_out (medians); p99 is time to a complete response."
  if [[ " ${ORDER[*]} " == *" limits-on "* ]]; then
    for k in sluice nginx; do
      off=$(median_of limits-off $k 4); on=$(median_of limits-on $k 4)
      echo "Limits cost for $k: $(awk -v a="$on" -v b="$off" 'BEGIN { if (a=="-" || b=="-" || b+0==0) print "n/a"; else printf "%.1f %%", 100*(1-a/b) }')"
    done
  fi
} >>"$OUT/results.md"

# ---------------------------------------------------------------- plot
if command -v gnuplot >/dev/null; then
  cp "$W/bars.dat" "$OUT/bars.dat"; cp "$W/burst.dat" "$OUT/burst.dat"
  panels=0
  [ -s "$OUT/bars.dat" ] && panels=$((panels + 1))
  [ -s "$OUT/burst.dat" ] && panels=$((panels + 1))
  if [ $panels -gt 0 ]; then
    {
      echo "set terminal pngcairo size $((panels * 700)),560 font 'sans,10'"
      echo "set output '$OUT/plot.png'"
      echo "set datafile missing '-'"
      echo "set multiplot layout 1,$panels title 'sluice vs nginx ($WORKERS worker(s), $(nproc) cores, medians of $ROUNDS)'"
      echo "set key top right; set grid ytics"
      if [ -s "$OUT/bars.dat" ]; then
        echo "set title 'keep-alive throughput'; set ylabel 'requests/s'; set yrange [0:*]"
        echo "set style data histograms; set style histogram clustered gap 1"
        echo "set style fill solid 0.85 border -1; set boxwidth 0.9; set xtics rotate by -25"
        echo "plot '$OUT/bars.dat' using 2:xtic(1) lc rgb '#1f77b4' title 'sluice', '' using 3 lc rgb '#2ca02c' title 'nginx'"
        echo "set xtics norotate; set style data linespoints"
      fi
      if [ -s "$OUT/burst.dat" ]; then
        echo "set title 'burst: one-shot connections answered'; set xlabel 'concurrent connections'"
        echo "set ylabel 'succeeded %'; set yrange [0:105]; set logscale x; set key bottom left"
        echo "plot '$OUT/burst.dat' using 1:2 with linespoints lc rgb '#1f77b4' lw 3 pt 7 ps 1.6 title 'sluice', '' using 1:3 with linespoints lc rgb '#2ca02c' lw 2 dt 2 pt 5 title 'nginx'"
      fi
      echo "unset multiplot"
    } >"$OUT/plot.gp"
    gnuplot "$OUT/plot.gp" 2>"$OUT/raw/gnuplot.log" || log "gnuplot failed: $(tail -1 "$OUT/raw/gnuplot.log")"
  fi
fi

cat "$OUT/results.md"
echo
log "results in $OUT"
