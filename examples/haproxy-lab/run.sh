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
#   run.sh --measure [ARGS]   measure.sh: failed requests under load while backends come
#                    and go (see there)
#
# RUMOR and WEBAPP name the binaries (default: target/release/rumor and
# target/release/rumor-lab-webapp, built with cargo when not given).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=${1:-}
if [ "$mode" = --measure ]; then exec "$here/measure.sh" "${@:2}"; fi
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
lab_init lab

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
  printf '%s\n' "  ip netns exec $tag-ha bash -c 'exec 3<>/dev/tcp/$net.42/80; printf \"GET / HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3'"
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
