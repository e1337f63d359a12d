#!/bin/sh
# A web node: the web application on PORT, announced by a rumor agent tagged role=backend
# port=PORT that joins the cluster through JOIN (retried until it answers). Used by the
# Docker image and by run.sh.
#
# The agent runs the web application as its child (`rumor agent ... -- CMD`): SIGTERM
# (docker stop, which signals the container's PID 1 only) makes the agent leave first,
# wait until the cluster knows and ha has drained the node (--drain-time), and only then
# stop the web application; the node exits with its status. RUMOR_CHILD_MODE=0 runs the
# two side by side instead, as the lab's s6 does (a stop then reaches both at once).
set -eu
: "${RUMOR:=rumor}"
: "${WEBAPP:=rumor-lab-webapp}"
: "${NODE_NAME:=$(hostname)}"
: "${JOIN:=ha}"
: "${PORT:=3000}"
: "${RUMOR_CHILD_MODE:=1}"

set -- --node "$NODE_NAME" --tag role=backend --tag "port=$PORT" --join "$JOIN" "$@"
if [ "$RUMOR_CHILD_MODE" = 1 ]; then
  exec "$RUMOR" agent "$@" -- "$WEBAPP" "0.0.0.0:$PORT" "$NODE_NAME"
fi
"$WEBAPP" "0.0.0.0:$PORT" "$NODE_NAME" &
exec "$RUMOR" agent "$@"
