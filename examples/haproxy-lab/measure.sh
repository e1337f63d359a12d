#!/usr/bin/env bash
# Failed requests while backends come and go: the lab of run.sh (lib.sh) with three web
# nodes behind ha, and rumor-lab-load inside ha sending 200 requests/s to HAProxy at
# 192.168.42.42:80 (one new connection each, HTTP/1.0, 1 s deadline). The phases, in
# order, each counted on its own (a request counts in the phase it was sent in):
#
#   steady            10 s with three backends
#   join              a new web node starts: seconds until it first answers through HAProxy
#   graceful leave    SIGTERM to a node's agent; its web server stops once the agent exited
#   docker stop       SIGTERM to a node's web server and agent at once (the lab's s6)
#   docker stop, child mode   a node started with RUMOR_CHILD_MODE=1 (web/start.sh runs
#                     `rumor agent ... -- rumor-lab-webapp ...`); SIGTERM to the agent only,
#                     as `docker stop` signals PID 1. "skipped" when the agent or
#                     web/start.sh has no child mode
#   kill -9           every process of a node; its host still answers (ICMP port unreachable)
#   link down         `ip link set eth0 down` in a node's namespace (host gone)
#
# For a removal, the seconds from the action to ha's haproxy.cfg losing the node's server
# line (polled every 5 ms); then SETTLE more seconds in the phase. Between phases a new
# node replaces the removed one (in a phase of its own, "+sN joins"), so that each removal
# starts from three backends. Prints rumor-lab-load's table, then the summary:
#
#   | phase | sent | failed | seconds to haproxy.cfg change (join: to first answer) |
#
#   measure.sh [--runs N] [--rate R] [--steady S] [--settle S] [--template FILE]
#
# --runs N (default 1) builds and measures the lab N times, one after the other, and
# prints one summary with each run's figures ("run 1 / run 2 / ..."). --template FILE: ha
# renders haproxy.cfg from FILE, not ha/haproxy.cfg.hb (seed-lab.cfg.hb has the Serf lab's
# backend lines, without the retries on another server and faster checks). RUMOR, WEBAPP and
# LOAD name the binaries (target/release/..., built with cargo when not given). Needs root,
# iproute2 and haproxy; exits 77 when network namespaces cannot be created here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

runs=1
rate=200
steady=10
settle=3
results=""
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --steady) steady=$2; shift 2 ;;
    --settle) settle=$2; shift 2 ;;
    --template) template=$(realpath "$2"); shift 2 ;;
    --results) results=$2; shift 2 ;; # one run's summary rows (TSV), for --runs
    *) echo "usage: measure.sh [--runs N] [--rate R] [--steady S] [--settle S] [--template FILE]" >&2; exit 2 ;;
  esac
done

header='| phase | sent | failed | seconds to haproxy.cfg change (join: to first answer) |
|---|---|---|---|'

# summary FILE...: one markdown table from the runs' TSV rows (label, sent, failed,
# seconds), each cell "run1 / run2 / ...".
summary() {
  echo "$header"
  awk -F'\t' '
    FNR == 1 { run++ }
    {
      if (FNR > rows) rows = FNR
      label[FNR] = $1
      for (c = 2; c <= 4; c++) cell[FNR, c] = (run > 1 ? cell[FNR, c] " / " : "") $c
    }
    END { for (r = 1; r <= rows; r++) printf "| %s | %s | %s | %s |\n", label[r], cell[r, 2], cell[r, 3], cell[r, 4] }
  ' "$@"
}

if [ "$runs" -gt 1 ]; then
  lab_binaries load
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  files=()
  for ((i = 1; i <= runs; i++)); do
    echo "=== run $i of $runs"
    "$BASH" "$here/measure.sh" --rate "$rate" --steady "$steady" --settle "$settle" --template "$template" \
      --results "$out/$i.tsv"
    files+=("$out/$i.tsv")
  done
  echo
  echo "=== $runs runs, $rate requests/s, ${template#"$root"/} ($(date -u +%Y-%m-%d), $(nproc) cores)"
  summary "${files[@]}"
  exit 0
fi

lab_init load
cfg=$work/ha-state/haproxy.cfg
mkfifo "$work/tick"
exec 8<>"$work/tick" # read -t on it: a sleep without a fork

# now_ms: sets REPLY to the wall clock in milliseconds.
now_ms() {
  local t=${EPOCHREALTIME/[.,]/}
  REPLY=$((t / 1000))
}

# nap MS: sleeps MS milliseconds without a fork.
nap() {
  local t
  printf -v t '0.%03d' "$1"
  read -r -t "$t" -u 8 _ || true
}

# secs MS: sets REPLY to MS as seconds with three decimals.
secs() {
  printf -v REPLY '%d.%03d' $(($1 / 1000)) $(($1 % 1000))
}

# in_cfg NAME: whether ha's haproxy.cfg has a server line for NAME.
in_cfg() {
  local c=""
  read -r -d '' c <"$cfg" || true
  [[ $c == *"server $1 "* ]]
}

# wait_cfg NAME in|out T0 SECONDS: polls haproxy.cfg every 5 ms until NAME's server line
# is in (or out of) it, for at most SECONDS; sets REPLY to the seconds since T0 (ms), or
# to ">SECONDS" when it never happened.
wait_cfg() {
  local have limit=$(($4 * 1000))
  while true; do
    now_ms
    if in_cfg "$1"; then have=in; else have=out; fi
    if [ "$have" = "$2" ]; then
      secs $((REPLY - $3))
      return 0
    fi
    if [ $((REPLY - $3)) -gt "$limit" ]; then
      REPLY=">$4"
      return 0
    fi
    nap 5
  done
}

# wait_gone PID SECONDS: waits for PID to exit; returns 1 if it still runs after SECONDS.
wait_gone() {
  local i
  for ((i = 0; i < $2 * 100; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    nap 10
  done
  ! kill -0 "$1" 2>/dev/null
}

# agent NAME: node NAME's agent pid. others NAME: the node's other pids (its web server).
agent() { cat "$work/$1.pid"; }
others() {
  local a p
  a=$(agent "$1")
  for p in $(ip netns pids "$tag-$1" 2>/dev/null); do
    if [ "$p" != "$a" ]; then echo "$p"; fi
  done
}

# node_gone NAME SECONDS: waits for every process of node NAME to exit, then kills what
# is left (docker stop's SIGKILL after its grace period).
node_gone() {
  local i pid
  for ((i = 0; i < $2 * 10; i++)); do
    [ -z "$(ip netns pids "$tag-$1" 2>/dev/null)" ] && return 0
    nap 100
  done
  echo "  $1: still running after $2 s, SIGKILL"
  for pid in $(ip netns pids "$tag-$1" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
}

# wait_answer NAME SECONDS: waits until rumor-lab-load reported NAME's first answer.
wait_answer() {
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    grep -q "first answer from $1\$" "$work/load.err" && return 0
    nap 50
  done
  echo "  $1: no answer through HAProxy after $2 s"
}

# child_mode: whether the agent runs a command as its child (`rumor agent ... -- CMD`)
# and web/start.sh uses it when RUMOR_CHILD_MODE=1.
child_mode() {
  "$RUMOR" agent --help 2>/dev/null | grep -qiE -- '-- <?(command|cmd)' \
    && grep -q RUMOR_CHILD_MODE "$here/web/start.sh"
}

rows=() # label, rumor-lab-load phase, seconds; tab-separated

# phase NAME: what rumor-lab-load sends from now on counts under NAME; T0 is now.
phase() {
  echo "phase $1" >&7
  now_ms
  t0=$REPLY
}

# ip_of N: node sN's address.
ip_of() { echo "$net.$((10 + $1))"; }

# web/start.sh runs the web server next to the agent (the lab's way), except for the node
# of the child-mode phase.
classic=RUMOR_CHILD_MODE=0

# join N [VAR=VALUE...]: node sN starts (in a phase "+sN joins") and serves.
join() {
  local n=s$1
  node "$n" "$(ip_of "$1")"
  phase "+$n joins"
  launch_web "$n" "${@:2}"
  wait_cfg "$n" in "$t0" 60
  echo "  $n joined: in haproxy.cfg after $REPLY s"
  wait_answer "$n" 30
  sleep "$settle"
}

echo "ha: HAProxy and its rumor agent at $net.42; s1, s2, s3: web nodes"
start_ha
for i in 1 2 3; do start_web "s$i" "$(ip_of $i)" "$classic"; done
expect "s1 s2 s3" 60
mkfifo "$work/load.in"
ip netns exec "$tag-ha" "$LOAD" --rate "$rate" "$net.42:80" <"$work/load.in" \
  >"$work/load.out" 2>"$work/load.err" &
load=$!
exec 7>"$work/load.in"
sleep 1

echo "steady: $steady s"
phase steady
sleep "$steady"
rows+=("steady ($steady s, 3 backends)"$'\tsteady\t-')

echo "join: s4 starts"
node s4 "$(ip_of 4)"
phase join
launch_web s4 "$classic"
wait_cfg s4 in "$t0" 60
echo "  s4 in haproxy.cfg after $REPLY s"
wait_answer s4 30
sleep "$settle"
rows+=("join (s4 starts; to its first answer)"$'\tjoin\tFIRST:s4')

echo "graceful leave: SIGTERM to s1's agent, its web server stops once the agent exited"
phase "graceful leave"
kill -TERM "$(agent s1)"
wait_cfg s1 out "$t0" 60
changed=$REPLY
wait_gone "$(agent s1)" 30 || echo "  s1's agent still runs after 30 s"
now_ms
echo "  s1 out of haproxy.cfg after $changed s; the agent exited after $(secs $((REPLY - t0)); echo "$REPLY") s"
for pid in $(others s1); do kill -TERM "$pid" 2>/dev/null || true; done
sleep "$settle"
rows+=("graceful leave (SIGTERM to the agent, then the web server)"$'\tgraceful leave\t'"$changed")
remove_node s1

echo "docker stop: SIGTERM to s2's web server and agent at once"
phase "docker stop"
# shellcheck disable=SC2046 # one pid a word
kill -TERM "$(agent s2)" $(others s2)
wait_cfg s2 out "$t0" 60
changed=$REPLY
echo "  s2 out of haproxy.cfg after $changed s"
node_gone s2 10
sleep "$settle"
rows+=("docker stop (SIGTERM to web server and agent)"$'\tdocker stop\t'"$changed")
remove_node s2

if child_mode; then
  join 5 RUMOR_CHILD_MODE=1
  echo "docker stop, child mode: SIGTERM to s5's agent only"
  phase "docker stop, child mode"
  kill -TERM "$(agent s5)"
  wait_cfg s5 out "$t0" 60
  changed=$REPLY
  echo "  s5 out of haproxy.cfg after $changed s"
  node_gone s5 10
  now_ms
  echo "  s5's agent and web server exited after $(secs $((REPLY - t0)); echo "$REPLY") s"
  sleep "$settle"
  rows+=("docker stop, child mode (SIGTERM to the agent)"$'\tdocker stop, child mode\t'"$changed")
  remove_node s5
  join 6 "$classic"
else
  echo "docker stop, child mode: skipped (no \`rumor agent -- CMD\`, or web/start.sh ignores RUMOR_CHILD_MODE)"
  join 5 "$classic"
  rows+=("docker stop, child mode (SIGTERM to the agent)"$'\tskipped\tskipped')
fi

echo "kill -9: every process of s3"
phase "kill -9"
for pid in $(ip netns pids "$tag-s3"); do kill -9 "$pid" 2>/dev/null || true; done
wait_cfg s3 out "$t0" 60
changed=$REPLY
echo "  s3 out of haproxy.cfg after $changed s"
sleep "$settle"
rows+=("kill -9 (every process; ICMP port unreachable)"$'\tkill -9\t'"$changed")
remove_node s3
join 7 "$classic"

echo "link down: eth0 of s4"
phase "link down"
ip -n "$tag-s4" link set eth0 down
wait_cfg s4 out "$t0" 90
changed=$REPLY
echo "  s4 out of haproxy.cfg after $changed s"
sleep "$settle"
rows+=("link down (eth0 of the node)"$'\tlink down\t'"$changed")

echo end >&7
exec 7>&-
wait "$load" || true
echo
cat "$work/load.out"

# The summary rows: sent and failed from rumor-lab-load's table; for join, the first
# answer of the new node after the phase started.
tsv=$work/summary.tsv
for row in "${rows[@]}"; do
  IFS=$'\t' read -r label name seconds <<<"$row"
  if [ "$name" = skipped ]; then
    printf '%s\tskipped\t-\t-\n' "$label"
    continue
  fi
  line=$(awk -F'|' -v p="$name" '{ n = $2; gsub(/^ +| +$/, "", n) } n == p' "$work/load.out")
  sent=$(echo "$line" | awk -F'|' '{ gsub(/ /, "", $4); print $4 }')
  failed=$(echo "$line" | awk -F'|' '{ gsub(/ /, "", $6); print $6 }')
  if [[ $seconds == FIRST:* ]]; then
    seconds=$(echo "$line" | grep -oE "(\| |, )${seconds#FIRST:} [0-9]+ \[[0-9.]+" | sed 's/.*\[//')
    seconds=${seconds:-none}
  fi
  printf '%s\t%s\t%s\t%s\n' "$label" "${sent:-?}" "${failed:-?}" "$seconds"
done >"$tsv"
echo
summary "$tsv"
if [ -n "$results" ]; then cp "$tsv" "$results"; fi
