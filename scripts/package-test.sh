#!/usr/bin/env bash
# Package test (`make package-test`): builds the .deb with `cargo deb`,
# installs it with dpkg, checks what it ships, then runs sluice the way the
# systemd unit does — ExecStartPre (`sluice -t -q`), ExecStart (forking, pid
# file), ExecReload, logrotate's postrotate (`sluice -s reopen`), ExecStop
# (`sluice -s quit`) — with curl in between, and purges the package.
#
# Needs root and changes the machine while it runs (a package, the `sluice`
# user, port 80), so it is not part of `make test`. SLUICE_DEB=FILE tests a
# .deb built earlier instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "package-test: $*"; }
fail() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
if dpkg-query -W -f='${Status}' sluice 2>/dev/null | grep -q installed; then
    fail "a sluice package is installed already; not touching it"
fi

start_s=$(date +%s)
deb=${SLUICE_DEB:-}
if [ -z "$deb" ]; then
    command -v cargo-deb >/dev/null || cargo install -q cargo-deb
    cargo deb -q >/tmp/sluice-package-test-build.log 2>&1 ||
        fail "cargo deb: $(tail -3 /tmp/sluice-package-test-build.log)"
    deb=$(ls -t "${CARGO_TARGET_DIR:-target}"/debian/sluice_*.deb | head -1)
    deb=$(readlink -f "$deb")
fi
[ -f "$deb" ] || fail "no .deb"
say "built $(basename "$deb") in $(($(date +%s) - start_s)) s ($(du -k "$deb" | cut -f1) KiB)"

# --- What the package holds.
list=$(dpkg-deb -c "$deb")
for f in ./usr/sbin/sluice ./etc/sluice/sluice.conf ./etc/logrotate.d/sluice \
    ./usr/share/man/man8/sluice.8.gz ./usr/share/doc/sluice/README.md \
    ./usr/share/sluice/html/index.sluice-debian.html; do
    grep -q " $f\$" <<<"$list" || fail "package lacks $f"
done
grep -Eq ' \./(usr/)?lib/systemd/system/sluice\.service$' <<<"$list" || fail "package lacks the unit"
ctl=$(mktemp -d)
had_user=no
getent passwd sluice >/dev/null && had_user=yes
port_conf=""
cleanup() {
    local rc=$?
    if [ -s /run/sluice.pid ]; then
        local m; m=$(cat /run/sluice.pid)
        kill -QUIT "$m" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$m" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$m" 2>/dev/null || true
    fi
    dpkg --purge sluice >/dev/null 2>&1 || true
    if [ "$had_user" = no ] && getent passwd sluice >/dev/null; then
        userdel sluice >/dev/null 2>&1 || true
        getent group sluice >/dev/null && groupdel sluice >/dev/null 2>&1 || true
    fi
    rm -rf "$ctl" "$port_conf"
    exit $rc
}
trap cleanup EXIT
dpkg-deb -e "$deb" "$ctl/DEBIAN"
for f in /etc/sluice/sluice.conf /etc/logrotate.d/sluice; do
    grep -qx "$f" "$ctl/DEBIAN/conffiles" || fail "$f is not a conffile"
done
grep -q '^Depends:.*adduser' "$ctl/DEBIAN/control" || fail "no Depends on adduser"

# --- Install.
dpkg -i "$deb" >"$ctl/dpkg.log" 2>&1 || fail "dpkg -i: $(tail -3 "$ctl/dpkg.log")"
uid=$(id -u sluice) || fail "postinst made no sluice user"
for d in /var/lib/sluice /var/log/sluice /var/cache/sluice; do
    [ "$(stat -c %U "$d")" = sluice ] || fail "$d is not sluice's"
done
[ -f /var/www/html/index.sluice-debian.html ] || fail "no default page"
unit=$(ls /lib/systemd/system/sluice.service /usr/lib/systemd/system/sluice.service 2>/dev/null | head -1)
grep -q '^ExecReload=/usr/sbin/sluice -s reload' "$unit" || fail "unit: ExecReload"
man -l "$(dpkg -L sluice | grep 'man8/sluice.8')" >/dev/null 2>&1 || fail "man page does not format"
if command -v systemd-analyze >/dev/null; then
    out=$(systemd-analyze verify "$unit" 2>&1 || true)
    # Without a running systemd, verify also talks about the machine (no
    # bus, other units); only lines about our unit count.
    bad=$(echo "$out" | grep 'sluice.service' || true)
    [ -z "$bad" ] || fail "systemd-analyze verify: $bad"
    say "systemd-analyze verify: clean"
fi

# The unit's command lines, as systemd would run them: from / (a
# conf/sluice.conf in the current directory would be read first).
cd /
exec_line() { sed -n "s/^$1=//p" "$unit" | sed -n "${2:-1}p"; }
pre=$(exec_line ExecStartPre)
start=$(exec_line ExecStart)
[ "$pre" = "/usr/sbin/sluice -t -q" ] && [ "$start" = "/usr/sbin/sluice" ] || fail "unit: $pre / $start"

# --- ExecStartPre: the shipped config passes -t, quietly.
out=$(/usr/sbin/sluice -t -q 2>&1) || fail "sluice -t -q: $out"
[ -z "$out" ] || fail "sluice -t -q printed: $out"
out=$(/usr/sbin/sluice -t 2>&1) && grep -q "test is successful" <<<"$out" || fail "sluice -t: $out"
help=$(/usr/sbin/sluice -h) && grep -q -- "-s SIGNAL" <<<"$help" || fail "sluice -h"

# Port 80 taken by something else: the same config on another port.
port=80
args=()
if (exec 3<>/dev/tcp/127.0.0.1/80) 2>/dev/null; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    port_conf=$(mktemp /tmp/sluice-package-test-XXXXXX.conf)
    sed -e "s/listen 80 default_server;/listen $port default_server;/" \
        -e '/listen \[::\]:80/d' /etc/sluice/sluice.conf >"$port_conf"
    args=(-c "$port_conf")
    say "port 80 is in use here: the shipped config on port $port"
fi
url=http://127.0.0.1:$port

# --- ExecStart (Type=forking: returns once the master runs; PIDFile=),
# with the unit's capability bounding set and no_new_privs where setpriv
# can set them, so a capability the list lacks fails here.
jail=()
if command -v setpriv >/dev/null; then
    caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
    jail=(setpriv --no-new-privs --bounding-set "-all,$caps" --inh-caps=-all --)
    say "ExecStart under: ${jail[*]}"
fi
"${jail[@]}" /usr/sbin/sluice "${args[@]}" || fail "ExecStart failed: $(tail -3 /var/log/sluice/error.log)"
for _ in $(seq 100); do [ -s /run/sluice.pid ] && break; sleep 0.1; done
master=$(cat /run/sluice.pid 2>/dev/null) || fail "no /run/sluice.pid"
kill -0 "$master" || fail "master $master not running"
workers() { pgrep -P "$master" | sort; }
for _ in $(seq 100); do [ -n "$(workers)" ] && break; sleep 0.1; done
body=$(curl -fsS "$url/") || fail "GET / failed"
grep -q "Welcome to sluice" <<<"$body" || fail "GET / did not serve the default page"
[ "$(awk '/^Uid:/ {print $2}' "/proc/$master/status")" = 0 ] || fail "master is not root"
if [ ${#jail[@]} -gt 0 ] && command -v capsh >/dev/null; then
    eff=$(capsh --decode="$(awk '/^CapEff:/ {print $2}' "/proc/$master/status")")
    say "master capabilities: ${eff#*=}"
fi
for w in $(workers); do
    [ "$(awk '/^CapEff:/ {print $2}' "/proc/$w/status")" = 0000000000000000 ] || fail "worker $w kept capabilities"
done
for w in $(workers); do
    [ "$(awk '/^Uid:/ {print $2 $3 $4 $5}' "/proc/$w/status")" = "$uid$uid$uid$uid" ] ||
        fail "worker $w is not the sluice user"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/sluice-status")
[ "$code" = 200 ] || fail "status from localhost: $code"
say "serving $url/ (master $master as root, workers $(workers | tr '\n' ' ')as sluice)"

# --- ExecReload: -t, then -s reload; a new generation serves.
old=$(workers)
/usr/sbin/sluice -t -q "${args[@]}" && /usr/sbin/sluice -s reload "${args[@]}" || fail "reload"
for _ in $(seq 100); do
    new=$(workers)
    [ -n "$new" ] && [ -z "$(comm -12 <(echo "$old") <(echo "$new"))" ] && break
    sleep 0.1
done
[ -z "$(comm -12 <(echo "$old") <(echo "$new"))" ] || fail "old workers still running after reload"
curl -fsS -o /dev/null "$url/" || fail "GET / after reload"

# --- logrotate (postrotate: sluice -s reopen).
if command -v logrotate >/dev/null; then
    logrotate -s "$ctl/logrotate.state" -f /etc/logrotate.d/sluice || fail "logrotate"
    how="logrotate -f"
else
    mv /var/log/sluice/access.log /var/log/sluice/access.log.1
    /usr/sbin/sluice -s reopen "${args[@]}" || fail "sluice -s reopen"
    how="mv + sluice -s reopen (no logrotate here)"
fi
[ -e /var/log/sluice/access.log.1 ] || fail "access.log not rotated"
for _ in $(seq 50); do
    curl -fsS -o /dev/null "$url/reopen-check" 2>/dev/null || true
    grep -q 'GET /reopen-check' /var/log/sluice/access.log 2>/dev/null && break
    sleep 0.1
done
grep -q 'GET /reopen-check' /var/log/sluice/access.log || fail "nothing logged after reopen"
[ "$(stat -c %U /var/log/sluice/access.log)" = sluice ] || fail "new access.log is not sluice's"
say "logs rotated ($how), new access.log written"

# --- ExecStop: -s quit, the master exits.
/usr/sbin/sluice -s quit "${args[@]}" || fail "sluice -s quit"
for _ in $(seq 400); do kill -0 "$master" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$master" 2>/dev/null || fail "master still running 40 s after quit"
[ ! -e /run/sluice.pid ] || fail "pid file left behind"
! grep -E '\[(error|crit|alert|emerg)\]' /var/log/sluice/error.log || fail "errors logged"

# --- Purge.
dpkg --purge sluice >"$ctl/dpkg.log" 2>&1 || fail "dpkg --purge: $(tail -3 "$ctl/dpkg.log")"
for f in /usr/sbin/sluice /etc/sluice/sluice.conf /var/lib/sluice /var/log/sluice; do
    [ ! -e "$f" ] || fail "$f left after purge"
done
say "ok: installed, served, reloaded, rotated, stopped, purged in $(($(date +%s) - start_s)) s"
