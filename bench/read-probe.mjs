// Point reads against one database, to see where a getSync's time goes:
// 1M random getSync over a growing span of keys (1 key repeated, 10, 100, ...
// up to all of them), so the JavaScript path and the cache misses show apart.
// The database (1M keys written 0..N-1 in batches of 1,000, like `strata
// bench` populates it) is created on the first run in the directory given.
// Needs a build (npm run build).
//
//   node bench/read-probe.mjs <dir> [blockCacheMiB=256]
import * as fs from 'node:fs'
import { open } from '../dist/index.js'
import { KeyFormat, randomIndices } from '../dist/cli/bench/key-stream.js'

const dir = process.argv[2]
if (dir === undefined) throw new Error('usage: node bench/read-probe.mjs <dir> [blockCacheMiB]')
const cacheMiB = Number(process.argv[3] ?? 256)
const N = 1_000_000
const keys = new KeyFormat(16)
if (!fs.existsSync(dir)) {
  const db = await open(dir)
  for (let b = 0; b < N; b += 1000) {
    const ops = []
    for (let i = b; i < b + 1000; i++) ops.push({ type: 'put', key: keys.encode(i), value: Buffer.alloc(100, i & 255) })
    await db.batch(ops)
  }
  await db.close()
}
const db = await open(dir, { blockCacheBytes: cacheMiB << 20 })
for (const span of [1, 10, 100, 1000, 10_000, 100_000, N]) {
  const picks = randomIndices(N, span, 9)
  const stride = Math.floor(N / span)
  for (let i = 0; i < Math.min(span, N); i++) db.getSync(keys.encode(picks[i] * stride)) // warm the cache
  const t = performance.now()
  let found = 0
  for (let i = 0; i < N; i++) if (db.getSync(keys.encode(picks[i] * stride)) !== undefined) found++
  const ns = ((performance.now() - t) / N) * 1e6
  console.log(`span ${String(span).padStart(7)}: ${ns.toFixed(0)} ns per getSync (${found} found)`)
}
console.log(`tables per level ${db.stats().levels.map((l) => l.tables).join('/')}`)
await db.close()
