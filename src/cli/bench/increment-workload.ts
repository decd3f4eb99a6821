import { INCREMENT_KEYS } from './config.js'
import { runConcurrent } from './drivers.js'
import type { BenchDb, EngineAdapter } from './engines.js'
import { randomIndices, streamSeed } from './key-stream.js'
import { LatencyRecorder } from './latency.js'
import { SkipWorkload, type Measurement, type WorkloadContext } from './workload.js'

/** The increment workloads' check: they need the engine's transactions. */
export function requireTransactions(adapter: EngineAdapter): void {
  if (!adapter.transactions.supported) throw new SkipWorkload(adapter.transactions.why)
}

/** The key of the increment workloads' counter `i`. */
function counterKey(i: number): Buffer {
  return Buffer.from(`counter-${String(i).padStart(4, '0')}`, 'latin1')
}

/**
 * `incrementTasks` concurrent tasks, each making `incrementsPerTask`
 * read-modify-write increments, of one hot counter or of counters drawn at
 * random from INCREMENT_KEYS. Ops are committed transactions; afterwards the
 * counters must add up to the number of increments (no lost update).
 */
export async function increments(db: BenchDb, ctx: WorkloadContext, keys: 1 | typeof INCREMENT_KEYS): Promise<Measurement> {
  const increment = db.increment
  if (increment === undefined) throw new SkipWorkload('no transactions')
  const { incrementTasks: tasks, incrementsPerTask: perTask, seed } = ctx.config
  const total = tasks * perTask
  const picks = keys === 1 ? undefined : randomIndices(total, keys, streamSeed(seed, 'increment-keys'))
  const counters = Array.from({ length: keys }, (_, i) => counterKey(i))
  let attempts = 0
  let maxAttempts = 0
  const latency = new LatencyRecorder()
  const elapsedMs = await runConcurrent(
    total,
    tasks,
    async (op) => {
      const a = await increment(counters[picks === undefined ? 0 : picks[op]])
      attempts += a
      if (a > maxAttempts) maxAttempts = a
    },
    latency,
  )
  let sum = 0
  for (const key of counters) {
    const value = await db.get(key)
    if (value !== undefined) sum += Number(Buffer.from(value).toString('latin1'))
  }
  if (sum !== total) throw new Error(`lost updates: the counters add up to ${sum}, expected ${total}`)
  return {
    ops: total,
    bytes: 0,
    elapsedMs,
    latency,
    details: {
      tasks,
      incrementsPerTask: perTask,
      keys,
      commits: total,
      attempts,
      // With retries: Infinity every conflict re-runs the function once, so the two are equal.
      conflicts: attempts - total,
      retries: attempts - total,
      maxAttemptsPerTransaction: maxAttempts,
      finalCount: sum,
    },
  }
}
