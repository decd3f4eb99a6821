/**
 * Tests of the linearizability checker (test/cluster/linearizability.ts).
 *
 *  1. Histories simulated from a real sequential register pass. Each op takes
 *     effect at a random instant between its invocation and completion.
 *     Unknown-outcome ops take effect later or never.
 *  2. One mutation that provably breaks linearizability makes a history fail
 *     on the mutated key.
 *  3. On thousands of tiny random histories, the checker agrees with a
 *     brute-force search over all orders consistent with real time.
 *  4. A pathological history with a tiny time limit reports 'timeout', not ok.
 *  5. Performance: 10 processes × 3000 ops, keys rotating every 200 ops.
 *
 * Everything is seeded and deterministic; the failure messages carry the seed.
 */
import { describe, expect, it } from 'vitest'
import { checkHistory, describeOp, type HistoryOp, type OpKind, type Value } from './linearizability.js'

// ---- seeded randomness --------------------------------------------------------

class Rng {
  private s: number
  constructor(seed: number) {
    this.s = (seed ^ 0x9e3779b9) >>> 0
  }

  /** mulberry32 */
  float(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0
    let t = this.s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000
  }

  /** Integer in [lo, hi], both inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1))
  }

  chance(p: number): boolean {
    return this.float() < p
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.float() * items.length)]!
  }

  weighted<T extends string>(weights: Record<T, number>): T {
    const entries = Object.entries(weights) as [T, number][]
    let x = this.float() * entries.reduce((s, [, w]) => s + w, 0)
    for (const [k, w] of entries) {
      x -= w
      if (x < 0) return k
    }
    return entries[entries.length - 1]![0]
  }
}

// ---- a simulated linearizable register ------------------------------------------

interface SimConfig {
  seed: number
  processes: number
  opsPerProcess: number
  /** Keys rotate every this many ops (in invocation order)... */
  rotateEvery?: number
  /** ...or each op picks one of `keys` at random. */
  keys?: number
  /** 'unique': every write/CAS writes a fresh value; 'small': values from {a, b, c} (repeats). */
  values: 'unique' | 'small'
  mix?: Record<OpKind, number>
  /** Share of mutations (write, delete, cas) with outcome 'unknown' (half take effect, possibly much later). */
  unknownRate?: number
  /** Share of writes/deletes rejected with outcome 'fail' (never take effect). */
  failRate?: number
  /** Share of reads with outcome 'unknown' or 'fail' (dropped by the checker). */
  readLossRate?: number
  maxDurationMs?: number
  maxGapMs?: number
  /** Round times to whole ms (makes equal timestamps common). */
  integerTimes?: boolean
}

interface SimOp extends HistoryOp {
  /** When it took effect in the simulated store; undefined when it never did. */
  effectMs?: number
  /** The value the store held just before this op took effect. */
  before?: Value
}

function simulate(cfg: SimConfig): SimOp[] {
  const rng = new Rng(cfg.seed)
  const mix = cfg.mix ?? { read: 40, write: 25, cas: 25, delete: 10 }
  const unknownRate = cfg.unknownRate ?? 0.03
  const failRate = cfg.failRate ?? 0.03
  const readLossRate = cfg.readLossRate ?? 0.03
  const maxDuration = cfg.maxDurationMs ?? 10
  const maxGap = cfg.maxGapMs ?? 3
  const round = (t: number): number => (cfg.integerTimes === true ? Math.round(t) : t)

  // Timings: each process runs its ops one after the other.
  const ops: SimOp[] = []
  for (let p = 0; p < cfg.processes; p++) {
    let t = round(rng.float() * maxGap * 2)
    for (let j = 0; j < cfg.opsPerProcess; j++) {
      const invokeMs = t
      const completeMs = Math.max(invokeMs, round(invokeMs + rng.float() * maxDuration))
      ops.push({ id: 0, process: p, key: '', kind: 'read', invokeMs, completeMs, outcome: 'ok' })
      t = round(completeMs + rng.float() * maxGap)
    }
  }
  ops.sort((x, y) => x.invokeMs - y.invokeMs || Number(x.process) - Number(y.process))

  let counter = 0
  const fresh = (key: string): string => (cfg.values === 'unique' ? `${key}.v${++counter}` : rng.pick(['a', 'b', 'c']))
  const written = new Map<string, string[]>()
  const someWritten = (key: string): Value => {
    const list = written.get(key) ?? []
    return list.length === 0 || rng.chance(0.2) ? null : rng.pick(list.slice(-4))
  }

  const effects: SimOp[] = []
  ops.forEach((op, i) => {
    op.id = i
    op.key = cfg.rotateEvery !== undefined ? `k${Math.floor(i / cfg.rotateEvery)}` : `k${rng.int(0, (cfg.keys ?? 1) - 1)}`
    op.kind = rng.weighted(mix)
    const span = op.completeMs! - op.invokeMs
    let takesEffect = true
    let late = false
    if (op.kind === 'read') {
      if (rng.chance(readLossRate)) {
        op.outcome = rng.chance(0.5) ? 'unknown' : 'fail'
        takesEffect = false
      }
    } else {
      if (op.kind !== 'delete') op.value = fresh(op.key)
      if (rng.chance(unknownRate)) {
        op.outcome = 'unknown'
        takesEffect = rng.chance(0.5)
        late = true
      } else if (op.kind !== 'cas' && rng.chance(failRate)) {
        op.outcome = 'fail'
        takesEffect = false
      }
    }
    if (takesEffect) {
      // An unknown op may take effect long after its client gave up.
      op.effectMs = op.invokeMs + rng.float() * (late ? span + 4 * maxDuration : span)
      effects.push(op)
    } else if (op.kind === 'cas') {
      op.expected = someWritten(op.key)
    }
    if (op.kind === 'write' || op.kind === 'cas') {
      let list = written.get(op.key)
      if (list === undefined) written.set(op.key, (list = []))
      list.push(op.value!)
    }
  })

  // The real sequential store, in effect order.
  effects.sort((x, y) => x.effectMs! - y.effectMs! || Number(x.id) - Number(y.id))
  const store = new Map<string, Value>()
  for (const op of effects) {
    const cur = store.get(op.key) ?? null
    op.before = cur
    switch (op.kind) {
      case 'read':
        op.result = cur
        break
      case 'write':
        store.set(op.key, op.value!)
        break
      case 'delete':
        store.set(op.key, null)
        break
      case 'cas': {
        op.expected = rng.chance(0.55) ? cur : someWritten(op.key)
        if (op.expected === cur) store.set(op.key, op.value!)
        else if (op.outcome !== 'unknown') op.outcome = 'fail' // a precondition failure
        break
      }
    }
  }
  return ops
}

function randomConfig(seed: number): SimConfig {
  const rng = new Rng(seed * 7919 + 17)
  return {
    seed,
    processes: rng.int(1, 10),
    opsPerProcess: rng.int(5, 80),
    keys: rng.int(1, 4),
    values: rng.chance(0.5) ? 'unique' : 'small',
    unknownRate: rng.pick([0, 0.02, 0.05, 0.1]),
    failRate: rng.pick([0, 0.05]),
    readLossRate: rng.pick([0, 0.05]),
    maxDurationMs: rng.pick([1, 5, 10, 30]),
    maxGapMs: rng.pick([0, 1, 5]),
    integerTimes: rng.chance(0.5),
  }
}

function show(ops: readonly HistoryOp[]): string {
  return ops.map((op) => `  ${describeOp(op)}`).join('\n')
}

// ---- a brute-force checker ----------------------------------------------------------

const ILLEGAL = Symbol('illegal')

/** The register model, written independently of the checker. */
function bruteStep(op: HistoryOp, state: Value): Value | typeof ILLEGAL {
  switch (op.kind) {
    case 'read':
      return op.result === state ? state : ILLEGAL
    case 'write':
      return op.value!
    case 'delete':
      return null
    case 'cas':
      if (op.outcome === 'fail') return op.expected !== state ? state : ILLEGAL
      return op.expected === state ? op.value! : ILLEGAL
  }
}

/**
 * Tries every order of every subset of the ops that is consistent with real time:
 * ok ops and failed CASes must all appear; unknown writes, deletes and CASes may
 * appear (taking effect) or not; unknown reads, failed reads/writes/deletes and
 * rejected ops are ignored. A precedes B iff A completed (ok/fail) and
 * A.completeMs < B.invokeMs. Single key.
 */
function bruteForce(history: readonly HistoryOp[], initial: Value): boolean {
  const ops = history.filter(
    (op) => op.rejected !== true && !(op.kind === 'read' && op.outcome === 'unknown') && !(op.outcome === 'fail' && op.kind !== 'cas'),
  )
  const n = ops.length
  let requiredMask = 0
  ops.forEach((op, i) => {
    if (op.outcome !== 'unknown') requiredMask |= 1 << i
  })
  const mustPrecede = ops.map((op, i) => {
    let m = 0
    ops.forEach((o, j) => {
      if (j !== i && o.outcome !== 'unknown' && o.completeMs! < op.invokeMs) m |= 1 << j
    })
    return m
  })
  const place = (placed: number, state: Value): boolean => {
    if ((placed & requiredMask) === requiredMask) return true
    for (let i = 0; i < n; i++) {
      if (placed & (1 << i) || (mustPrecede[i]! & ~placed) !== 0) continue
      const next = bruteStep(ops[i]!, state)
      if (next !== ILLEGAL && place(placed | (1 << i), next)) return true
    }
    return false
  }
  return place(0, initial)
}

/** Tiny random histories: random ops, outcomes and overlapping intervals (not necessarily linearizable). */
function randomTinyHistory(rng: Rng): HistoryOp[] {
  const n = rng.int(1, 8)
  const vals = ['a', 'b']
  const maybe = [null, 'a', 'b']
  const ops: HistoryOp[] = []
  for (let i = 0; i < n; i++) {
    const kind = rng.weighted({ read: 35, write: 25, cas: 30, delete: 10 } as Record<OpKind, number>)
    const invokeMs = rng.int(0, 12)
    const completeMs = invokeMs + rng.int(0, 6)
    const outcome = rng.weighted({ ok: 60, fail: 20, unknown: 20 })
    const op: HistoryOp = { id: i, process: rng.int(0, 3), key: 'k', kind, invokeMs, completeMs, outcome }
    if (kind === 'read' && outcome === 'ok') op.result = rng.pick(maybe)
    if (kind === 'write' || kind === 'cas') op.value = rng.pick(vals)
    if (kind === 'cas') op.expected = rng.pick(maybe)
    if (rng.chance(0.03)) op.rejected = true
    ops.push(op)
  }
  return ops
}

/** Tiny simulated (linearizable) histories with, half of the time, one random field changed. */
function perturbedTinyHistory(rng: Rng, seed: number, maxOps = 8, overrides: Partial<SimConfig> = {}): HistoryOp[] {
  const ops = simulate({
    seed,
    processes: rng.int(2, 4),
    opsPerProcess: 2,
    keys: 1,
    values: 'small',
    unknownRate: 0.2,
    failRate: 0.1,
    readLossRate: 0.1,
    maxDurationMs: rng.pick([2, 6, 15]),
    maxGapMs: 2,
    integerTimes: rng.chance(0.7),
    ...overrides,
  }).slice(0, maxOps)
  const strip = ops.map(({ effectMs: _e, before: _b, ...op }): HistoryOp => ({ ...op, key: 'k' }))
  if (rng.chance(0.5) && strip.length > 0) {
    const op = strip[rng.int(0, strip.length - 1)]!
    if (op.kind === 'read' && op.outcome === 'ok') op.result = rng.pick([null, 'a', 'b', 'c'])
    else if (op.kind === 'cas') {
      if (rng.chance(0.5)) op.expected = rng.pick([null, 'a', 'b', 'c'])
      else op.outcome = op.outcome === 'ok' ? 'fail' : 'ok'
    } else if (op.kind === 'write') op.value = rng.pick(['a', 'b', 'c'])
    else if (op.kind === 'delete') op.outcome = rng.pick(['ok', 'fail', 'unknown'] as const)
  }
  return strip
}

/**
 * The same exhaustive search as bruteForce, memoized on (placed ops, state) so that it reaches 16 ops.
 * Still nothing but "try every order", independent of the checker's list, pruning rules and cache.
 */
function memoizedReference(history: readonly HistoryOp[], initial: Value): boolean {
  const ops = history.filter(
    (op) => op.rejected !== true && !(op.kind === 'read' && op.outcome === 'unknown') && !(op.outcome === 'fail' && op.kind !== 'cas'),
  )
  let requiredMask = 0
  ops.forEach((op, i) => {
    if (op.outcome !== 'unknown') requiredMask |= 1 << i
  })
  const mustPrecede = ops.map((op, i) => {
    let m = 0
    ops.forEach((o, j) => {
      if (j !== i && o.outcome !== 'unknown' && o.completeMs! < op.invokeMs) m |= 1 << j
    })
    return m
  })
  const failed = new Set<string>()
  const place = (placed: number, state: Value): boolean => {
    if ((placed & requiredMask) === requiredMask) return true
    const memo = `${placed}|${state === null ? '' : `=${state}`}`
    if (failed.has(memo)) return false
    for (let i = 0; i < ops.length; i++) {
      if (placed & (1 << i) || (mustPrecede[i]! & ~placed) !== 0) continue
      const next = bruteStep(ops[i]!, state)
      if (next !== ILLEGAL && place(placed | (1 << i), next)) return true
    }
    failed.add(memo)
    return false
  }
  return place(0, initial)
}

/** Up to 16 ops crowded into a short span: high concurrency, many unknown outcomes, values from a tiny domain. */
function denseHistory(rng: Rng, n: number): HistoryOp[] {
  const span = rng.pick([3, 8, 20])
  const ops: HistoryOp[] = []
  for (let i = 0; i < n; i++) {
    const kind = rng.weighted({ read: 35, write: 20, cas: 35, delete: 10 } as Record<OpKind, number>)
    const invokeMs = rng.int(0, span)
    const completeMs = invokeMs + rng.int(0, 5)
    const outcome = rng.weighted({ ok: 50, fail: 20, unknown: 30 })
    const op: HistoryOp = { id: i, process: i, key: 'k', kind, invokeMs, completeMs, outcome }
    if (kind === 'read' && outcome === 'ok') op.result = rng.pick([null, 'a', 'b', 'c'])
    if (kind === 'write' || kind === 'cas') op.value = rng.pick(['a', 'b', 'c', 'd'])
    if (kind === 'cas') op.expected = rng.pick([null, 'a', 'b', 'c'])
    ops.push(op)
  }
  return ops
}

// ---- tests ---------------------------------------------------------------------------

describe('linearizability checker: hand-made cases', () => {
  const op = (o: Partial<HistoryOp> & Pick<HistoryOp, 'kind' | 'invokeMs'>): HistoryOp => ({
    id: o.id ?? `${o.kind}@${o.invokeMs}`,
    process: 0,
    key: 'k',
    outcome: 'ok',
    completeMs: o.invokeMs + 1,
    ...o,
  })

  it('accepts the empty history and lone ops', () => {
    expect(checkHistory([]).ok).toBe(true)
    expect(checkHistory([op({ kind: 'read', invokeMs: 0, result: null })]).ok).toBe(true)
    expect(checkHistory([op({ kind: 'read', invokeMs: 0, result: 'x' })]).ok).toBe(false)
    expect(checkHistory([op({ kind: 'read', invokeMs: 0, result: 'x' })], { initial: new Map([['k', 'x']]) }).ok).toBe(true)
    expect(checkHistory([op({ kind: 'read', invokeMs: 0, result: 'x' })], { initial: { k: 'x' } }).ok).toBe(true)
  })

  it('orders by real time, treating equal timestamps as concurrent', () => {
    const w = op({ kind: 'write', value: 'x', invokeMs: 0, completeMs: 10 })
    expect(checkHistory([w, op({ kind: 'read', result: null, invokeMs: 10, completeMs: 11 })]).ok).toBe(true)
    const stale = checkHistory([w, op({ kind: 'read', result: null, invokeMs: 10.001, completeMs: 11 })])
    expect(stale.ok).toBe(false)
    if (!stale.ok) {
      expect(stale.reason).toBe('not-linearizable')
      expect(stale.detail).toContain('returned null but the register holds "x"')
    }
  })

  it('a failed CAS constrains the state; a rejected one does not', () => {
    const w = op({ kind: 'write', value: 'x', invokeMs: 0 })
    const failedCas = op({ kind: 'cas', expected: 'x', value: 'y', outcome: 'fail', invokeMs: 5 })
    expect(checkHistory([w, failedCas]).ok).toBe(false)
    expect(checkHistory([w, { ...failedCas, rejected: true }]).ok).toBe(true)
    expect(checkHistory([w, { ...failedCas, expected: null }]).ok).toBe(true)
    // Concurrent with the write, the failed CAS can go first.
    expect(checkHistory([{ ...w, completeMs: 10 }, failedCas]).ok).toBe(true)
  })

  it('an unknown write may take effect at any later time, or never', () => {
    const w = op({ kind: 'write', value: 'x', invokeMs: 0, outcome: 'unknown', completeMs: 1 })
    const r = (result: Value, t: number): HistoryOp => op({ kind: 'read', result, invokeMs: t })
    expect(checkHistory([w, r(null, 10), r('x', 20)]).ok).toBe(true) // took effect late
    expect(checkHistory([w, r(null, 10), r(null, 20)]).ok).toBe(true) // never
    expect(checkHistory([w, r('x', 10), r(null, 20)]).ok).toBe(false) // cannot be undone
    // An unknown read constrains nothing; a failed write is dropped.
    expect(checkHistory([op({ kind: 'read', result: 'zzz', invokeMs: 0, outcome: 'unknown' })]).ok).toBe(true)
    expect(checkHistory([op({ kind: 'write', value: 'x', invokeMs: 0, outcome: 'fail' }), r('x', 10)]).ok).toBe(false)
  })

  it('an unknown CAS takes effect only where its precondition holds', () => {
    const c = op({ kind: 'cas', expected: 'a', value: 'b', invokeMs: 0, outcome: 'unknown' })
    const w = op({ kind: 'write', value: 'a', invokeMs: 5 })
    expect(checkHistory([c, w, op({ kind: 'read', result: 'b', invokeMs: 10 })]).ok).toBe(true)
    expect(checkHistory([c, op({ kind: 'read', result: 'b', invokeMs: 10 })]).ok).toBe(false)
  })

  it('rejects malformed ops', () => {
    expect(() => checkHistory([op({ kind: 'read', invokeMs: 0 })])).toThrow(/result/)
    expect(() => checkHistory([op({ kind: 'write', invokeMs: 0 })])).toThrow(/value/)
    expect(() => checkHistory([op({ kind: 'read', result: null, invokeMs: 5, completeMs: 4 })])).toThrow(/completeMs/)
    expect(() => checkHistory([op({ kind: 'cas', value: 'x', invokeMs: 0 })])).toThrow(/expected/)
  })

  it('checks keys independently and names the failing key', () => {
    const ops = [
      op({ kind: 'write', key: 'a', value: '1', invokeMs: 0 }),
      op({ kind: 'write', key: 'b', value: '1', invokeMs: 0 }),
      op({ kind: 'read', key: 'a', result: '1', invokeMs: 5 }),
      op({ kind: 'read', key: 'b', result: null, invokeMs: 5 }),
    ]
    const r = checkHistory(ops)
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.key).toBe('b')
  })
})

describe('linearizability checker: simulated valid histories pass', () => {
  it('passes every seed (random concurrency, CAS, deletes, unknown and failed ops, several keys)', () => {
    const totals = { histories: 0, ops: 0, casOk: 0, casFail: 0, nullReads: 0, unknownApplied: 0, unknownNot: 0, deletes: 0, failed: 0 }
    for (let seed = 1; seed <= 400; seed++) {
      const cfg = randomConfig(seed)
      const ops = simulate(cfg)
      const result = checkHistory(ops, { timeLimitMs: 10_000 })
      if (!result.ok) expect.fail(`seed ${seed} (${JSON.stringify(cfg)}): ${result.reason}\n${result.detail}`)
      totals.histories++
      totals.ops += ops.length
      for (const op of ops) {
        if (op.kind === 'cas' && op.outcome === 'ok') totals.casOk++
        if (op.kind === 'cas' && op.outcome === 'fail') totals.casFail++
        if (op.kind === 'read' && op.outcome === 'ok' && op.result === null) totals.nullReads++
        if (op.kind === 'delete') totals.deletes++
        if (op.outcome === 'fail' && op.kind !== 'cas') totals.failed++
        if (op.outcome === 'unknown' && op.kind !== 'read') {
          if (op.effectMs !== undefined) totals.unknownApplied++
          else totals.unknownNot++
        }
      }
    }
    console.log('valid histories:', totals)
    for (const [k, v] of Object.entries(totals)) expect(v, k).toBeGreaterThan(50)
  })

  it('passes with up to ~10 concurrent clients on one key with repeating values', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const ops = simulate({ seed, processes: 10, opsPerProcess: 40, keys: 1, values: 'small', unknownRate: 0.03, maxDurationMs: 20, maxGapMs: 1 })
      const result = checkHistory(ops, { timeLimitMs: 10_000 })
      if (!result.ok) expect.fail(`seed ${seed}: ${result.reason}\n${result.detail}`)
    }
  })
})

describe('linearizability checker: single mutations fail', () => {
  /** Unique values, so that the mutations below are provably non-linearizable. */
  const base = (seed: number): SimOp[] =>
    simulate({ seed, processes: 6, opsPerProcess: 60, keys: 3, values: 'unique', unknownRate: 0.05, maxDurationMs: 8, maxGapMs: 4 })

  /** Mutations need no other op to re-create the value they resurrect: unique values, no null. */
  const establishes = (op: HistoryOp): Value | undefined =>
    op.outcome === 'ok' && (op.kind === 'write' || op.kind === 'cas') ? op.value! : undefined
  const producedBy = (ops: readonly HistoryOp[], v: string): HistoryOp[] => ops.filter((o) => (o.kind === 'write' || o.kind === 'cas') && o.value === v)

  /**
   * A read R changed to return v, where v was set by exactly one op X (ok), and an
   * ok op Y that sets a different value started after X completed and completed
   * before R was invoked: X < Y < R in real time, and nothing else ever sets v.
   */
  function staleCandidate(ops: SimOp[], r: SimOp, pickX: (r: SimOp) => SimOp[]): { x: SimOp; y: SimOp } | null {
    for (const x of pickX(r)) {
      const v = establishes(x)
      if (v === undefined || v === null || v === r.result || producedBy(ops, v).length !== 1) continue
      const y = ops.find(
        (o) => o.key === r.key && o.outcome === 'ok' && o.kind !== 'read' && !(o.kind === 'cas' && o.value === v) && o.invokeMs > x.completeMs! && o.completeMs! < r.invokeMs,
      )
      if (y !== undefined && (y.kind === 'delete' || y.value !== v)) return { x, y }
    }
    return null
  }

  function expectFailsOn(ops: HistoryOp[], key: string, what: string, seed: number): void {
    const t0 = performance.now()
    const result = checkHistory(ops, { timeLimitMs: 10_000 })
    const ms = performance.now() - t0
    if (result.ok) expect.fail(`${what} (seed ${seed}) was accepted`)
    else {
      expect(result.reason, result.detail).toBe('not-linearizable')
      expect(result.key).toBe(key)
      expect(ms).toBeLessThan(5000)
    }
  }

  function mutateSeeds(what: string, mutate: (ops: SimOp[], rng: Rng) => string | null): void {
    let done = 0
    for (let seed = 1; seed <= 200 && done < 15; seed++) {
      const ops = base(seed)
      const before = checkHistory(ops)
      expect(before.ok, `seed ${seed} unmutated`).toBe(true)
      const key = mutate(ops, new Rng(seed))
      if (key === null) continue
      expectFailsOn(ops, key, what, seed)
      done++
    }
    expect(done, `${what}: mutated histories`).toBe(15)
  }

  it('a stale read (a value overwritten before the read was invoked)', () => {
    mutateSeeds('stale read', (ops, rng) => {
      const reads = ops.filter((o) => o.kind === 'read' && o.outcome === 'ok')
      for (let tries = 0; tries < 50; tries++) {
        const r = rng.pick(reads)
        const found = staleCandidate(ops, r, (read) => ops.filter((o) => o.key === read.key && o.completeMs! < read.invokeMs))
        if (found !== null) {
          r.result = establishes(found.x)!
          return r.key
        }
      }
      return null
    })
  })

  it('a lost write (a later read returns the pre-write value)', () => {
    mutateSeeds('lost write', (ops) => {
      // R read what W wrote, and was invoked after W completed; make R return what W overwrote.
      for (const r of ops) {
        if (r.kind !== 'read' || r.outcome !== 'ok' || r.result === null) continue
        const w = ops.find((o) => o.key === r.key && o.kind === 'write' && o.outcome === 'ok' && o.value === r.result && o.completeMs! < r.invokeMs)
        if (w === undefined || w.before === null || w.before === undefined) continue
        const x = ops.find((o) => o.key === r.key && establishes(o) === w.before && o.completeMs! < w.invokeMs)
        if (x === undefined || producedBy(ops, w.before).length !== 1) continue
        r.result = w.before
        return r.key
      }
      return null
    })
  })

  it('two CAS winners on the same expected value', () => {
    mutateSeeds('two CAS winners', (ops) => {
      // C1 succeeded on e (set by a single op); turn a failed CAS on the same key into a second winner on e.
      for (const c1 of ops) {
        if (c1.kind !== 'cas' || c1.outcome !== 'ok' || c1.expected === null || c1.expected === undefined) continue
        if (producedBy(ops, c1.expected).length !== 1) continue
        const c2 = ops.find((o) => o.key === c1.key && o.kind === 'cas' && o.outcome === 'fail')
        if (c2 === undefined) continue
        c2.expected = c1.expected
        c2.outcome = 'ok'
        return c1.key
      }
      return null
    })
  })

  it('a read of a value never written', () => {
    mutateSeeds('read of a value never written', (ops, rng) => {
      const r = rng.pick(ops.filter((o) => o.kind === 'read' && o.outcome === 'ok'))
      r.result = 'never-written'
      return r.key
    })
  })

  it('explains the failure with the ops around it', () => {
    const ops = base(3)
    const r = ops.filter((o) => o.kind === 'read' && o.outcome === 'ok')[40]!
    r.result = 'never-written'
    const result = checkHistory(ops)
    expect(result.ok).toBe(false)
    if (!result.ok) {
      expect(result.detail).toContain(`#${r.id} `)
      expect(result.detail).toContain('returned "never-written" but the register holds')
      console.log(`example failure detail:\n${result.detail}`)
    }
  })
})

describe('linearizability checker: agrees with brute force', () => {
  it('on 3000 random tiny histories', () => {
    const rng = new Rng(2024)
    let linearizable = 0
    let not = 0
    for (let i = 0; i < 3000; i++) {
      const ops = i % 2 === 0 ? randomTinyHistory(rng) : perturbedTinyHistory(rng, i)
      const initial: Value = rng.chance(0.2) ? 'a' : null
      const expected = bruteForce(ops, initial)
      const result = checkHistory(ops, { initial: new Map([['k', initial]]) })
      if (result.ok !== expected) {
        expect.fail(`history ${i} (initial ${String(initial)}): brute force says ${expected}, checker says ${result.ok}\n${show(ops)}`)
      }
      if (!result.ok) expect(result.reason).toBe('not-linearizable')
      if (expected) linearizable++
      else not++
    }
    console.log(`brute force agreement: ${linearizable} linearizable, ${not} not`)
    expect(linearizable).toBeGreaterThan(600)
    expect(not).toBeGreaterThan(600)
  })

  it('on 10000 random histories of up to 16 ops (memoized exhaustive reference)', () => {
    const rng = new Rng(4242)
    let linearizable = 0
    let not = 0
    for (let i = 0; i < 10_000; i++) {
      let ops: HistoryOp[]
      let initial: Value = null
      if (i % 2 === 0) {
        ops = denseHistory(rng, rng.int(1, 16))
        initial = rng.chance(0.2) ? rng.pick(['a', 'b']) : null
      } else {
        // Simulated (linearizable), then half of the time one field changed.
        ops = perturbedTinyHistory(rng, 100_000 + i, 16, { processes: rng.int(2, 8), opsPerProcess: 3, unknownRate: rng.pick([0.1, 0.3, 0.6]) })
      }
      const expected = memoizedReference(ops, initial)
      const result = checkHistory(ops, { initial: { k: initial } })
      if (result.ok !== expected) {
        expect.fail(`history ${i} (initial ${String(initial)}): reference says ${expected}, checker says ${result.ok}\n${show(ops)}`)
      }
      if (expected) linearizable++
      else not++
    }
    console.log(`memoized reference agreement: ${linearizable} linearizable, ${not} not`)
    expect(linearizable).toBeGreaterThan(2000)
    expect(not).toBeGreaterThan(2000)
  })
})

describe('linearizability checker: time limit', () => {
  it('reports a timeout, not a pass, when the search runs out of time', () => {
    // 30 mutually concurrent writes, then a read of a value nobody wrote: refuting it means visiting ~2^30 subsets.
    const ops: HistoryOp[] = []
    for (let i = 0; i < 30; i++) ops.push({ id: i, process: i, key: 'hot', kind: 'write', value: `w${i}`, invokeMs: 0, completeMs: 100, outcome: 'ok' })
    ops.push({ id: 99, process: 0, key: 'hot', kind: 'read', result: 'nobody', invokeMs: 200, completeMs: 201, outcome: 'ok' })
    const t0 = performance.now()
    const result = checkHistory(ops, { timeLimitMs: 50 })
    const ms = performance.now() - t0
    expect(result.ok).toBe(false)
    if (!result.ok) {
      expect(result.reason).toBe('timeout')
      expect(result.key).toBe('hot')
      expect(result.detail).toContain('NOT a pass')
    }
    expect(ms).toBeLessThan(2000)
  })

  it('reports a timeout when the configuration budget runs out', () => {
    const ops: HistoryOp[] = []
    for (let i = 0; i < 30; i++) ops.push({ id: i, process: i, key: 'hot', kind: 'write', value: `w${i}`, invokeMs: 0, completeMs: 100, outcome: 'ok' })
    ops.push({ id: 99, process: 0, key: 'hot', kind: 'read', result: 'nobody', invokeMs: 200, completeMs: 201, outcome: 'ok' })
    const result = checkHistory(ops, { maxConfigurations: 10_000 })
    expect(result.ok).toBe(false)
    if (!result.ok) {
      expect(result.reason).toBe('timeout')
      expect(result.detail).toContain('configuration limit')
    }
  })
})

describe('linearizability checker: performance', () => {
  const run = (label: string, cfg: SimConfig): number => {
    const ops = simulate(cfg)
    const t0 = performance.now()
    const result = checkHistory(ops, { timeLimitMs: 30_000 })
    const ms = performance.now() - t0
    if (!result.ok) expect.fail(`${label}: ${result.reason}\n${result.detail}`)
    console.log(
      `${label}: ${ops.length} ops, ${result.stats.keys} keys, ${result.stats.configurations} configurations, ` +
        `${ms.toFixed(0)} ms (slowest key ${result.stats.slowestKeyMs.toFixed(1)} ms)`,
    )
    return ms
  }

  it('10 processes × 3000 ops, keys rotating every 200 ops', () => {
    const ms = run('10×3000, unique values', { seed: 7, processes: 10, opsPerProcess: 3000, rotateEvery: 200, values: 'unique', unknownRate: 0.01, maxDurationMs: 10, maxGapMs: 1 })
    expect(ms).toBeLessThan(5000)
    run('10×3000, values a/b/c', { seed: 8, processes: 10, opsPerProcess: 3000, rotateEvery: 200, values: 'small', unknownRate: 0.01, maxDurationMs: 10, maxGapMs: 1 })
    run('10×3000, 400 ops/key, 5% unknown', { seed: 9, processes: 10, opsPerProcess: 3000, rotateEvery: 400, values: 'unique', unknownRate: 0.05, maxDurationMs: 10, maxGapMs: 1 })
  })

  it('refutes a mutated 400-op key quickly (the search must exhaust it)', () => {
    const ops = simulate({ seed: 11, processes: 10, opsPerProcess: 1200, rotateEvery: 400, values: 'unique', unknownRate: 0.05, maxDurationMs: 10, maxGapMs: 1 })
    const byKey = new Map<string, SimOp[]>()
    for (const op of ops) {
      let list = byKey.get(op.key)
      if (list === undefined) byKey.set(op.key, (list = []))
      list.push(op)
    }
    const times: number[] = []
    for (const keyOps of byKey.values()) {
      const reads = keyOps.filter((o) => o.kind === 'read' && o.outcome === 'ok')
      for (const at of [0.1, 0.5, 0.9]) {
        const r = reads[Math.floor(reads.length * at)]!
        const saved = r.result
        r.result = 'never-written'
        const t0 = performance.now()
        const result = checkHistory(keyOps, { timeLimitMs: 10_000 })
        times.push(performance.now() - t0)
        expect(result.ok ? 'ok' : result.reason).toBe('not-linearizable')
        r.result = saved
      }
    }
    times.sort((x, y) => x - y)
    const median = times[times.length >> 1]!
    const max = times[times.length - 1]!
    console.log(`refuting a never-written read in a 400-op key (${times.length} cases): median ${median.toFixed(1)} ms, max ${max.toFixed(1)} ms`)
    expect(max).toBeLessThan(5000)
  })
})
