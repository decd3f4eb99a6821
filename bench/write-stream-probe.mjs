// A random-write stream against stratadb alone, for memory and pacing work:
// N random 16-byte keys with the bench's half-compressible 100-byte values
// (db_bench's, as `strata bench` and bigdata write them), 64 puts in flight,
// memtableBytes and blockCacheBytes 64 MiB (bigdata's settings). Prints the
// throughput of each twentieth of the stream, the slowest ÷ median window,
// stalls and slowdowns, write amplification, peak RSS (sampled every
// 100 ms) and the kernel's VmHWM. With TIMELINE=<seconds>, also a line per
// interval: puts so far, tables per level, flushes and their mean time,
// compactions done + running and bytes they read, CPU seconds of each of
// the process's threads (/proc/self/task) and peak RSS in the interval:
// where background work keeps up and where it falls behind. Needs a build
// (npm run build).
//
//   node bench/write-stream-probe.mjs [N=10000000] ['{"l0SlowdownTrigger":8}']
//   TIMELINE=5 node bench/write-stream-probe.mjs 10000000
import { rmSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from '../dist/index.js'
import { ValuePool } from '../dist/cli/bench/key-stream.js'

const N = Number(process.argv[2] ?? 10_000_000)
const extra = JSON.parse(process.argv[3] ?? '{}')
const dir = mkdtempSync(join(tmpdir(), 'strata-probe-'))
const db = await open(dir, { memtableBytes: 64 << 20, blockCacheBytes: 64 << 20, ...extra })

let seed = 1
const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0)
const values = new ValuePool(100, 1, 0.5)
const windowOps = Math.floor(N / 20)
const windows = []
let issued = 0
let done = 0
let windowStart = performance.now()
let peakRss = 0
let intervalRss = 0
const sampler = setInterval(() => {
  const rss = process.memoryUsage().rss
  peakRss = Math.max(peakRss, rss)
  intervalRss = Math.max(intervalRss, rss)
}, 100)

/** CPU seconds (user + system) per thread id of this process. */
function threadCpuSeconds() {
  const out = {}
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    out[tid] = (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (USER_HZ 100)
  }
  return out
}

const timelineSeconds = Number(process.env.TIMELINE ?? 0)
let timeline
if (timelineSeconds > 0) {
  const t0 = performance.now()
  let lastCpu = threadCpuSeconds()
  timeline = setInterval(() => {
    const s = db.stats()
    const cpu = threadCpuSeconds()
    const busy = Object.entries(cpu)
      .map(([tid, sec]) => [tid, sec - (lastCpu[tid] ?? 0)])
      .filter(([, sec]) => sec >= 0.05)
      .map(([tid, sec]) => `${tid}:${sec.toFixed(1)}`)
    lastCpu = cpu
    const w = s.writes
    console.log(
      `${((performance.now() - t0) / 1000).toFixed(0)}s puts ${done} levels ${s.levels.map((l) => l.tables).join('/')}` +
        ` flushes ${w.flushes} (${(w.flushMs / Math.max(1, w.flushes)).toFixed(0)} ms each)` +
        ` compactions ${s.compaction.compactions}+${s.compaction.running} read ${(s.compaction.bytesRead / 1048576).toFixed(0)} MiB` +
        ` cpu s ${busy.join(' ')} rss ${(intervalRss / 1048576).toFixed(0)} MiB`,
    )
    intervalRss = 0
  }, timelineSeconds * 1000)
}

async function writer() {
  while (issued < N) {
    issued++
    const key = Buffer.alloc(16)
    key.writeUInt32BE(next(), 0)
    key.writeUInt32BE(next(), 4)
    key.writeUInt32BE(next(), 8)
    await db.put(key, values.valueFor(issued))
    if (++done % windowOps === 0) {
      const now = performance.now()
      windows.push(Math.round(windowOps / (now - windowStart)))
      windowStart = now
    }
  }
}

const started = performance.now()
await Promise.all(Array.from({ length: 64 }, writer))
const seconds = (performance.now() - started) / 1000
clearInterval(sampler)
clearInterval(timeline)
const sorted = [...windows].sort((a, b) => a - b)
const s = db.stats()
console.log(
  JSON.stringify({
    options: extra,
    putsPerSecond: Math.round(N / seconds),
    windowsKPerSecond: windows.join(' '),
    slowestOverMedian: +(sorted[0] / sorted[sorted.length >> 1]).toFixed(2),
    stalls: s.writes.stalls,
    stallSeconds: +(s.writes.stallMs / 1000).toFixed(1),
    slowdowns: s.writes.slowdowns,
    slowdownSeconds: +(s.writes.slowdownMs / 1000).toFixed(1),
    writeAmplification: +s.writeAmplification.toFixed(2),
    peakRssMiB: Math.round(peakRss / 1048576),
    // The kernel's high-water mark: peaks between two samples included.
    vmHwmMiB: Math.round(Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024),
    l0Tables: s.levels[0].tables,
  }),
)
await db.close()
rmSync(dir, { recursive: true, force: true })
