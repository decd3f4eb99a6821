// Disk space after overwrites: writes the same N keys (16-byte keys, 100-byte
// values) `passes` times, each pass in a new random order, 64 puts in
// flight, then waits until compaction settles (no compaction running or
// wanted, 2 s without change) and compares the directory's size with the
// live data (N × (16 + 100) bytes). Default options. Needs a build.
//
//   node bench/space-probe.mjs [N=1000000] [passes=5]
import * as fs from 'node:fs'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from '../dist/index.js'
import { KeyFormat, SeededRandom } from '../dist/cli/bench/key-stream.js'

const N = Number(process.argv[2] ?? 1_000_000)
const passes = Number(process.argv[3] ?? 5)
const dir = mkdtempSync(join(tmpdir(), 'strata-space-'))
const keys = new KeyFormat(16)
const db = await open(dir)
const dirBytes = () => fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(join(dir, f)).size, 0)
const MiB = 2 ** 20
const started = performance.now()
for (let p = 0; p < passes; p++) {
  // A random permutation of 0..N-1 (Fisher-Yates), seeded per pass.
  const order = new Uint32Array(N)
  for (let i = 0; i < N; i++) order[i] = i
  const random = new SeededRandom(p + 1)
  for (let i = N - 1; i > 0; i--) {
    const j = random.below(i + 1)
    const t = order[i]
    order[i] = order[j]
    order[j] = t
  }
  const value = Buffer.alloc(100, 0x61 + p)
  let next = 0
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < N) await db.put(keys.encode(order[next++]), value)
  }))
  console.log(`pass ${p + 1}: ${(dirBytes() / MiB).toFixed(0)} MiB on disk`)
}
const writtenMs = performance.now() - started
let last = -1
let stableSince = performance.now()
for (;;) {
  await new Promise((r) => setTimeout(r, 250))
  const s = db.stats()
  const size = dirBytes()
  if (size !== last || s.compaction.running > 0) {
    last = size
    stableSince = performance.now()
  } else if (performance.now() - stableSince > 2000) break
}
const live = N * (16 + 100)
const s = db.stats()
console.log(JSON.stringify({
  keys: N,
  passes,
  writeSeconds: +(writtenMs / 1000).toFixed(1),
  settleSeconds: +((performance.now() - started - writtenMs) / 1000).toFixed(1),
  diskMiB: +(last / MiB).toFixed(1),
  liveDataMiB: +(live / MiB).toFixed(1),
  diskOverLive: +(last / live).toFixed(2),
  tablesPerLevel: s.levels.map((l) => l.tables).join('/'),
}))
await db.close()
fs.rmSync(dir, { recursive: true, force: true })
