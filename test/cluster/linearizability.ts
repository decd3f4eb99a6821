/**
 * Linearizability checker for histories of a replicated key-value store.
 *
 * ## What it checks
 *
 * Each key is one register that holds a string value or null (absent).
 * Values are compared as JavaScript strings. Binary values should be
 * hex/base64-encoded by the harness before recording. Reads may report a
 * version, but the model uses values only and ignores `version`.
 *
 * Operations (`HistoryOp`):
 *   - `read`   returns `result` (a string, or null = absent). Legal when the register holds `result`.
 *   - `write`  sets `value`. Always legal.
 *   - `delete` sets null. Always legal.
 *   - `cas`    `ok`: legal when the register holds `expected` (null = must be absent); sets `value`.
 *              `fail`: a precondition failure. Legal when the register does NOT hold
 *              `expected`, and the register does not change. It is a real
 *              operation, a read of "not equal to `expected`".
 *
 * How each outcome is handled:
 *   - `ok`      the operation took effect exactly once, at some instant
 *               between `invokeMs` and `completeMs`.
 *   - `fail`    the operation did not take effect. A failed `cas` is kept, as
 *               described above. A failed `read`, `write` or `delete` is
 *               dropped. An op with `rejected: true` is dropped whatever its
 *               kind, including a CAS that was refused before its
 *               precondition was evaluated (not leader, overloaded, shutting
 *               down). Record such a CAS as `fail` plus `rejected: true`.
 *               Without `rejected`, a failed CAS claims that the value
 *               differed from `expected`.
 *   - `unknown` indeterminate (timeout, reset, OUTCOME_UNKNOWN). A mutation
 *               either took effect once at some instant after `invokeMs`, with
 *               no upper bound (its completion is +infinity), or it never took
 *               effect. It is OPTIONAL: the search may linearize it (with its
 *               effect; an unknown CAS only where its precondition holds) or
 *               leave it out. An unknown read is dropped.
 *
 * Real-time order: A precedes B iff A is not `unknown` and
 * `A.completeMs < B.invokeMs` (strictly). Equal timestamps count as
 * concurrent. This adds no false order when clocks are coarse. All times must
 * come from one clock, e.g. `performance.now()` in the single test process.
 * Every key starts at null unless `options.initial` gives its value.
 * Processes are only used in messages. The checker does not assume that a
 * process has at most one outstanding operation.
 *
 * ## How it checks
 *
 * Linearizability is compositional (Herlihy & Wing): a history is
 * linearizable iff each key's sub-history is. So the history is split by key,
 * and each key is searched on its own.
 *
 * Per key: the Wing & Gong depth-first search, with Lowe's improvements
 * ("Testing for linearizability", 2017). Knossos and Porcupine use the same
 * search.
 *   - The call and return events of the required (ok / failed-CAS) ops form a
 *     doubly linked list sorted by time. Calls come before returns at equal
 *     times. The candidates for the next linearization point are the calls
 *     before the first remaining return. Linearizing an op unlinks its call
 *     and return ("lift"). Backtracking re-links them in LIFO order ("unlift",
 *     as in dancing links) and resumes at the next candidate after the
 *     undone op.
 *   - Optional (unknown) ops have no return. They sit in a second list and
 *     are candidates once their call precedes the first remaining return.
 *     They are tried only after the required candidates. The search succeeds
 *     once every required op is linearized. Optional ops left over are the
 *     ones that never took effect.
 *   - Memoization (Lowe): each configuration (set of linearized ops, register
 *     state) is cached on first visit, and the DFS never explores it twice.
 *     The set is one compact bitset (Uint32Array), with required ops first,
 *     then optional ones. The cache is a chained hash table over pooled typed
 *     arrays, about 12 bytes plus 4 per bitset word per configuration. It is
 *     keyed by an incrementally updated Zobrist hash of the required part,
 *     mixed with the state.
 *
 * Pruning rules on top of that (ours; the soundness of each is argued by
 * moving or dropping ops in a shortest successful continuation):
 *   - Forced reads. Suppose a candidate leaves the state unchanged (a read,
 *     a failed CAS) and is legal in the current state. It is linearized at
 *     once, with no alternatives tried: any linearization from here can be
 *     reordered to start with it. When that fails, the configuration fails.
 *     On simulated histories this cut the visited configurations 5-6×.
 *   - Dominance for optional ops. Suppose two configurations have the same
 *     linearized required ops and the same state, and A's linearized
 *     optional ops are a subset of B's. Then every continuation from B also
 *     works from A, because optional ops never constrain real-time order. So
 *     B counts as seen once A was visited. The cache keeps an antichain of
 *     optional-op sets per (required set, state).
 *   - Useful optional ops only. An optional op is tried only when it makes
 *     some other candidate legal that is not legal now: a read or successful
 *     CAS of its new value, or a failed CAS of the current value. An op that
 *     is then overwritten can be dropped from a linearization.
 *   - Symmetry. Among available optional ops with the same effect, only the
 *     first one in the list is tried.
 *   - State abstraction. A value that no read returns and no CAS expects can
 *     never be told apart from another such value. All such values map to one
 *     state id ("some unobserved value"). The other values get small integer
 *     ids, so a state is an int and a step is an int comparison. This
 *     abstraction is exact (a bisimulation).
 * The brute-force tests in linearizability.test.ts check all of these: every
 * order is tried on tiny histories, and a memoized exhaustive search runs on
 * histories of up to 16 ops. Deliberately breaking any one rule makes those
 * tests fail.
 *
 * ## Limits
 *
 *   - Deciding linearizability is NP-complete. Histories with many mutually
 *     concurrent ops can blow up, worst when the history is NOT linearizable
 *     and the whole space must be exhausted. So can many unknown-outcome ops
 *     over a small value domain: each is a "reset" usable anywhere later.
 *     The search gives up at `timeLimitMs` (default 60 s, for the whole
 *     call) or `maxConfigurations` (default 5 M per key, which bounds
 *     memory). It then reports `reason: 'timeout'`, never a pass.
 *   - Typical workloads are fast. 10 clients × 3000 ops, with keys rotating
 *     every 200-400 ops, take ~0.2-0.4 s in all, a few ms per key. Refuting a
 *     corrupted 400-op key typically takes ~5 ms, 40 ms at most (see
 *     linearizability.test.ts). Write unique values (e.g. `${process}-${n}`):
 *     they make the check both faster and stronger.
 *   - The model is value-based. A stale read of a value that was later
 *     written again is indistinguishable from a fresh one. A version-aware
 *     mode would make the state (value, version) and let writes bump the
 *     version; it is not implemented.
 *   - There is one timeline per history. The harness must reconcile the
 *     clocks of processes on different machines.
 *   - On failure, `detail` shows where the longest linearization found got
 *     stuck. That is a hint, not a proof of minimality.
 */

export type Value = string | null
export type OpKind = 'read' | 'write' | 'cas' | 'delete'
export type Outcome = 'ok' | 'fail' | 'unknown'

export interface HistoryOp {
  /** Unique id, used in messages. */
  id: number | string
  /** Client id, used in messages only. */
  process: number | string
  key: string
  kind: OpKind
  /** write / cas: the new value. */
  value?: string
  /** cas: the value required to be present (null = must be absent). */
  expected?: Value
  /** ok read: the value returned (null = absent). */
  result?: Value
  /** Ignored by the value-based model (kept for messages). */
  version?: number | bigint | string
  invokeMs: number
  /** Required unless `outcome` is 'unknown' (then ignored: it may take effect at any later time). */
  completeMs?: number
  outcome: Outcome
  /** The op was refused before being admitted (e.g. not leader): it certainly had no effect and carries no information; dropped. */
  rejected?: boolean
}

export interface CheckOptions {
  /** Budget for the whole call, in ms (default 60 000). Running out is a failure with reason 'timeout'. */
  timeLimitMs?: number
  /**
   * Memory budget: the most configurations cached for one key (default 5 000 000, i.e. at most a few
   * hundred MB). Running out is also reported as reason 'timeout' (the search gave up undecided).
   */
  maxConfigurations?: number
  /** Initial value per key; keys not present start at null (absent). */
  initial?: Map<string, Value> | Record<string, Value>
}

export interface CheckStats {
  keys: number
  /** Ops kept for the search (dropped: unknown/failed reads, failed writes/deletes, rejected ops). */
  ops: number
  /** Configurations cached (visited) over all keys. */
  configurations: number
  elapsedMs: number
  slowestKey: string | null
  slowestKeyMs: number
}

export type CheckResult =
  | { ok: true; stats: CheckStats }
  | { ok: false; key: string; reason: 'not-linearizable' | 'timeout'; detail: string; stats: CheckStats }

const DEFAULT_TIME_LIMIT_MS = 60_000
const DEFAULT_MAX_CONFIGURATIONS = 5_000_000

// Model step kinds.
const READ = 0 // legal iff s === a; s unchanged
const WRITE = 1 // s := b (write, delete)
const CAS_OK = 2 // legal iff s === a; s := b
const CAS_FAIL = 3 // legal iff s !== a; s unchanged

/** One key's ops, prepared for the search. */
interface Prepared {
  key: string
  ops: HistoryOp[] // kept ops, index = op number
  required: Uint8Array
  kind: Uint8Array
  a: Int32Array
  b: Int32Array
  callRank: Int32Array
  retRank: Int32Array // -1 for optional ops
  bitIndex: Int32Array // index within the required or the optional bitset
  nRequired: number
  nOptional: number
  initialState: number
  initialValue: Value
}

export function checkHistory(history: readonly HistoryOp[], options: CheckOptions = {}): CheckResult {
  const start = performance.now()
  const deadline = start + (options.timeLimitMs ?? DEFAULT_TIME_LIMIT_MS)
  const initial = options.initial instanceof Map ? options.initial : new Map(Object.entries(options.initial ?? {}))

  const byKey = new Map<string, HistoryOp[]>()
  for (const op of history) {
    validate(op)
    let list = byKey.get(op.key)
    if (list === undefined) byKey.set(op.key, (list = []))
    list.push(op)
  }

  const stats: CheckStats = { keys: byKey.size, ops: 0, configurations: 0, elapsedMs: 0, slowestKey: null, slowestKeyMs: 0 }
  for (const [key, ops] of byKey) {
    const keyStart = performance.now()
    const p = prepare(key, ops, initial.get(key) ?? null)
    stats.ops += p.ops.length
    const outcome = search(p, deadline, options.maxConfigurations ?? DEFAULT_MAX_CONFIGURATIONS)
    stats.configurations += outcome.configurations
    const keyMs = performance.now() - keyStart
    if (keyMs > stats.slowestKeyMs) {
      stats.slowestKeyMs = keyMs
      stats.slowestKey = key
    }
    if (outcome.result !== 'ok') {
      stats.elapsedMs = performance.now() - start
      return { ok: false, key, reason: outcome.result, detail: explain(p, outcome, stats), stats }
    }
  }
  stats.elapsedMs = performance.now() - start
  return { ok: true, stats }
}

function validate(op: HistoryOp): void {
  const where = `op ${String(op.id)} (key ${JSON.stringify(op.key)})`
  if (typeof op.key !== 'string') throw new TypeError(`${where}: key must be a string`)
  if (!Number.isFinite(op.invokeMs)) throw new TypeError(`${where}: invokeMs must be a finite number`)
  if (op.outcome !== 'ok' && op.outcome !== 'fail' && op.outcome !== 'unknown') throw new TypeError(`${where}: bad outcome ${String(op.outcome)}`)
  if (op.outcome !== 'unknown') {
    if (op.completeMs === undefined || !Number.isFinite(op.completeMs)) throw new TypeError(`${where}: completeMs is required unless outcome is 'unknown'`)
    if (op.completeMs < op.invokeMs) throw new TypeError(`${where}: completeMs ${op.completeMs} < invokeMs ${op.invokeMs}`)
  }
  switch (op.kind) {
    case 'read':
      if (op.outcome === 'ok' && op.rejected !== true && (op.result === undefined || (op.result !== null && typeof op.result !== 'string'))) {
        throw new TypeError(`${where}: an ok read needs result (a string, or null for absent)`)
      }
      break
    case 'write':
      if (typeof op.value !== 'string') throw new TypeError(`${where}: write needs a string value`)
      break
    case 'cas':
      if (typeof op.value !== 'string') throw new TypeError(`${where}: cas needs a string value`)
      if (op.expected === undefined || (op.expected !== null && typeof op.expected !== 'string')) {
        throw new TypeError(`${where}: cas needs expected (a string, or null for absent)`)
      }
      break
    case 'delete':
      break
    default:
      throw new TypeError(`${where}: bad kind ${String(op.kind)}`)
  }
}

/** Whether the op takes part in the search, and as required (true) or optional (false). */
function role(op: HistoryOp): 'required' | 'optional' | 'dropped' {
  if (op.rejected === true) return 'dropped'
  if (op.outcome === 'ok') return 'required'
  if (op.outcome === 'fail') return op.kind === 'cas' ? 'required' : 'dropped'
  return op.kind === 'read' ? 'dropped' : 'optional'
}

function prepare(key: string, all: HistoryOp[], initialValue: Value): Prepared {
  const ops = all.filter((op) => role(op) !== 'dropped')
  const n = ops.length

  // Values some op can tell apart get their own state id (1, 2, ...); every other value is state 0.
  const ids = new Map<Value, number>()
  const observe = (v: Value): void => {
    if (!ids.has(v)) ids.set(v, ids.size + 1)
  }
  for (const op of ops) {
    if (op.kind === 'read') observe(op.result ?? null)
    else if (op.kind === 'cas') observe(op.expected ?? null)
  }
  const stateOf = (v: Value): number => ids.get(v) ?? 0

  const p: Prepared = {
    key,
    ops,
    required: new Uint8Array(n),
    kind: new Uint8Array(n),
    a: new Int32Array(n),
    b: new Int32Array(n),
    callRank: new Int32Array(n),
    retRank: new Int32Array(n).fill(-1),
    bitIndex: new Int32Array(n),
    nRequired: 0,
    nOptional: 0,
    initialState: stateOf(initialValue),
    initialValue,
  }
  const events: { time: number; ret: boolean; op: number }[] = []
  for (let i = 0; i < n; i++) {
    const op = ops[i]!
    const req = role(op) === 'required'
    p.required[i] = req ? 1 : 0
    p.bitIndex[i] = req ? p.nRequired++ : p.nOptional++
    switch (op.kind) {
      case 'read':
        p.kind[i] = READ
        p.a[i] = stateOf(op.result ?? null)
        break
      case 'write':
        p.kind[i] = WRITE
        p.b[i] = stateOf(op.value!)
        break
      case 'delete':
        p.kind[i] = WRITE
        p.b[i] = stateOf(null)
        break
      case 'cas':
        p.kind[i] = op.outcome === 'fail' ? CAS_FAIL : CAS_OK
        p.a[i] = stateOf(op.expected ?? null)
        p.b[i] = stateOf(op.value!)
        break
    }
    events.push({ time: op.invokeMs, ret: false, op: i })
    if (req) events.push({ time: op.completeMs!, ret: true, op: i })
  }
  // Time order; at equal times calls first (equal stamps are concurrent), then by op order.
  events.sort((x, y) => x.time - y.time || Number(x.ret) - Number(y.ret) || x.op - y.op)
  events.forEach((e, rank) => {
    if (e.ret) p.retRank[e.op] = rank
    else p.callRank[e.op] = rank
  })
  return p
}

interface SearchOutcome {
  result: 'ok' | 'not-linearizable' | 'timeout'
  configurations: number
  /** Ops (indices into Prepared.ops) of the linearization that got furthest, in order. */
  best: number[]
  /** Gave up because the cache reached maxConfigurations (else, if undecided, the time limit). */
  full: boolean
}

function search(p: Prepared, deadline: number, maxConfigurations: number): SearchOutcome {
  const n = p.ops.length
  if (p.nRequired === 0) return { result: 'ok', configurations: 0, best: [], full: false }
  const { required, kind, a, b, callRank, retRank, bitIndex } = p

  // Main list: nodes 1..2*nRequired (call and return of required ops, time order); node 0 is the head.
  const mainSize = 2 * p.nRequired + 1
  const next = new Int32Array(mainSize + 1)
  const prev = new Int32Array(mainSize + 1)
  const nodeOp = new Int32Array(mainSize + 1)
  const nodeIsRet = new Uint8Array(mainSize + 1)
  const callNode = new Int32Array(n)
  const retNode = new Int32Array(n)
  // Optional list: nodes 1..nOptional (calls, time order); node 0 is the head, -1 ends it.
  const optSize = p.nOptional + 1
  const onext = new Int32Array(optSize)
  const oprev = new Int32Array(optSize)
  const onodeOp = new Int32Array(optSize)
  const optNode = new Int32Array(n)

  const byCall = Array.from({ length: n }, (_, i) => i).sort((x, y) => callRank[x]! - callRank[y]!)
  const mainEvents: { rank: number; op: number; ret: boolean }[] = []
  let lastOpt = 0
  for (const i of byCall) {
    if (required[i]) {
      mainEvents.push({ rank: callRank[i]!, op: i, ret: false }, { rank: retRank[i]!, op: i, ret: true })
    } else {
      const node = bitIndex[i]! + 1
      onodeOp[node] = i
      optNode[i] = node
      onext[lastOpt] = node
      oprev[node] = lastOpt
      lastOpt = node
    }
  }
  onext[lastOpt] = -1
  mainEvents.sort((x, y) => x.rank - y.rank)
  let lastMain = 0
  mainEvents.forEach((e, k) => {
    const node = k + 1
    nodeOp[node] = e.op
    nodeIsRet[node] = e.ret ? 1 : 0
    if (e.ret) retNode[e.op] = node
    else callNode[e.op] = node
    next[lastMain] = node
    prev[node] = lastMain
    lastMain = node
  })
  next[lastMain] = -1

  // The linearized set: one bitset, required ops in the first `reqWords` words, optional ops after them;
  // and the Zobrist hash of its required part.
  const reqWords = (p.nRequired + 31) >>> 5
  const optWords = (p.nOptional + 31) >>> 5
  const bits = new Uint32Array(reqWords + optWords)
  const zobrist = new Int32Array(p.nRequired)
  let seed = 0x2545f491
  for (let i = 0; i < p.nRequired; i++) {
    // xorshift32
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    zobrist[i] = seed
  }
  let reqHash = 0
  const cache = new ConfigCache(reqWords, optWords, maxConfigurations)

  const toggle = (op: number): void => {
    const bit = bitIndex[op]!
    if (required[op]) {
      bits[bit >>> 5]! ^= 1 << (bit & 31)
      reqHash ^= zobrist[bit]!
    } else {
      bits[reqWords + (bit >>> 5)]! ^= 1 << (bit & 31)
    }
  }

  const step = (state: number, op: number): number => {
    switch (kind[op]) {
      case READ:
        return state === a[op] ? state : -1
      case WRITE:
        return b[op]!
      case CAS_OK:
        return state === a[op] ? b[op]! : -1
      default: // CAS_FAIL
        return state !== a[op] ? state : -1
    }
  }

  // Optional ops with the same effect are interchangeable: at a configuration only the first available one is tried.
  const effect = new Int32Array(n)
  const effectCount: number[] = []
  {
    const ids = new Map<string, number>()
    for (let i = 0; i < n; i++) {
      if (required[i]) continue
      const k = `${kind[i]}:${a[i]}:${b[i]}`
      let id = ids.get(k)
      if (id === undefined) {
        ids.set(k, (id = ids.size))
        effectCount.push(0)
      }
      effect[i] = id
      effectCount[id]!++
    }
  }

  const stackOp = new Int32Array(n)
  const stackState = new Int32Array(n)
  const stackForced = new Uint8Array(n)
  let depth = 0
  let state = p.initialState
  let remaining = p.nRequired
  let best: number[] = []
  let bestRemaining = remaining + 1
  cache.visit(bits, reqHash, state)
  const gaveUp = (): SearchOutcome => ({ result: 'timeout', configurations: cache.size, best, full: cache.full })

  // Where the scan of the current configuration's candidates stands:
  //   phase 0: look for a forced candidate (see below);
  //   phase 1: walk the main list from `cur` (required candidates, up to the first remaining return);
  //   phase 2: walk the optional list from `ocur`, taking ops whose call precedes that return (`limitRank`).
  let phase = 0
  let cur = 0
  let ocur = -1
  let limitRank = 0
  let iterations = 0

  /** Linearizes `op` (already toggled and visited) from the current state; true when every required op is done. */
  const linearize = (op: number, newState: number, forced: boolean): boolean => {
    stackOp[depth] = op
    stackState[depth] = state
    stackForced[depth] = forced ? 1 : 0
    depth++
    state = newState
    phase = 0
    if (required[op]) {
      // Lift: unlink call and return.
      const c = callNode[op]!
      const r = retNode[op]!
      next[prev[c]!] = next[c]!
      prev[next[c]!] = prev[c]!
      next[prev[r]!] = next[r]!
      if (next[r]! !== -1) prev[next[r]!] = prev[r]!
      remaining--
      if (remaining < bestRemaining) {
        bestRemaining = remaining
        best = Array.from(stackOp.subarray(0, depth))
      }
      return remaining === 0
    }
    const o = optNode[op]!
    onext[oprev[o]!] = onext[o]!
    if (onext[o]! !== -1) oprev[onext[o]!] = oprev[o]!
    return false
  }

  /**
   * The current configuration has no candidate left: undo linearized ops (re-linking them in LIFO order)
   * up to the last one that was a choice, and resume the scan after it. False when there is none.
   */
  const backtrack = (): boolean => {
    for (;;) {
      if (depth === 0) return false
      depth--
      const undo = stackOp[depth]!
      state = stackState[depth]!
      toggle(undo)
      if (required[undo]) {
        remaining++
        const c = callNode[undo]!
        const r = retNode[undo]!
        next[prev[r]!] = r
        if (next[r]! !== -1) prev[next[r]!] = r
        next[prev[c]!] = c
        prev[next[c]!] = c
        phase = 1
        cur = next[c]!
      } else {
        const o = optNode[undo]!
        onext[oprev[o]!] = o
        if (onext[o]! !== -1) oprev[onext[o]!] = o
        phase = 2
        ocur = onext[o]!
        // The first remaining return is where it was when `undo` was taken.
        let m = next[0]!
        while (!nodeIsRet[m]) m = next[m]!
        limitRank = retRank[nodeOp[m]!]!
      }
      // A forced op was the only move worth making: its configuration has failed as a whole.
      if (!stackForced[depth]) return true
    }
  }

  /** Whether `z`, illegal in the current state, becomes legal in state `c`. */
  const enabledBy = (z: number, c: number): boolean => {
    const k = kind[z]
    if (k === READ || k === CAS_OK) return a[z] === c
    if (k === CAS_FAIL) return a[z] === state
    return false
  }

  /**
   * Whether the optional op `op`, setting the state to `c`, is worth linearizing now: it must make some
   * other candidate legal that is not. (Otherwise, in a shortest linearization from here starting with
   * `op`, the op after it either overwrites `c` (drop `op`), or is legal in the current state anyway: then
   * it is a read or failed CAS (swap the two) or `c` equals the current state (drop `op`).)
   */
  const enables = (op: number, c: number): boolean => {
    if (c === state) return false
    for (let m = next[0]!; !nodeIsRet[m]; m = next[m]!) if (enabledBy(nodeOp[m]!, c)) return true
    for (let m = onext[0]!; m !== -1 && callRank[onodeOp[m]!]! < limitRank; m = onext[m]!) {
      const z = onodeOp[m]!
      if (z !== op && enabledBy(z, c)) return true
    }
    return false
  }

  for (;;) {
    if ((++iterations & 0xfff) === 0 && performance.now() > deadline) {
      return gaveUp()
    }

    if (phase === 0) {
      // A candidate that leaves the state unchanged (a read, a failed CAS) and is legal now can be
      // linearized at once, without trying alternatives: any linearization from here can be reordered
      // to start with it (it has no unlinearized predecessor, and moving it first changes no state).
      // If its configuration fails, so does this one.
      let m = next[0]!
      let forced = -1
      while (!nodeIsRet[m]) {
        const o = nodeOp[m]!
        const k = kind[o]
        if ((k === READ && state === a[o]) || (k === CAS_FAIL && state !== a[o])) {
          forced = o
          break
        }
        m = next[m]!
      }
      if (forced === -1) {
        phase = 1
        cur = next[0]!
        continue
      }
      toggle(forced)
      const seen = cache.visit(bits, reqHash, state)
      if (seen === NEW) {
        if (linearize(forced, state, true)) return { result: 'ok', configurations: cache.size, best, full: false }
      } else if (seen === FULL) {
        return gaveUp()
      } else {
        toggle(forced)
        if (!backtrack()) return { result: 'not-linearizable', configurations: cache.size, best, full: false }
      }
      continue
    }

    let op: number
    if (phase === 1) {
      if (nodeIsRet[cur]) {
        // First remaining return reached: required candidates exhausted, now optional ones.
        phase = 2
        limitRank = retRank[nodeOp[cur]!]!
        ocur = onext[0]!
        continue
      }
      op = nodeOp[cur]!
      cur = next[cur]!
    } else {
      if (ocur === -1 || callRank[onodeOp[ocur]!]! > limitRank) {
        if (!backtrack()) return { result: 'not-linearizable', configurations: cache.size, best, full: false }
        continue
      }
      op = onodeOp[ocur]!
      const here = ocur
      ocur = onext[ocur]!
      if (effectCount[effect[op]!]! > 1) {
        // Skip it when an earlier available optional op has the same effect.
        let m = onext[0]!
        while (m !== here && effect[onodeOp[m]!] !== effect[op]) m = onext[m]!
        if (m !== here) continue
      }
    }

    const newState = step(state, op)
    if (phase === 2 && (newState < 0 || !enables(op, newState))) continue
    if (newState >= 0) {
      toggle(op)
      const seen = cache.visit(bits, reqHash, newState)
      if (seen === NEW) {
        if (linearize(op, newState, false)) return { result: 'ok', configurations: cache.size, best, full: false }
        continue
      }
      if (seen === FULL) return gaveUp()
      toggle(op)
    }
  }
}

const SEEN = 0
const NEW = 1
const FULL = 2

/**
 * The set of visited configurations (linearized-op bitset, state), as a chained hash table over
 * typed arrays (about 12 bytes plus 4 per bitset word per configuration). A configuration counts as
 * seen when an entry has the same state, the same required ops and a subset of its optional ops.
 */
class ConfigCache {
  size = 0
  full = false
  private capacity = 64
  private pool: Uint32Array
  private state = new Int32Array(this.capacity)
  private hash = new Int32Array(this.capacity)
  private chain = new Int32Array(this.capacity)
  private table = new Int32Array(128).fill(-1)
  private readonly words: number

  constructor(
    private readonly reqWords: number,
    private readonly optWords: number,
    private readonly maxEntries: number,
  ) {
    this.words = reqWords + optWords
    this.pool = new Uint32Array(this.capacity * this.words)
  }

  /** SEEN (visited, or dominated by a visited one), NEW (now recorded) or FULL (no room left). */
  visit(bits: Uint32Array, reqHash: number, state: number): number {
    const h = (reqHash ^ Math.imul(state + 1, 0x9e3779b1)) | 0
    const slot = h & (this.table.length - 1)
    const { pool, words, reqWords } = this
    let prev = -1
    for (let e = this.table[slot]!; e !== -1; ) {
      const after = this.chain[e]!
      if (this.state[e] === state && this.hash[e] === h && this.sameRequired(e, bits)) {
        if (this.optWords === 0) return SEEN
        const base = e * words + reqWords
        let subset = true // e's optional ops ⊆ ours: ours is dominated
        let superset = true // ours ⊆ e's: e is dominated, drop it (keeps an antichain)
        for (let i = 0; i < this.optWords; i++) {
          const mine = bits[reqWords + i]!
          const theirs = pool[base + i]!
          if ((theirs & ~mine) !== 0) subset = false
          if ((mine & ~theirs) !== 0) superset = false
        }
        if (subset) return SEEN
        if (superset) {
          if (prev === -1) this.table[slot] = after
          else this.chain[prev] = after
          e = after
          continue
        }
      }
      prev = e
      e = after
    }
    if (this.size >= this.maxEntries) {
      this.full = true
      return FULL
    }
    if (this.size === this.capacity) this.grow()
    const e = this.size++
    this.pool.set(bits, e * words)
    this.state[e] = state
    this.hash[e] = h
    this.chain[e] = this.table[slot]!
    this.table[slot] = e
    if (this.size > this.table.length * 0.75) this.rehash()
    return NEW
  }

  private sameRequired(e: number, bits: Uint32Array): boolean {
    const base = e * this.words
    for (let i = 0; i < this.reqWords; i++) if (this.pool[base + i] !== bits[i]) return false
    return true
  }

  private grow(): void {
    this.capacity *= 2
    const pool = new Uint32Array(this.capacity * this.words)
    pool.set(this.pool)
    this.pool = pool
    for (const name of ['state', 'hash', 'chain'] as const) {
      const bigger = new Int32Array(this.capacity)
      bigger.set(this[name])
      this[name] = bigger
    }
  }

  /** Doubles the table; entries dropped from their chains stay out. */
  private rehash(): void {
    const old = this.table
    this.table = new Int32Array(old.length * 2).fill(-1)
    const mask = this.table.length - 1
    for (let s = 0; s < old.length; s++) {
      for (let e = old[s]!; e !== -1; ) {
        const after = this.chain[e]!
        const slot = this.hash[e]! & mask
        this.chain[e] = this.table[slot]!
        this.table[slot] = e
        e = after
      }
    }
  }
}

// ---- explanations ------------------------------------------------------------

export function formatValue(v: Value | undefined): string {
  return v === null || v === undefined ? 'null' : JSON.stringify(v)
}

function formatMs(t: number | undefined): string {
  if (t === undefined || !Number.isFinite(t)) return '∞'
  return Number.isInteger(t) ? String(t) : t.toFixed(3)
}

/** One line per op, e.g. `#17 p3 cas(expected "a", "b") → ok [12.5, 14.0]`. */
export function describeOp(op: HistoryOp): string {
  let what: string
  switch (op.kind) {
    case 'read':
      what = op.outcome === 'ok' ? `read → ${formatValue(op.result)}` : 'read'
      break
    case 'write':
      what = `write(${formatValue(op.value)})`
      break
    case 'delete':
      what = 'delete'
      break
    case 'cas':
      what = `cas(expected ${formatValue(op.expected)}, new ${formatValue(op.value)})`
      break
  }
  const end = op.outcome === 'unknown' ? '∞' : formatMs(op.completeMs)
  const version = op.version !== undefined ? ` v${String(op.version)}` : ''
  return `#${String(op.id)} p${String(op.process)} ${what}${version} ${op.outcome}${op.rejected === true ? ' (rejected)' : ''} [${formatMs(op.invokeMs)}, ${end}]`
}

function apply(value: Value, op: HistoryOp): Value {
  if (op.kind === 'write') return op.value!
  if (op.kind === 'delete') return null
  if (op.kind === 'cas' && op.outcome !== 'fail') return op.value!
  return value
}

function explain(p: Prepared, outcome: SearchOutcome, stats: CheckStats): string {
  const { ops } = p
  const lines: string[] = []
  const nReq = p.nRequired
  if (outcome.result === 'timeout') {
    const limit = outcome.full ? 'configuration limit (maxConfigurations)' : 'time limit'
    lines.push(`key ${JSON.stringify(p.key)}: gave up at the ${limit} after ${outcome.configurations} configurations (${stats.elapsedMs.toFixed(0)} ms in all); undecided, NOT a pass.`)
  } else {
    lines.push(`key ${JSON.stringify(p.key)}: not linearizable.`)
  }
  const linearized = new Set(outcome.best)
  const reqDone = outcome.best.filter((i) => p.required[i]).length
  lines.push(
    `${ops.length} ops searched (${nReq} required, ${p.nOptional} unknown-outcome); the longest linearization found covers ${reqDone} of the ${nReq} required ops.`,
  )
  let value = p.initialValue
  for (const i of outcome.best) value = apply(value, ops[i]!)

  const tail = outcome.best.slice(-6)
  if (tail.length > 0) {
    lines.push(`Last ops of that linearization${outcome.best.length > tail.length ? ` (of ${outcome.best.length})` : ''}:`)
    for (const i of tail) lines.push(`  ${describeOp(ops[i]!)}`)
  } else {
    lines.push(`No op could be linearized first (initial value ${formatValue(p.initialValue)}).`)
  }
  lines.push(`After it the register holds ${formatValue(value)}.`)

  // The stuck frontier: the unlinearized required op that returns first, and every op invoked before that return.
  let first = -1
  for (let i = 0; i < ops.length; i++) {
    if (p.required[i] && !linearized.has(i) && (first === -1 || p.retRank[i]! < p.retRank[first]!)) first = i
  }
  if (first !== -1) {
    const limit = p.retRank[first]!
    const candidates: number[] = []
    for (let i = 0; i < ops.length; i++) if (!linearized.has(i) && p.callRank[i]! < limit) candidates.push(i)
    candidates.sort((x, y) => p.callRank[x]! - p.callRank[y]!)
    lines.push(`None of these could come next (${describeOp(ops[first]!)} must be linearized before it completes):`)
    const shown = candidates.slice(0, 16)
    for (const i of shown) lines.push(`  ${describeOp(ops[i]!)}  -- ${why(ops[i]!, value)}`)
    if (candidates.length > shown.length) lines.push(`  ... and ${candidates.length - shown.length} more`)
  }
  return lines.join('\n')
}

function why(op: HistoryOp, value: Value): string {
  const continuation = 'applicable here, but no continuation from it linearizes the rest'
  switch (op.kind) {
    case 'read':
      return op.result === value ? continuation : `returned ${formatValue(op.result)} but the register holds ${formatValue(value)}`
    case 'cas':
      if (op.outcome === 'fail') {
        return op.expected !== value ? continuation : `failed, yet the register holds the expected ${formatValue(value)}`
      }
      if (op.expected !== value) {
        return op.outcome === 'unknown'
          ? `(unknown outcome) could only take effect where the register holds ${formatValue(op.expected)}; it holds ${formatValue(value)}`
          : `succeeded, yet the register holds ${formatValue(value)}, not the expected ${formatValue(op.expected)}`
      }
      return continuation
    default:
      return continuation
  }
}
