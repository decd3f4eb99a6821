// Put throughput with an expiry on every key against without (issue #21: "within 10%").
// Alternates the two modes over fresh databases, fillrandom-style: 16-byte
// random keys, 100-byte values, 64 puts in flight; prints each run and the
// medians. Run: npm run build && node bench/ttl-probe.mjs [--ops N] [--runs N]
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { parseArgs } from 'node:util'
import { open } from '../dist/index.js'

const { values: args } = parseArgs({ options: { ops: { type: 'string', default: '1000000' }, runs: { type: 'string', default: '3' } } })
const ops = Number(args.ops)
const runs = Number(args.runs)
const IN_FLIGHT = 64

function keyOf(i) {
  const k = Buffer.alloc(16)
  k.writeUInt32BE(Math.imul(i, 0x9e3779b1) >>> 0, 0)
  k.writeUInt32BE(i, 12)
  return k
}
const pool = Buffer.alloc(1 << 20)
for (let i = 0; i < pool.length; i++) pool[i] = (Math.random() * 256) | 0

async function run(ttl) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-ttl-probe-'))
  const db = await open(dir)
  const options = ttl ? { ttlMs: 3_600_000 } : undefined
  const started = performance.now()
  let next = 0
  const worker = async () => {
    while (next < ops) {
      const i = next++
      const o = (i * 4099) % (pool.length - 100)
      await db.put(keyOf(i), pool.subarray(o, o + 100), options)
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
  const seconds = (performance.now() - started) / 1000
  await db.close()
  fs.rmSync(dir, { recursive: true, force: true })
  return ops / seconds
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const plain = []
const ttl = []
for (let r = 0; r < runs; r++) {
  // Alternate which goes first, so drift on a noisy machine hits both.
  for (const mode of r % 2 === 0 ? [false, true] : [true, false]) {
    const rate = await run(mode)
    ;(mode ? ttl : plain).push(rate)
    console.log(`run ${r + 1} ${mode ? 'ttl  ' : 'plain'} ${Math.round(rate).toLocaleString('en-US')} puts/s`)
  }
}
const ratios = plain.map((p, i) => ttl[i] / p)
console.log(`median plain ${Math.round(median(plain)).toLocaleString('en-US')} puts/s, ttl ${Math.round(median(ttl)).toLocaleString('en-US')} puts/s, median per-run ratio ttl/plain ${median(ratios).toFixed(3)}`)
