// Range deletes (issue #21): how long one deleteRange over N keys takes to
// write, and how fast a scan runs over a range holding a range tombstone —
// before compaction (the covered versions still in tables, skipped one by
// one), after compaction (dropped), and against the same keys deleted one by
// one with point deletes. 16-byte keys, 100-byte values.
// Run: npm run build && node bench/range-delete-probe.mjs [--keys N] [--runs N]
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { parseArgs } from 'node:util'
import { open } from '../dist/index.js'

const { values: args } = parseArgs({ options: { keys: { type: 'string', default: '1000000' }, runs: { type: 'string', default: '3' } } })
const N = Number(args.keys)
const runs = Number(args.runs)
const key = (i) => Buffer.from(`key${String(i).padStart(13, '0')}`)
const value = Buffer.alloc(100, 0x61)
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function load(dir) {
  const db = await open(dir)
  for (let i = 0; i < N; i += 1000) {
    const ops = []
    for (let j = i; j < Math.min(N, i + 1000); j++) ops.push({ type: 'put', key: key(j), value })
    await db.batch(ops)
  }
  await db.compactRange()
  await scanMs(db) // warm: blocks in the cache, the scan path compiled
  return db
}

async function scanMs(db) {
  const t = performance.now()
  let n = 0
  for await (const _ of db.iterator({ values: false })) n++
  return { ms: performance.now() - t, n }
}

const rows = { write: [], before: [], after: [], points: [], plain: [] }
for (let r = 0; r < runs; r++) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-rangedel-probe-'))
  const db = await load(dir)
  rows.plain.push((await scanMs(db)).ms)
  // A put's latency for reference, then the middle half of the keys deleted with one range delete.
  const puts = []
  for (let i = 0; i < 21; i++) {
    const t = performance.now()
    await db.put(key(N + i), value)
    puts.push(performance.now() - t)
  }
  await db.deleteRange(key(N), key(N + 21)) // (those again: the scans below count exactly N / 2 keys)
  const t = performance.now()
  await db.deleteRange(key(N / 4), key((3 * N) / 4))
  rows.write.push(performance.now() - t)
  rows.put ??= []
  rows.put.push(median(puts))
  const before = await scanMs(db)
  if (before.n !== N / 2) throw new Error(`scan saw ${before.n} keys, expected ${N / 2}`)
  rows.before.push(before.ms)
  await db.compactRange()
  const after = await scanMs(db)
  if (after.n !== N / 2) throw new Error(`scan saw ${after.n} keys after compaction, expected ${N / 2}`)
  rows.after.push(after.ms)
  await db.close()
  fs.rmSync(dir, { recursive: true, force: true })
  // The same keys deleted one by one (what clear() did before), scanned before compaction.
  const dir2 = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-rangedel-probe-'))
  const db2 = await load(dir2)
  for (let i = N / 4; i < (3 * N) / 4; i += 1000) {
    const ops = []
    for (let j = i; j < Math.min((3 * N) / 4, i + 1000); j++) ops.push({ type: 'del', key: key(j) })
    await db2.batch(ops)
  }
  await db2.compactRange('', key(0)) // flushes, compacts (almost) nothing
  rows.points.push((await scanMs(db2)).ms)
  await db2.close()
  fs.rmSync(dir2, { recursive: true, force: true })
  console.log(`run ${r + 1}: deleteRange of ${N / 2} keys ${rows.write[r].toFixed(3)} ms (a put: ${rows.put[r].toFixed(3)} ms); full scan ms: no deletes ${rows.plain[r].toFixed(0)}, range tombstone before compaction ${rows.before[r].toFixed(0)}, after ${rows.after[r].toFixed(0)}, ${N / 2} point deletes ${rows.points[r].toFixed(0)}`)
}
console.log(
  `medians of ${runs}: deleteRange write ${median(rows.write).toFixed(3)} ms (a put ${median(rows.put).toFixed(3)} ms); full keys-only scan of ${N} keys: ${median(rows.plain).toFixed(0)} ms; ` +
    `with half of them range-deleted: ${median(rows.before).toFixed(0)} ms before compaction, ${median(rows.after).toFixed(0)} ms after; ` +
    `with half point-deleted (not compacted): ${median(rows.points).toFixed(0)} ms`,
)
