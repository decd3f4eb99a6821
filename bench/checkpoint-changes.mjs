#!/usr/bin/env node
/**
 * Checkpoint time and size, and the change stream's read rate against the
 * write rate of a fillrandom stream (docs/performance.md, "Checkpoints and
 * the change stream").
 *
 *   node bench/checkpoint-changes.mjs [--num 1000000] [--dir /tmp/x] [--keep]
 *
 * 1. fillrandom: `num` puts of 16-byte keys drawn at random from [0, num),
 *    100-byte half-compressible values, 64 in flight (as `strata bench
 *    fillrandom`), with `walRetentionMs` large so every WAL stays for the
 *    stream; the write rate is measured here, in the same process.
 * 2. A checkpoint right after the writes (memtable partly full, tables at
 *    several levels), and a second one after `compactRange` (all in tables).
 * 3. `changes({ since: 0 })` read to the end: batches/s and MB/s of keys and
 *    values handed out, against the write rate of step 1.
 * 4. A live cursor following a second fillrandom stream of the same size:
 *    how far behind it is when the writes end, and when it caught up.
 * Needs a build (`npm run build`).
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { parseArgs } from 'node:util'
import { open } from '../dist/index.js'

const { values: args } = parseArgs({
  options: {
    num: { type: 'string', default: '1000000' },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
    batch: { type: 'string' },
  },
})
// --batch N: the first fill writes batches of N puts, one in flight (as `strata bench fillbatch`), instead of single puts.
const batchEntries = args.batch === undefined ? 0 : Number(args.batch)
const num = Number(args.num)
const root = args.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'strata-cp-bench-'))
const dbDir = path.join(root, 'db')
const IN_FLIGHT = 64

// A small deterministic PRNG (xorshift32) for key indices and value bytes.
let state = 0x9e3779b9
function random() {
  state ^= state << 13
  state ^= state >>> 17
  state ^= state << 5
  return (state >>> 0) / 4294967296
}
function key(i) {
  return Buffer.from(String(i).padStart(16, '0'))
}
// Half-compressible values as db_bench makes them: 50 random bytes then 50 repeated.
const valuePool = Buffer.alloc(1 << 20)
for (let i = 0; i < valuePool.length; i++) valuePool[i] = i % 100 < 50 ? Math.floor(random() * 256) : 0x61
function value(op) {
  const at = (op * 100) % (valuePool.length - 100)
  return valuePool.subarray(at, at + 100)
}

async function fillBatches(db, n) {
  const started = performance.now()
  for (let first = 0; first < n; first += batchEntries) {
    const ops = []
    for (let i = first; i < Math.min(n, first + batchEntries); i++) ops.push({ type: 'put', key: key(i), value: value(i) })
    await db.batch(ops)
  }
  const ms = performance.now() - started
  return { puts: n, ms, putsPerSec: n / (ms / 1000), mbPerSec: (n * 116) / 1e6 / (ms / 1000) }
}

async function fillRandom(db, n) {
  const started = performance.now()
  let next = 0
  async function lane() {
    while (next < n) {
      const op = next++
      await db.put(key(Math.floor(random() * num)), value(op))
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
  const ms = performance.now() - started
  return { puts: n, ms, putsPerSec: n / (ms / 1000), mbPerSec: (n * 116) / 1e6 / (ms / 1000) }
}

function dirBytes(dir) {
  let total = 0
  for (const name of fs.readdirSync(dir)) total += fs.statSync(path.join(dir, name)).size
  return total
}

const round = (x, d = 0) => Number(x.toFixed(d))
const report = { num, dir: root, node: process.version }

const db = await open(dbDir, { walRetentionMs: 24 * 3600 * 1000, walRetentionBytes: 2 ** 40 })
report.fillrandom = batchEntries > 0 ? await fillBatches(db, num) : await fillRandom(db, num)
if (batchEntries > 0) report.fillMode = `batches of ${batchEntries} (fillbatch), one in flight`

let t = performance.now()
const cp1 = await db.checkpoint(path.join(root, 'checkpoint-1'))
report.checkpointAfterWrites = { ...cp1, ms: round(performance.now() - t, 1), tables: fs.readdirSync(path.join(root, 'checkpoint-1')).filter((n) => n.endsWith('.sst')).length }

t = performance.now()
await db.compactRange()
report.compactRangeMs = round(performance.now() - t)
t = performance.now()
const cp2 = await db.checkpoint(path.join(root, 'checkpoint-2'))
report.checkpointAfterCompaction = { ...cp2, ms: round(performance.now() - t, 1), tables: fs.readdirSync(path.join(root, 'checkpoint-2')).filter((n) => n.endsWith('.sst')).length }
report.databaseBytes = dirBytes(dbDir)

t = performance.now()
let batches = 0
let ops = 0
let bytes = 0
for await (const batch of db.changes({ since: 0 })) {
  batches++
  for (const op of batch.ops) {
    ops++
    bytes += op.key.length + (op.value?.length ?? 0)
  }
}
let ms = performance.now() - t
report.changeStream = {
  batches,
  ops,
  ms: round(ms),
  batchesPerSec: round(batches / (ms / 1000)),
  opsPerSec: round(ops / (ms / 1000)),
  mbPerSec: round(bytes / 1e6 / (ms / 1000), 1),
  // Ops read per second over puts written per second by the first fill.
  vsFillrandom: round(ops / (ms / 1000) / report.fillrandom.putsPerSec, 2),
}

// A live cursor following a second write stream.
const since = db.stats().lastSequence
const live = db.changes({ since, live: true })
let followed = 0
let target = Infinity
let caughtUpAt = 0
const follower = (async () => {
  for await (const batch of live) {
    followed++
    if (batch.sequence >= target) {
      caughtUpAt = performance.now()
      break
    }
  }
})()
t = performance.now()
report.fillrandom2 = await fillRandom(db, num)
const writesEndedAt = performance.now()
const behindAtEnd = num - followed
target = db.stats().lastSequence
if (followed < num) {
  await follower
} else {
  caughtUpAt = writesEndedAt
  live.close()
  await follower
}
report.liveFollower = { batchesBehindWhenWritesEnded: behindAtEnd, caughtUpMsAfterWritesEnded: round(Math.max(0, caughtUpAt - writesEndedAt), 1) }

await db.close()
console.log(JSON.stringify(report, null, 2))
if (!args.keep && args.dir === undefined) fs.rmSync(root, { recursive: true, force: true })
