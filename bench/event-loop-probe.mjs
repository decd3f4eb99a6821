// Event-loop blocks during a put stream on a fresh database: 64 put loops with bench values and
// keys; a 5 ms interval timer measures how late it fires. Prints puts/s, the longest block and when,
// the blocks of 20 ms or more, and the slowest put.
//   node bench/event-loop-probe.mjs [dist dir, default ./dist] [puts, default 1500000] [db dir]
import fs from 'node:fs'
import path from 'node:path'
const dist = path.resolve(process.argv[2] ?? 'dist')
const N = Number(process.argv[3] ?? 1_500_000)
const dir = process.argv[4] ?? '/tmp/strata-event-loop-probe'
const { open } = await import(path.join(dist, 'index.js'))
const { KeyFormat, ValuePool, randomIndices, streamSeed } = await import(path.join(dist, 'cli/bench/key-stream.js'))
fs.rmSync(dir, { recursive: true, force: true })
const db = await open(dir)
const keys = new KeyFormat(16)
const values = new ValuePool(100, 1, 0.5)
const order = randomIndices(N, N, streamSeed(1, 'event-loop-probe'))
const t0 = performance.now()
let last = t0
let worst = 0
let worstAt = 0
const blocks = []
const timer = setInterval(() => {
  const now = performance.now()
  const late = now - last - 5
  if (late > worst) (worst = late), (worstAt = now - t0)
  if (late >= 20) blocks.push(`${late.toFixed(0)} ms at ${((now - t0) / 1000).toFixed(2)} s`)
  last = now
}, 5)
let next = 0
let slowest = 0
let slowestAt = 0
const writer = async () => {
  while (next < N) {
    const op = next++
    const s = performance.now()
    await db.put(keys.encode(order[op]), values.valueFor(op))
    const d = performance.now() - s
    if (d > slowest) (slowest = d), (slowestAt = s - t0)
  }
}
await Promise.all(Array.from({ length: 64 }, writer))
const ms = performance.now() - t0
clearInterval(timer)
console.log(`puts/s ${Math.round((N / ms) * 1000)}; longest block ${worst.toFixed(1)} ms at ${(worstAt / 1000).toFixed(2)} s; ${blocks.length} blocks of 20 ms or more${blocks.length > 0 ? ': ' + blocks.slice(0, 12).join(', ') : ''}; slowest put ${slowest.toFixed(1)} ms at ${(slowestAt / 1000).toFixed(2)} s`)
await db.close()
fs.rmSync(dir, { recursive: true, force: true })
