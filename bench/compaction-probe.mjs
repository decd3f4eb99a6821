// The cost of one large compaction, on this thread: a database of N random
// 16-byte keys with the bench's half-compressible 100-byte values, written
// with a 16 MiB memtable and automatic compaction off (so it holds ~20
// overlapping L0 tables), is created once in <dir>; then each run copies it
// and times `compactRange()` of the copy. A file system other than the
// default one (a copy of it) keeps the compaction on the calling thread, so
// `node --cpu-prof` sees it. Needs a build (npm run build).
//
//   node bench/compaction-probe.mjs <dir> [N=2000000] [runs=2]
import * as fs from 'node:fs'
import { open } from '../dist/index.js'
import { KeyFormat, randomIndices, ValuePool } from '../dist/cli/bench/key-stream.js'
import { nodeFileSystem } from '../dist/vfs/node-file-system.js'

const src = process.argv[2]
if (src === undefined) throw new Error('usage: node bench/compaction-probe.mjs <dir> [N] [runs]')
const N = Number(process.argv[3] ?? 2_000_000)
const runs = Number(process.argv[4] ?? 2)
const noCompaction = { autoCompaction: false, l0SlowdownTrigger: 999, l0StopTrigger: 1000 }

if (!fs.existsSync(src)) {
  const keys = new KeyFormat(16)
  const values = new ValuePool(100, 1, 0.5)
  const db = await open(src, { ...noCompaction, memtableBytes: 16 << 20 })
  const order = randomIndices(N, N * 10, 5)
  let next = 0
  const writer = async () => {
    while (next < N) {
      const op = next++
      await db.put(keys.encode(order[op]), values.valueFor(op))
    }
  }
  await Promise.all(Array.from({ length: 64 }, writer))
  await db.close()
}

const work = `${src}-work`
for (let r = 0; r < runs; r++) {
  fs.rmSync(work, { recursive: true, force: true })
  fs.cpSync(src, work, { recursive: true })
  const db = await open(work, { ...noCompaction, fileSystem: { ...nodeFileSystem } })
  const before = db.stats().levels.map((l) => l.tables).join('/')
  const started = performance.now()
  await db.compactRange()
  const ms = performance.now() - started
  console.log(`compactRange ${Math.round(ms)} ms, tables per level ${before} -> ${db.stats().levels.map((l) => l.tables).join('/')}`)
  await db.close()
}
fs.rmSync(work, { recursive: true, force: true })
