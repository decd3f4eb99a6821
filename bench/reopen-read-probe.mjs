// readrandom as `strata bench` runs it, in a process of its own, so that
// builds can be compared run against run: open an existing database, then 1M
// getSync of the bench's readrandom key stream through the bench's own driver
// and latency recorder. Pass 1 is what the bench measures (right after the
// open, cache cold); later passes show the same reads with a warm cache.
// Each pass also prints the process's minor page faults during it (the first
// touch of fresh memory: the block cache filling up; lmdb maps the page cache).
// The databases come from a kept bench directory:
//
//   node dist/cli/strata.js bench readrandom --num 1000000 --engines stratadb,lmdb --dir /tmp/rr
//   node bench/reopen-read-probe.mjs stratadb /tmp/rr/run-1/stratadb [cacheMiB=256] [passes=2] [distDir=dist]
//   node bench/reopen-read-probe.mjs lmdb /tmp/rr/run-1/lmdb
//
// distDir may point at a copy of another build's dist/ (with node_modules
// reachable from it) to compare two builds on the same database.
import * as path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const [engine, dir, cacheArg, passesArg, distArg] = process.argv.slice(2)
if (engine === undefined || dir === undefined) throw new Error('usage: node bench/reopen-read-probe.mjs stratadb|lmdb <dir> [cacheMiB] [passes] [distDir]')
const dist = path.resolve(distArg ?? path.join(here, '..', 'dist'))
const load = (p) => import(pathToFileURL(path.join(dist, p)).href)
const { KeyFormat, randomIndices, streamSeed } = await load('cli/bench/key-stream.js')
const { runSync } = await load('cli/bench/drivers.js')
const { LatencyRecorder } = await load('cli/bench/latency.js')
const N = 1_000_000
const keys = new KeyFormat(16)
let getSync
let close
const openStartMs = performance.now()
if (engine === 'lmdb') {
  const lmdb = await import('lmdb')
  const db = lmdb.open({ path: dir, keyEncoding: 'binary', encoding: 'binary' })
  getSync = (key) => db.get(key)
  close = () => db.close()
} else {
  const { open } = await load('index.js')
  const db = await open(dir, { blockCacheBytes: Number(cacheArg ?? 256) * 2 ** 20 })
  getSync = (key) => db.getSync(key)
  close = () => db.close()
}
const openMs = performance.now() - openStartMs
const indices = randomIndices(N, N, streamSeed(1, 'readrandom'))
for (let pass = 1; pass <= Number(passesArg ?? 2); pass++) {
  let found = 0
  const faults = process.resourceUsage().minorPageFault
  const latency = new LatencyRecorder()
  const ms = runSync(
    N,
    (op) => {
      if (getSync(keys.encode(indices[op])) !== undefined) found++
    },
    latency,
  )
  console.log(
    `${engine} pass ${pass}: ${Math.round((N / ms) * 1000)} ops/s, p50 ${(latency.histogram.percentile(50) / 1000).toFixed(2)} µs, ` +
      `p99 ${(latency.histogram.percentile(99) / 1000).toFixed(2)} µs, found ${found}, open ${openMs.toFixed(0)} ms, ` +
      `minor page faults ${process.resourceUsage().minorPageFault - faults}`,
  )
}
await close()
