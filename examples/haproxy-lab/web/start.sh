#!/bin/sh
# A web node: the web application on PORT, and a rumor agent tagged role=backend
# port=PORT that joins the cluster through JOIN (retried until it answers). Used by the
# Docker image and by run.sh.
set -eu
: "${RUMOR:=rumor}"
: "${WEBAPP:=rumor-lab-webapp}"
: "${NODE_NAME:=$(hostname)}"
: "${JOIN:=ha}"
: "${PORT:=3000}"

"$WEBAPP" "0.0.0.0:$PORT" "$NODE_NAME" &
# SIGTERM (docker stop) makes the agent leave gracefully: HAProxy drains this node.
exec "$RUMOR" agent --node "$NODE_NAME" --tag role=backend --tag "port=$PORT" --join "$JOIN" "$@"
