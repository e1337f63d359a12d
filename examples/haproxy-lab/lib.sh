# shellcheck shell=bash
# The haproxy lab's building blocks in network namespaces, sourced by run.sh and
# measure.sh: one namespace per node (ha, s1, s2, ...) on a bridge that lives in a
# namespace of its own, addresses from the lab's 192.168.42.0/24. Nothing is added to the
# host's own network, and lab_init arranges for everything (processes, namespaces, files)
# to be removed on exit. Needs root, iproute2 and haproxy.
#
# The caller sets `here` (this directory) before sourcing. After lab_init: $tag prefixes
# the namespaces ($tag-ha, $tag-s1, ...), $work is a scratch directory, $net the /24.

# shellcheck disable=SC2154 # set by the caller
root=$(cd "$here/../.." && pwd)
net=192.168.42
tag=rl$$
br=$tag-br
nss=()
work=""
# The template ha's agent renders haproxy.cfg from.
template=$here/ha/haproxy.cfg.hb

# lab_cleanup: kills every process of the lab's namespaces, deletes them and $work.
lab_cleanup() {
  local ns pid i
  for ns in "${nss[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  done
  for ((i = ${#nss[@]} - 1; i >= 0; i--)); do ip netns del "${nss[i]}" 2>/dev/null || true; done
  if [ -n "$work" ]; then rm -rf "$work"; fi
}

# lab_binaries lab|load: sets RUMOR and WEBAPP (and LOAD with `load`) to the binaries
# to run, building with cargo those not given (default: target/release/...).
lab_binaries() {
  local bins=()
  [ -n "${RUMOR:-}" ] || bins+=(--bin rumor)
  [ -n "${WEBAPP:-}" ] || bins+=(--bin rumor-lab-webapp)
  if [ "$1" = load ] && [ -z "${LOAD:-}" ]; then bins+=(--bin rumor-lab-load); fi
  if [ ${#bins[@]} -gt 0 ]; then
    (cd "$root" && cargo build --release -q -p rumor-std "${bins[@]}")
  fi
  RUMOR=${RUMOR:-$root/target/release/rumor}
  WEBAPP=${WEBAPP:-$root/target/release/rumor-lab-webapp}
  LOAD=${LOAD:-$root/target/release/rumor-lab-load}
  export RUMOR WEBAPP LOAD
}

# lab_init lab|load: the scratch directory, the cleanup on exit and the bridge; exits 77
# when network namespaces cannot be created here, 1 without haproxy. Then lab_binaries.
lab_init() {
  work=$(mktemp -d)
  trap lab_cleanup EXIT
  trap 'exit 130' INT TERM
  if ! ip netns add "$br" 2>"$work/err"; then
    echo "skipped: cannot create network namespaces here ($(cat "$work/err")); run as root" >&2
    exit 77
  fi
  nss+=("$br")
  command -v haproxy >/dev/null || { echo "haproxy is not installed (apt-get install haproxy)" >&2; exit 1; }
  lab_binaries "$1"
  ip -n "$br" link set lo up
  ip -n "$br" link add br0 type bridge
  ip -n "$br" link set br0 up
}

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

# remove_node NAME: kills every process of the node and deletes its namespace (its veth
# goes with it).
remove_node() {
  local pid
  for pid in $(ip netns pids "$tag-$1" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$tag-$1" 2>/dev/null || true
}

start_ha() {
  node ha "$net.42"
  launch_ha
}

# launch_ha: ha's start script in its namespace (again, after a restart); its pid goes in
# $work/ha.pid. Its state (config, snapshot) stays in $work/ha-state across restarts.
launch_ha() {
  ip netns exec "$tag-ha" env LAB_RUN="$work/ha" LAB_STATE="$work/ha-state" \
    LAB_TEMPLATE="$template" RUMOR="$RUMOR" NODE_NAME=ha \
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

# start_web NAME IP [VAR=VALUE...]: a web node joining ha (launch_web in a new node).
start_web() {
  node "$1" "$2"
  launch_web "$1" "${@:3}"
}

# launch_web NAME [VAR=VALUE...]: web/start.sh in node NAME's namespace, with these
# variables too; its pid (the agent's: the script execs it) goes in $work/NAME.pid.
launch_web() {
  ip netns exec "$tag-$1" env RUMOR="$RUMOR" WEBAPP="$WEBAPP" NODE_NAME="$1" JOIN="$net.42" \
    "${@:2}" "$here/web/start.sh" >"$work/$1.log" 2>&1 &
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
