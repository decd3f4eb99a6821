#!/usr/bin/env bash
# redis-benchmark against `strata serve` and, in the same run, a real
# redis-server, with the same client settings, so the two columns compare.
#
#   bench/redis-benchmark.sh                  # issue #6: redis appendonly yes, appendfsync everysec
#   RUNS=3 bench/redis-benchmark.sh           # three runs, medians
#   REDIS_FSYNC=no bench/redis-benchmark.sh   # redis appendfsync no (write(2) only, as strata's default)
#   SYNC=1 bench/redis-benchmark.sh           # strata --sync vs redis appendfsync always
#
# Environment (all optional):
#   REQUESTS=100000   requests per test (-n)
#   CLIENTS=50        parallel connections (-c)
#   PIPELINE=16       depth of the pipelined round (-P); the first round runs without -P
#   KEYSPACE=100000   random keys (-r); 0 = redis-benchmark's single fixed key per test
#   TESTS=set,get,incr,mset
#   RUNS=1            repetitions; each run goes through both rounds, strata then redis
#                     (redis first on even runs); the tables show the median of the runs
#   REDIS_FSYNC=everysec|no|always   redis appendfsync (default everysec, always with SYNC=1)
#   SYNC=0|1          1: fsync every write (strata --sync, redis appendfsync always)
#   STRATA="node dist/cli/strata.js serve"   how to start strata (default: the built dist/)
#   KEEP=1            keep the temporary data directories and the raw CSV
#
# Durability. strata acknowledges a write once it is in its WAL with write(2)
# (it survives kill -9 of the server, not a power loss); with SYNC=1 it
# fdatasyncs before acknowledging. redis runs with appendonly yes and, by
# default, appendfsync everysec, the setting the issue asks for: the AOF is
# written with write(2) before replies go out, and fsynced in the background
# once a second (survives kill -9; a power loss can take the last ~1-2 s).
# REDIS_FSYNC=no is exactly strata's default guarantee; SYNC=1 compares
# fsync-per-acknowledgment on both sides.
#
# Output: per round, one line per test with requests/s, p50 and p99 latency
# (ms, redis-benchmark's own figures) of each server and the strata ÷ redis
# ratios (rps ratio above 1: strata faster; p99 ratio above 1: strata slower).
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
RUNS="${RUNS:-1}"
if [ "$SYNC" = 1 ]; then REDIS_FSYNC="${REDIS_FSYNC:-always}"; else REDIS_FSYNC="${REDIS_FSYNC:-everysec}"; fi
case "$REDIS_FSYNC" in
  everysec|no|always) ;;
  *) echo "redis-benchmark.sh: REDIS_FSYNC must be everysec, no or always (got '$REDIS_FSYNC')" >&2; exit 2 ;;
esac
case "$RUNS" in
  ''|*[!0-9]*|0) echo "redis-benchmark.sh: RUNS must be a positive integer (got '$RUNS')" >&2; exit 2 ;;
esac

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
  fsync_mode="$REDIS_FSYNC"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --save '' \
    --appendonly yes --appendfsync "$fsync_mode" --daemonize no --logfile "$work/redis.log" &
  redis_pid=$!
  pids+=("$redis_pid")
  wait_ping "$redis_port" "redis-server" "$redis_pid" || { cat "$work/redis.log" >&2; exit 1; }
fi

# --- run ---------------------------------------------------------------------------
common=(-h 127.0.0.1 -t "$TESTS" -c "$CLIENTS" -n "$REQUESTS" --csv)
[ "$KEYSPACE" != 0 ] && common+=(-r "$KEYSPACE")

# Prints "TEST|rps|p50|p99" lines from redis-benchmark --csv (test names contain spaces:
# "MSET (10 keys)"; columns: test, rps, avg, min, p50, p95, p99, max).
# redis-benchmark stops at the first error reply: say so instead of dying quietly.
run_one() {
  local port="$1" name="$2"; shift 2
  local csv
  if ! csv="$(redis-benchmark -p "$port" "${common[@]}" "$@" 2>>"$work/benchmark-errors.log")"; then
    echo "warning: redis-benchmark failed against $name (errors: $work/benchmark-errors.log; server log: $work/$name.log); KEEP=1 keeps them" >&2
  fi
  printf '%s\n' "$csv" | awk -F'","' 'NR > 1 { gsub(/"/, "", $1); gsub(/"/, "", $2); gsub(/"/, "", $5); gsub(/"/, "", $7); print $1 "|" $2 "|" $5 "|" $7 }'
}

echo "redis-benchmark $(redis-benchmark --version 2>/dev/null | awk '{print $2}' || true): ${common[*]}"
echo "strata: $(node -p "require('$repo/package.json').version") on 127.0.0.1:$strata_port$([ "$SYNC" = 1 ] && echo ' --sync')"
[ -n "$redis_port" ] && echo "redis:  $(redis-server --version | awk '{print $3}') on 127.0.0.1:$redis_port (appendonly yes, appendfsync $fsync_mode, no RDB)"
echo "machine: $(nproc) cpus, $(uname -sr); server and clients share it; $RUNS run(s)"
echo

# Raw results: "round|run|server|test|rps|p50|p99", one line per test.
raw="$work/results.txt"
: >"$raw"
rounds=("no pipelining" "pipeline $PIPELINE")
for run in $(seq 1 "$RUNS"); do
  for round in "${rounds[@]}"; do
    extra=()
    [ "$round" != "no pipelining" ] && extra=(-P "$PIPELINE")
    order=(strata redis)
    [ $((run % 2)) = 0 ] && order=(redis strata)
    for server in "${order[@]}"; do
      port="$strata_port"
      if [ "$server" = redis ]; then
        [ -n "$redis_port" ] || continue
        port="$redis_port"
      fi
      run_one "$port" "$server" "${extra[@]}" | awk -v r="$round" -v n="$run" -v s="$server" 'NF { print r "|" n "|" s "|" $0 }' >>"$raw"
    done
  done
  [ "$RUNS" -gt 1 ] && echo "run $run of $RUNS done" >&2
done

# Median per round, server and test; ratios of the medians.
node - "$raw" "$RUNS" "$CLIENTS" "$PIPELINE" <<'NODE'
const fs = require('node:fs')
const [file, runs, clients, pipeline] = process.argv.slice(2)
const rows = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => l.split('|'))
const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}
const rounds = [...new Set(rows.map((r) => r[0]))]
const fmtRps = (x) => (Number.isFinite(x) ? (x >= 1e5 ? `${(x / 1e3).toFixed(0)}k` : `${(x / 1e3).toFixed(1)}k`) : '-')
const fmtMs = (x) => (Number.isFinite(x) ? x.toFixed(3) : '-')
const fmtRatio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) : '-')
const pad = (s, n) => String(s).padStart(n)
for (const round of rounds) {
  const flags = round === 'no pipelining' ? `-c ${clients}` : `-c ${clients} -P ${pipeline}`
  console.log(`== ${round} (${flags}), ${runs === '1' ? 'one run' : `median of ${runs} runs`} ==`)
  console.log(`${'test'.padEnd(16)}${pad('strata rps', 11)}${pad('p50', 8)}${pad('p99', 8)}${pad('redis rps', 11)}${pad('p50', 8)}${pad('p99', 8)}${pad('rps ÷', 8)}${pad('p99 ÷', 8)}`)
  const tests = [...new Set(rows.filter((r) => r[0] === round).map((r) => r[3]))]
  for (const test of tests) {
    const pick = (server, col) => median(rows.filter((r) => r[0] === round && r[2] === server && r[3] === test).map((r) => Number(r[col])))
    const s = { rps: pick('strata', 4), p50: pick('strata', 5), p99: pick('strata', 6) }
    const r = { rps: pick('redis', 4), p50: pick('redis', 5), p99: pick('redis', 6) }
    console.log(`${test.padEnd(16)}${pad(fmtRps(s.rps), 11)}${pad(fmtMs(s.p50), 8)}${pad(fmtMs(s.p99), 8)}${pad(fmtRps(r.rps), 11)}${pad(fmtMs(r.p50), 8)}${pad(fmtMs(r.p99), 8)}${pad(fmtRatio(s.rps, r.rps), 8)}${pad(fmtRatio(s.p99, r.p99), 8)}`)
  }
  console.log()
}
console.log('latencies in ms (redis-benchmark); rps ÷ = strata / redis requests per second (above 1: strata faster);')
console.log('p99 ÷ = strata / redis p99 latency (above 1: strata slower)')
NODE
if [ "$RUNS" -gt 1 ]; then
  echo
  echo "per run (round|run|server|test|rps|p50|p99):"
  cat "$raw"
fi
