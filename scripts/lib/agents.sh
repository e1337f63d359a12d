# Shared by the benchmark scripts that run `rumor agent` processes on loopback: building the
# release binary, addresses of our own (127.<pid>.<i>), starting agents, waiting for
# convergence, and reading when a survivor logged a member failed. Every agent started
# here is killed on exit, by PID. Source it; it sets `bin`, `work` and `pids`.

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -q -p rumor-std --bin rumor
bin="$CARGO_TARGET_DIR/release/rumor"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# A /24 of loopback addresses of our own: 127.<pid>.<i>.
net="127.$(( ($$ >> 8) & 255 )).$(( $$ & 255 ))"
addr() { echo "$net.$1"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# start_agent I [ARGS...]: node-I on $(addr I), LAN profile, joining node-1 (unless it is
# node-1); its log is $work/node-I.log (appended), its PID pids[I-1].
start_agent() {
  local i=$1
  shift
  local args=(agent --node "node-$i" --bind "$(addr "$i"):7946" --rpc-addr "$(addr "$i"):7373" --profile lan "$@")
  [ "$i" -gt 1 ] && args+=(--join "$(addr 1):7946")
  "$bin" "${args[@]}" >>"$work/node-$i.log" 2>&1 &
  pids[$((i - 1))]=$!
  disown   # a kill -9 is the point of these benchmarks: no job-control notice for it
}

alive_count() { "$bin" members --rpc-addr "$(addr "$1"):7373" --status alive --format json 2>/dev/null | grep -c '"name"' || true; }

# wait_converged N: until agents 1..N each see N alive members (at most 120 s).
wait_converged() {
  local n=$1 i deadline=$(( $(date +%s) + 120 ))
  for i in $(seq 1 "$n"); do
    until [ "$(alive_count "$i")" -eq "$n" ]; do
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "no convergence within 120 s (node-$i sees $(alive_count "$i")/$n)" >&2
        tail -5 "$work/node-$i.log" >&2
        exit 1
      fi
      sleep 0.5
    done
  done
}

# failed_after SINCE OBSERVER VICTIM: seconds from SINCE (epoch, fractional) to the first
# `member-failed` of node-VICTIM that node-OBSERVER logged after SINCE; empty if none yet.
failed_after() {
  local since=$1 log="$work/node-$2.log" line at
  while read -r line; do
    at=$(date -d "${line%% *}" +%s.%N)
    if awk -v a="$at" -v s="$since" 'BEGIN { exit !(a >= s) }'; then
      elapsed "$since" "$at"
      return
    fi
  done < <(grep "member-failed name=node-$3 " "$log" || true)
}
