#!/usr/bin/env bash
# The ha node: HAProxy in master-worker mode, and the rumor agent that renders its backend
# from the cluster, checks it with `haproxy -c` and applies changes through the runtime
# API (SIGUSR2 reload when more than the server lines changed). Used by the Docker image
# and by run.sh. Replaces the lab's s6 services, Serf and its handler scripts.
#
# - State survives a restart (LAB_STATE, a volume in docker-compose.yml): HAProxy starts
#   from the last rendered config, so a restarted ha serves the backends it had at once,
#   and the agent rejoins the peers in its snapshot. Only the very first start begins with
#   an empty backend.
# - The node lives as long as both processes do: if HAProxy or the agent exits, the other
#   is stopped and the script exits 1 (docker-compose restarts the container).
# - SIGTERM or SIGINT (docker stop): the agent leaves gracefully, then HAProxy stops; exit 0.
set -u
: "${LAB_RUN:=/run/lab}"
: "${LAB_STATE:=/var/lib/lab}"
: "${LAB_TEMPLATE:=/etc/rumor/haproxy.cfg.hb}"
: "${RUMOR:=rumor}"
: "${NODE_NAME:=$(hostname)}"
mkdir -p "$LAB_RUN" "$LAB_STATE"
cfg=$LAB_STATE/haproxy.cfg

if [ ! -s "$cfg" ]; then
  # The lab's first haproxy.cfg: the template with no server.
  sed '/{{#each/,/{{\/each}}/d' "$LAB_TEMPLATE" >"$cfg"
fi
haproxy -W -f "$cfg" -p "$LAB_RUN/haproxy.pid" &
haproxy=$!

# Joins render once the membership has been quiet for 200 ms (not the default 1 s): the
# runtime API adds a server without a reload, so a new backend serves within a second of
# starting, and a burst of joins still makes one change (at most 3 s after the first).
# Leaves and failures render at once whatever the setting.
render="{ renderer = \"template\", dest = \"$cfg\", template = \"$LAB_TEMPLATE\",
  tags = [\"role=backend\"], check = \"haproxy -c -f {staged}\", reload = \"runtime-api\",
  socket = \"$LAB_RUN/haproxy.sock\", pid_file = \"$LAB_RUN/haproxy.pid\",
  coalesce_quiet = \"200ms\" }"
"$RUMOR" agent --node "$NODE_NAME" --tag role=balancer --render "$render" \
  --snapshot "$LAB_STATE/rumor.snapshot" "$@" &
agent=$!

# stop PID...: SIGTERM to each, in order, waiting for each to exit.
stop() {
  local pid
  for pid in "$@"; do
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
}
trap 'stop "$agent" "$haproxy"; exit 0' TERM INT

wait -n "$haproxy" "$agent"
status=$?
if ! kill -0 "$haproxy" 2>/dev/null; then
  echo "start-ha: HAProxy exited (status $status): stopping the node" >&2
  stop "$agent"
else
  echo "start-ha: the rumor agent exited (status $status): stopping the node" >&2
  stop "$haproxy"
fi
exit 1
