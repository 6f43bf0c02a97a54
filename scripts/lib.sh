# Shell helpers shared by the benchmark scripts (sourced, not run).

stop_pidfile() { # pidfile: QUIT the master, then KILL it and its children by id
  local m kids
  m=$(cat "$1" 2>/dev/null) || return 0
  [ -n "$m" ] && kill -0 "$m" 2>/dev/null || return 0
  kids=$(pgrep -P "$m" || true)
  kill -QUIT "$m" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$m" 2>/dev/null || break; sleep 0.1; done
  # shellcheck disable=SC2086 # $kids is a list of pids
  if kill -0 "$m" 2>/dev/null; then kill -KILL "$m" $kids 2>/dev/null || true; fi
  for k in $kids; do kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null; done
  return 0
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() { # port: up to 5 s
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
