#!/usr/bin/env bash
# The haproxy lab on one Linux host without Docker: one network namespace per node (ha,
# s1, s2, ...) on a bridge that lives in a namespace of its own, addresses from the lab's
# 192.168.42.0/24. Nothing is added to the host's own network, and everything (processes,
# namespaces, files) is removed on exit. Needs root, iproute2 and haproxy.
#
#   run.sh           start ha, s1 and s2, show the cluster and a few requests, then wait:
#                    Ctrl-C stops everything
#   run.sh --check   the scripted lab: s1 and s2 serve, s3 joins, s1 leaves (SIGTERM),
#                    s2 crashes (kill -9), ha restarts (its first answer must come from
#                    s3), HAProxy dies (ha must stop); exits 0 when all of it held, 77
#                    when network namespaces cannot be created here
#
# RUMOR and WEBAPP name the binaries (default: target/release/rumor and
# target/release/rumor-lab-webapp, built with cargo when not given).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mode=${1:-}
net=192.168.42
tag=rl$$
br=$tag-br
nss=()
work=$(mktemp -d)

cleanup() {
  local ns pid i
  for ns in "${nss[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  done
  for ((i = ${#nss[@]} - 1; i >= 0; i--)); do ip netns del "${nss[i]}" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! ip netns add "$br" 2>"$work/err"; then
  echo "skipped: cannot create network namespaces here ($(cat "$work/err")); run as root" >&2
  exit 77
fi
nss+=("$br")
command -v haproxy >/dev/null || { echo "haproxy is not installed (apt-get install haproxy)" >&2; exit 1; }

if [ -z "${RUMOR:-}" ] || [ -z "${WEBAPP:-}" ]; then
  (cd "$root" && cargo build --release -q -p rumor-std --bin rumor --bin rumor-lab-webapp)
fi
RUMOR=${RUMOR:-$root/target/release/rumor}
WEBAPP=${WEBAPP:-$root/target/release/rumor-lab-webapp}

ip -n "$br" link set lo up
ip -n "$br" link add br0 type bridge
ip -n "$br" link set br0 up

# node NAME IP: a namespace with lo and eth0 (IP/24), plugged into the bridge.
node() {
  local ns=$tag-$1
  ip netns add "$ns"
  nss+=("$ns")
  ip -n "$br" link add "v-$1" type veth peer name eth0 netns "$ns"
  ip -n "$br" link set "v-$1" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$2/24" dev eth0
  ip -n "$ns" link set eth0 up
}

start_ha() {
  node ha "$net.42"
  launch_ha
}

# launch_ha: ha's start script in its namespace (again, after a restart); its pid goes in
# $work/ha.pid. Its state (config, snapshot) stays in $work/ha-state across restarts.
launch_ha() {
  ip netns exec "$tag-ha" env LAB_RUN="$work/ha" LAB_STATE="$work/ha-state" \
    LAB_TEMPLATE="$here/ha/haproxy.cfg.hb" RUMOR="$RUMOR" NODE_NAME=ha \
    "$here/ha/start.sh" >>"$work/ha.log" 2>&1 &
  echo $! >"$work/ha.pid"
  disown
}

# ha_exit SECONDS: waits for ha's start script to exit; prints "exited" or "running".
ha_exit() {
  local pid start=$SECONDS
  pid=$(cat "$work/ha.pid")
  while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - start)) -lt "$1" ]; do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then echo running; else echo exited; fi
}

# start_web NAME IP: a web node joining ha; its agent's pid goes in $work/NAME.pid.
start_web() {
  node "$1" "$2"
  ip netns exec "$tag-$1" env RUMOR="$RUMOR" WEBAPP="$WEBAPP" NODE_NAME="$1" JOIN="$net.42" \
    "$here/web/start.sh" >"$work/$1.log" 2>&1 &
  echo $! >"$work/$1.pid"
  disown
}

# One request through HAProxy, from inside the ha node: prints the answering node.
get() {
  timeout 10 ip netns exec "$tag-ha" bash -c \
    "exec 3<>/dev/tcp/$net.42/80 && printf 'GET / HTTP/1.0\r\nHost: lab\r\n\r\n' >&3 && cat <&3" 2>/dev/null \
    | sed -n 's/.*"host":"\([^"]*\)".*/\1/p'
}

# The set of nodes answering 12 requests, sorted, space-separated.
answering() {
  local i
  for i in $(seq 12); do get || true; done | sort -u | tr '\n' ' ' | sed 's/ $//'
}

# expect "NODES" SECONDS: waits until exactly NODES answer; prints the time it took.
expect() {
  local start=$SECONDS now=""
  while [ $((SECONDS - start)) -lt "$2" ]; do
    now=$(answering)
    if [ "$now" = "$1" ]; then
      echo "  HAProxy now sends to: $now (after $((SECONDS - start)) s)"
      return 0
    fi
    sleep 0.5
  done
  echo "FAILED: expected '$1', HAProxy sends to '$now'" >&2
  for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 30 "$f" >&2; done
  return 1
}

echo "ha: HAProxy and its rumor agent at $net.42"
start_ha
echo "s1, s2: web nodes at $net.11 and $net.22, joining ha"
start_web s1 "$net.11"
start_web s2 "$net.22"
expect "s1 s2" 60

if [ "$mode" != "--check" ]; then
  ip netns exec "$tag-ha" "$RUMOR" members
  echo
  echo "Look around (from another shell, as root):"
  echo "  ip netns exec $tag-ha $RUMOR members"
  echo "  ip netns exec $tag-ha cat $work/ha/haproxy.cfg"
  echo "  ip netns exec $tag-ha bash -c 'exec 3<>/dev/tcp/$net.42/80; printf \"GET / HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3'"
  echo "Ctrl-C stops the lab and removes everything."
  while true; do sleep 3600; done
fi

echo "s3 starts and joins"
start_web s3 "$net.33"
expect "s1 s2 s3" 60
echo "s1 stops gracefully (SIGTERM to its agent: it leaves, HAProxy drains it)"
kill -TERM "$(cat "$work/s1.pid")"
expect "s2 s3" 60
echo "s2 crashes (kill -9 of every process of the node)"
for pid in $(ip netns pids "$tag-s2"); do kill -9 "$pid"; done
expect "s3" 90

echo "ha restarts (SIGTERM, then its start script again): the first request is served"
kill -TERM "$(cat "$work/ha.pid")"
[ "$(ha_exit 30)" = exited ] || { echo "FAILED: ha did not stop on SIGTERM" >&2; exit 1; }
# As a container stop does: nothing of the node survives.
for pid in $(ip netns pids "$tag-ha"); do kill -9 "$pid" 2>/dev/null || true; done
launch_ha
# Once HAProxy listens again, its very first answer counts (before, it restarted with an
# empty backend and answered 503 until the agent re-rendered).
for _ in $(seq 100); do
  timeout 2 ip netns exec "$tag-ha" bash -c "exec 3<>/dev/tcp/$net.42/80" 2>/dev/null && break
  sleep 0.1
done
first=$(get || true)
if [ "$first" != s3 ]; then
  echo "FAILED: the restarted HAProxy's first answer came from '$first', not s3" >&2
  tail -n 30 "$work/ha.log" >&2
  exit 1
fi
echo "  the restarted HAProxy sent its first request to s3"

echo "HAProxy dies (kill -9 of its master): ha's start script stops the node and exits 1"
kill -9 "$(cat "$work/ha/haproxy.pid")"
[ "$(ha_exit 30)" = exited ] || { echo "FAILED: ha kept running without HAProxy" >&2; exit 1; }
grep -q "start-ha: HAProxy exited" "$work/ha.log" \
  || { echo "FAILED: no 'HAProxy exited' line in ha's log" >&2; tail -n 20 "$work/ha.log" >&2; exit 1; }
echo "  ha stopped: $(grep "start-ha: HAProxy exited" "$work/ha.log" | tail -n 1)"
echo "lab ok"
