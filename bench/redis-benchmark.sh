#!/usr/bin/env bash
# redis-benchmark against `strata serve` and, in the same run, a real
# redis-server, with the same client settings, so the two columns compare.
#
#   bench/redis-benchmark.sh                 # default durability of each
#   SYNC=1 bench/redis-benchmark.sh          # strata --sync vs redis appendfsync always
#
# Environment (all optional):
#   REQUESTS=100000   requests per test (-n)
#   CLIENTS=50        parallel connections (-c)
#   PIPELINE=16       depth of the pipelined round (-P); the first round runs without -P
#   KEYSPACE=100000   random keys (-r); 0 = redis-benchmark's single fixed key per test
#   TESTS=set,get,incr,mset
#   SYNC=0|1          1: fsync every write (strata --sync, redis appendfsync always)
#   STRATA="node dist/cli/strata.js serve"   how to start strata (default: the built dist/)
#   KEEP=1            keep the temporary data directories
#
# Durability is matched: by default strata acknowledges a write once it is
# in the WAL with write(2) (survives kill -9), and redis runs with
# appendonly yes / appendfsync no (the AOF is written with write(2) before
# replies go out). With SYNC=1 both fsync before acknowledging.
#
# This script installs nothing. It needs: node (and a built dist/: npm run
# build), redis-benchmark and redis-cli (Debian package redis-tools), and
# redis-server (Debian package redis-server) for the comparison column.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

REQUESTS="${REQUESTS:-100000}"
CLIENTS="${CLIENTS:-50}"
PIPELINE="${PIPELINE:-16}"
KEYSPACE="${KEYSPACE:-100000}"
TESTS="${TESTS:-set,get,incr,mset}"
SYNC="${SYNC:-0}"

missing=()
command -v node >/dev/null 2>&1 || missing+=("node (Node.js 20+)")
command -v redis-benchmark >/dev/null 2>&1 || missing+=("redis-benchmark (Debian: apt-get install redis-tools)")
command -v redis-cli >/dev/null 2>&1 || missing+=("redis-cli (Debian: apt-get install redis-tools)")
[ -f "$repo/dist/server/index.js" ] || missing+=("the built server, $repo/dist/server/index.js (run: npm run build)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "redis-benchmark.sh: missing, nothing was run:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  exit 2
fi
have_redis=1
if ! command -v redis-server >/dev/null 2>&1; then
  have_redis=0
  echo "note: redis-server not found (Debian: apt-get install redis-server); running strata only, no comparison column" >&2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/strata-redis-bench.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do
    [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${pids[@]:-}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT INT TERM

free_port() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# Waits until a RESP server answers PING (redis-benchmark would retry forever otherwise).
wait_ping() {
  local port="$1" name="$2" pid="$3"
  for _ in $(seq 1 200); do
    if redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null | grep -q PONG; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "$name exited before answering PING" >&2; return 1; fi
    sleep 0.05
  done
  echo "$name did not answer PING on port $port" >&2
  return 1
}

# --- strata ----------------------------------------------------------------------
strata_port="$(free_port)"
strata_args=(--dir "$work/strata" --http off --resp "127.0.0.1:$strata_port")
[ "$SYNC" = 1 ] && strata_args+=(--sync)
if [ -n "${STRATA:-}" ]; then
  # shellcheck disable=SC2086
  $STRATA "${strata_args[@]}" >"$work/strata.log" 2>&1 &
else
  # A launcher file rather than `node --input-type=module -e`: worker threads inherit execArgv,
  # and the engine's flush/compaction workers cannot start under --input-type.
  printf '%s\n' "import { runServe } from '$repo/dist/server/index.js'" \
    "try { await runServe(process.argv.slice(2)) } catch (e) { console.error(e.message); process.exitCode = 1 }" >"$work/serve.mjs"
  node "$work/serve.mjs" "${strata_args[@]}" >"$work/strata.log" 2>&1 &
fi
strata_pid=$!
pids+=("$strata_pid")
wait_ping "$strata_port" "strata serve" "$strata_pid" || { cat "$work/strata.log" >&2; exit 1; }

# --- redis -------------------------------------------------------------------------
redis_port=""
if [ "$have_redis" = 1 ]; then
  redis_port="$(free_port)"
  mkdir -p "$work/redis"
  fsync_mode=no
  [ "$SYNC" = 1 ] && fsync_mode=always
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --save '' \
    --appendonly yes --appendfsync "$fsync_mode" --daemonize no --logfile "$work/redis.log" &
  redis_pid=$!
  pids+=("$redis_pid")
  wait_ping "$redis_port" "redis-server" "$redis_pid" || { cat "$work/redis.log" >&2; exit 1; }
fi

# --- run ---------------------------------------------------------------------------
common=(-h 127.0.0.1 -t "$TESTS" -c "$CLIENTS" -n "$REQUESTS" --csv)
[ "$KEYSPACE" != 0 ] && common+=(-r "$KEYSPACE")

# Prints "TEST|rps|p50" lines from redis-benchmark --csv (test names contain spaces: "MSET (10 keys)").
# redis-benchmark stops at the first error reply: say so instead of dying quietly.
run_one() {
  local port="$1" name="$2"; shift 2
  local csv
  if ! csv="$(redis-benchmark -p "$port" "${common[@]}" "$@" 2>>"$work/benchmark-errors.log")"; then
    echo "warning: redis-benchmark failed against $name (errors: $work/benchmark-errors.log; server log: $work/$name.log); KEEP=1 keeps them" >&2
  fi
  printf '%s\n' "$csv" | awk -F'","' 'NR > 1 { gsub(/"/, "", $1); gsub(/"/, "", $2); gsub(/"/, "", $5); print $1 "|" $2 "|" $5 }'
}

echo "redis-benchmark $(redis-benchmark --version 2>/dev/null | awk '{print $2}' || true): ${common[*]}"
echo "strata: $(node -p "require('$repo/package.json').version") on 127.0.0.1:$strata_port$([ "$SYNC" = 1 ] && echo ' --sync')"
[ -n "$redis_port" ] && echo "redis:  $(redis-server --version | awk '{print $3}') on 127.0.0.1:$redis_port (appendonly yes, appendfsync $fsync_mode, no RDB)"
echo "machine: $(nproc) cpus, $(uname -sr); server and clients share it"
echo

for round in "no pipelining" "pipeline $PIPELINE"; do
  extra=()
  [ "$round" != "no pipelining" ] && extra=(-P "$PIPELINE")
  s="$(run_one "$strata_port" strata "${extra[@]}")"
  r=""
  [ -n "$redis_port" ] && r="$(run_one "$redis_port" redis "${extra[@]}")"
  echo "== $round (-c $CLIENTS${extra:+ ${extra[*]}}) =="
  printf '%-16s %14s %10s %14s %10s %8s\n' test strata_rps p50_ms redis_rps p50_ms ratio
  while IFS='|' read -r name rps p50; do
    [ -z "$name" ] && continue
    rr="$(printf '%s\n' "$r" | awk -F'|' -v n="$name" '$1 == n { print $2 "|" $3 }')"
    IFS='|' read -r rrps rp50 <<<"${rr:--|-}"
    ratio="-"
    if [ "${rrps:--}" != "-" ]; then ratio="$(awk -v a="$rps" -v b="$rrps" 'BEGIN { printf "%.2f", a / b }')"; fi
    printf '%-16s %14s %10s %14s %10s %8s\n' "$name" "$rps" "$p50" "${rrps:--}" "${rp50:--}" "$ratio"
  done <<<"$s"
  echo
done
echo "ratio = strata / redis requests per second"
