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
# SIGTERM (docker stop) makes the agent leave gracefully: ha takes this node out of
# HAProxy's rotation. The web server stops with the container right after the leave,
# so requests sent here meanwhile can fail (see docker-compose.yml).
exec "$RUMOR" agent --node "$NODE_NAME" --tag role=backend --tag "port=$PORT" --join "$JOIN" "$@"
