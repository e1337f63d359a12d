#!/bin/sh
# The ha node: HAProxy in master-worker mode, and the rumor agent that renders its backend
# from the cluster, checks it with `haproxy -c` and applies changes through the runtime
# API (SIGUSR2 reload when more than the server lines changed). Used by the Docker image
# and by run.sh. Replaces the lab's s6 services, Serf and its handler scripts.
set -eu
: "${LAB_RUN:=/run/lab}"
: "${LAB_TEMPLATE:=/etc/rumor/haproxy.cfg.hb}"
: "${RUMOR:=rumor}"
: "${NODE_NAME:=$(hostname)}"
export LAB_RUN
mkdir -p "$LAB_RUN"

# The first config is the template with no server (the lab's haproxy.cfg).
sed '/{{#each/,/{{\/each}}/d' "$LAB_TEMPLATE" > "$LAB_RUN/haproxy.cfg"
haproxy -W -f "$LAB_RUN/haproxy.cfg" -p "$LAB_RUN/haproxy.pid" &

render="{ renderer = \"template\", dest = \"$LAB_RUN/haproxy.cfg\", template = \"$LAB_TEMPLATE\",
  tags = [\"role=backend\"], check = \"haproxy -c -f {staged}\", reload = \"runtime-api\",
  socket = \"$LAB_RUN/haproxy.sock\", pid_file = \"$LAB_RUN/haproxy.pid\" }"
# SIGTERM (docker stop) makes the agent leave gracefully; no trap needed.
exec "$RUMOR" agent --node "$NODE_NAME" --tag role=balancer --render "$render" "$@"
