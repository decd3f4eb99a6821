// Point reads of a database whose L0 holds tens of overlapping tables, the
// shape bigdata leaves behind after its write burst (docs/performance.md,
// "Read path and point index"). The database (N distinct 16-byte keys in a
// random order, the bench's half-compressible 100-byte values, a 16 MiB
// memtable, compaction off so every flush stays in L0) is created once in
// <dir>; each run reopens
// it with compaction off, a 64 MiB block cache and the default table cache,
// and makes `reads` getSync calls of random keys in two passes (the first
// after the reopen, the second with the tables open and their filters known),
// printing reads/s, minor page faults and CPU time of each. Needs a build
// (npm run build); for an A/B, alternate runs of two builds, the other one
// a copy of its dist/ inside this tree (DIST=../dist-old, relative to bench/).
//
//   [DIST=../dist] node bench/l0-read-probe.mjs <dir> [N=5000000] [reads=200000] [runs=1]
import * as fs from 'node:fs'
const dist = process.env.DIST ?? '../dist'
const { open } = await import(`${dist}/index.js`)
const { KeyFormat, Permutation, SeededRandom, ValuePool, streamSeed } = await import(`${dist}/cli/bench/key-stream.js`)

const dir = process.argv[2]
if (dir === undefined) throw new Error('usage: node bench/l0-read-probe.mjs <dir> [N] [reads] [runs]')
const N = Number(process.argv[3] ?? 5_000_000)
const reads = Number(process.argv[4] ?? 200_000)
const runs = Number(process.argv[5] ?? 1)
const noCompaction = { autoCompaction: false, l0SlowdownTrigger: 999, l0StopTrigger: 1000 }
const keys = new KeyFormat(16)

if (!fs.existsSync(dir)) {
  const values = new ValuePool(100, 1, 0.5)
  const db = await open(dir, { ...noCompaction, memtableBytes: 16 << 20 })
  const order = new Permutation(N, streamSeed(1, 'bigdata'))
  let next = 0
  const writer = async () => {
    while (next < N) {
      const op = next++
      await db.put(keys.encode(order.at(op)), values.valueFor(op))
    }
  }
  await Promise.all(Array.from({ length: 64 }, writer))
  await db.close()
}

for (let r = 0; r < runs; r++) {
  const db = await open(dir, { ...noCompaction, blockCacheBytes: 64 << 20 })
  const random = new SeededRandom(r + 1)
  const line = { run: r + 1, tablesPerLevel: db.stats().levels.map((l) => l.tables).join('/') }
  for (const pass of [1, 2]) {
    const before = process.resourceUsage()
    const started = performance.now()
    let found = 0
    for (let i = 0; i < reads; i++) if (db.getSync(keys.encode(random.below(N))) !== undefined) found++
    const ms = performance.now() - started
    const after = process.resourceUsage()
    if (found !== reads) throw new Error(`found ${found} of ${reads}`)
    line[`pass${pass}`] = {
      readsPerSec: Math.round((reads / ms) * 1000),
      minorFaults: after.minorPageFault - before.minorPageFault,
      cpuMs: Math.round((after.userCPUTime + after.systemCPUTime - before.userCPUTime - before.systemCPUTime) / 1000),
    }
  }
  line.blockCacheMisses = db.stats().blockCache.misses
  console.log(JSON.stringify(line))
  await db.close()
}
