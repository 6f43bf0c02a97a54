#!/usr/bin/env bash
# Waiting-room overhead: the same small static file through a location with
# `waiting_room` (every request holding a valid session cookie) and through
# one without it. Prints requests/s of each (median of 3 alternating runs)
# and the ratio. Usage: scripts/bench-waiting-room.sh [seconds] [conns]
set -eu
SECS=${1:-5}; CONNS=${2:-50}
BIN=${BIN:-$PWD/target/release/sluice}
W=$(mktemp -d /tmp/wr-bench.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$W/www/shop" "$W/www/plain" "$W/logs" "$W/state"
head -c 612 /dev/zero | tr '\0' a > "$W/www/shop/index.html"; cp "$W/www/shop/index.html" "$W/www/plain/"
printf 'k1 %s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$W/wr.key"; chmod 600 "$W/wr.key"
cat > "$W/sluice.conf" <<CONF
worker_processes 2;
daemon on;
pid $W/sluice.pid;
state_dir $W/state;
error_log $W/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  waiting_room_zone shop:64k admit_rate=600/m max_active=100000 session=10m;
  waiting_room_secret $W/wr.key;
  server {
    listen 127.0.0.1:$PORT;
    root $W/www;
    location /shop/ { waiting_room shop; }
    location /plain/ { }
  }
}
CONF
"$BIN" -c "$W/sluice.conf"
trap 'kill -QUIT "$(cat "$W/sluice.pid")" 2>/dev/null; sleep 0.5; rm -rf "$W"' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
COOKIE=$(curl -s -D - -o /dev/null "http://127.0.0.1:$PORT/shop/index.html" | awk -F': ' 'tolower($1)=="set-cookie" {split($2,a,";"); print a[1]}')
[ -n "$COOKIE" ] || { echo "no session cookie"; exit 1; }
curl -s -H "Cookie: $COOKIE" "http://127.0.0.1:$PORT/shop/index.html" | grep -q aaaa || { echo "cookie not accepted"; exit 1; }
WORKERS=$(pgrep -P "$(cat "$W/sluice.pid")" | tr '\n' ' ')
TCK=$(getconf CLK_TCK)
cpu_ticks() { local t=0 p; for p in $WORKERS; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
# One run: prints "req/s cpu_us_per_request" (workers' utime + stime).
run() {
  local c0 out c1 n
  c0=$(cpu_ticks)
  out=$(wrk -t1 -c"$CONNS" -d"${SECS}s" -H "Cookie: $COOKIE" "$1")
  c1=$(cpu_ticks)
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$(echo "$out" | awk '/Requests\/sec/ {print $2}') $(python3 -c "print(f'{($c1-$c0)/$TCK*1e6/$n:.2f}')")"
}
P=(); S=(); PC=(); SC=()
for _ in 1 2 3 4; do
  read -r r c < <(run "http://127.0.0.1:$PORT/plain/index.html"); P+=("$r"); PC+=("$c")
  read -r r c < <(run "http://127.0.0.1:$PORT/shop/index.html"); S+=("$r"); SC+=("$c")
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (a[int((NR+1)/2)]+a[int(NR/2)+1])/2}'; }
p=$(med "${P[@]}"); s=$(med "${S[@]}"); pc=$(med "${PC[@]}"); sc=$(med "${SC[@]}")
echo "plain:        req/s ${P[*]} -> $p; worker CPU us/request ${PC[*]} -> $pc"
echo "waiting_room: req/s ${S[*]} -> $s; worker CPU us/request ${SC[*]} -> $sc"
python3 -c "print(f'throughput ratio {$s/$p*100:.1f} %; CPU per request ratio {$pc/$sc*100:.1f} % (plain / waiting room)')"
