/**
 * Leases: grant, revoke, one keepalive, and `Lease`, a granted lease kept
 * alive by a loop of keepalives with a LOCAL DEADLINE.
 *
 * The deadline (docs/replication.md, "The lease deadline") is
 * `send time of the last acknowledged keepalive + granted TTL`, on the
 * monotonic clock (performance.now()). etcd renews a lease from the moment it
 * handles the keepalive, which is after we sent it, so etcd cannot expire the
 * lease before our deadline: a leader that stops acting as leader at its
 * deadline never overlaps a successor (the lease's keys, the campaign key
 * among them, outlive the deadline). A holder must check `alive()` before
 * each action that needs the lease: the 'lost' callback is a timer and fires
 * late in a busy or paused process.
 *
 * Keepalives are unary calls (POST /v3/lease/keepalive with one request, body
 * ended): over HTTP/1.1 the gateway's keepalive stream answers nothing until
 * the request body ends (gateway.ts), so a long-lived stream cannot be used
 * to learn when each keepalive was acknowledged. One goes out every TTL/3;
 * each has its own deadline (default TTL: an answer later than that extends
 * nothing) and they may overlap, so a keepalive stuck on a dead connection
 * does not hold back the next one on a fresh connection. The loop never
 * gives up before the deadline: failed keepalives are just missed renewals.
 *
 * Lost (terminal; once): an answer with TTL <= 0 (etcd no longer knows the
 * lease: 'expired'), or the deadline passing without a renewal ('deadline').
 * On 'deadline' the lease is revoked once, best effort (`revokeOnLost`), so
 * that if the link comes back before etcd's own expiry, successors need not
 * wait for it.
 */
import { EtcdError } from './errors.js'
import { asObject, int64, readInt64, readSeconds } from './encoding.js'
import type { CallOptions, Gateway } from './gateway.js'
import { readHeader, type ResponseHeader } from './kv.js'

export interface LeaseGrant {
  header: ResponseHeader
  id: bigint
  /** The TTL etcd granted in seconds: it raises a small one to its minimum (1.5 × election timeout). */
  ttl: number
}

export interface KeepAliveResult {
  header: ResponseHeader
  id: bigint
  /** The lease's TTL in seconds after the renewal; 0 when etcd does not know the lease (expired, revoked). */
  ttl: number
}

export interface TimeToLiveResult {
  header: ResponseHeader
  id: bigint
  /** Seconds left; -1 when etcd does not know the lease. */
  ttl: number
  grantedTtl: number
  keys: Buffer[]
}

export async function grantLease(gw: Gateway, ttlSeconds: number, id: bigint | undefined, options?: CallOptions): Promise<LeaseGrant> {
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1) throw new EtcdError('invalid-argument', `lease TTL must be a whole number of seconds >= 1, got ${ttlSeconds}`)
  const body: Record<string, unknown> = { TTL: int64(ttlSeconds) }
  if (id !== undefined) body.ID = int64(id)
  const r = await gw.call('/v3/lease/grant', body, options)
  if (typeof r.error === 'string' && r.error !== '') throw new EtcdError('failed-precondition', `etcd lease grant: ${r.error}`)
  return { header: readHeader(r.header), id: readInt64(r.ID), ttl: readSeconds(r.TTL) }
}

export async function revokeLease(gw: Gateway, id: bigint, options?: CallOptions): Promise<ResponseHeader> {
  const r = await gw.call('/v3/lease/revoke', { ID: int64(id) }, options)
  return readHeader(r.header)
}

/** One keepalive (the stream endpoint used for one request; its one answer is `{ result }`). */
export async function keepAliveOnce(gw: Gateway, id: bigint, options?: CallOptions): Promise<KeepAliveResult> {
  const r = await gw.call('/v3/lease/keepalive', { ID: int64(id) }, options)
  if (r.error !== undefined) {
    const e = asObject(r.error, 'keepalive error')
    throw new EtcdError('unavailable', `etcd lease keepalive: ${String(e.message ?? '')}`, { grpcCode: Number(e.grpc_code ?? 2) })
  }
  const res = asObject(r.result, 'keepalive answer')
  return { header: readHeader(res.header), id: readInt64(res.ID), ttl: readSeconds(res.TTL) }
}

export async function leaseTimeToLive(gw: Gateway, id: bigint, keys: boolean, options?: CallOptions): Promise<TimeToLiveResult> {
  const r = await gw.call('/v3/lease/timetolive', { ID: int64(id), keys }, options)
  return {
    header: readHeader(r.header),
    id: readInt64(r.ID),
    ttl: readSeconds(r.TTL),
    grantedTtl: readSeconds(r.grantedTTL),
    keys: (Array.isArray(r.keys) ? r.keys : []).map((k) => Buffer.from(String(k), 'base64')),
  }
}

export type LeaseState = 'alive' | 'lost' | 'stopped' | 'revoked'

export interface LeaseLost {
  /** 'deadline': no renewal acknowledged in time; 'expired': etcd answered that it has no such lease. */
  reason: 'deadline' | 'expired'
  /** performance.now() when the loss was noticed. */
  atMs: number
  /** The local deadline at that moment. */
  deadlineMs: number
}

export interface LeaseOptions {
  /** Time between keepalives in ms (default TTL/3). */
  intervalMs?: number
  /** Each keepalive's deadline in ms (default the TTL). */
  keepaliveTimeoutMs?: number
  /** Revoke the lease (once, best effort) when the deadline passes (default true). */
  revokeOnLost?: boolean
}

export class Lease {
  /** The TTL etcd granted, in seconds. */
  readonly ttl: number
  private deadline: number
  private currentState: LeaseState = 'alive'
  private lostInfo: LeaseLost | null = null
  private readonly listeners = new Set<(lost: LeaseLost) => void>()
  private readonly endListeners = new Set<(state: LeaseState) => void>()
  private tickTimer: NodeJS.Timeout | null = null
  private deadlineTimer: NodeJS.Timeout | null = null
  private readonly intervalMs: number
  private readonly keepaliveTimeoutMs: number
  private readonly revokeOnLost: boolean
  private renewals = 0
  private failures = 0
  private lastErrorValue: EtcdError | null = null
  private resolveLost!: (lost: LeaseLost) => void
  /** Resolves when the lease is lost (never when stopped or revoked by its holder). */
  readonly lost: Promise<LeaseLost>

  /**
   * A lease just granted: `grantSentAt` is performance.now() when the grant request went out (the
   * first deadline is that + TTL). Starts the keepalive loop. Use `EtcdClient.lease()`.
   */
  constructor(
    private readonly gw: Gateway,
    readonly id: bigint,
    ttlSeconds: number,
    grantSentAt: number,
    options: LeaseOptions = {},
    private readonly onEnd: (lease: Lease) => void = () => undefined,
  ) {
    if (!(ttlSeconds > 0)) throw new EtcdError('invalid-argument', `lease TTL must be > 0, got ${ttlSeconds}`)
    this.ttl = ttlSeconds
    this.deadline = grantSentAt + ttlSeconds * 1000
    this.intervalMs = options.intervalMs ?? (ttlSeconds * 1000) / 3
    this.keepaliveTimeoutMs = options.keepaliveTimeoutMs ?? ttlSeconds * 1000
    this.revokeOnLost = options.revokeOnLost ?? true
    this.lost = new Promise((resolve) => (this.resolveLost = resolve))
    this.armDeadline()
    this.scheduleTick()
  }

  /** performance.now() until which etcd cannot have expired the lease. */
  get deadlineMs(): number {
    return this.deadline
  }

  get state(): LeaseState {
    return this.currentState
  }

  /** Why and when it was lost, or null. */
  get lostReason(): LeaseLost | null {
    return this.lostInfo
  }

  /** Keepalives acknowledged so far. */
  get renewalCount(): number {
    return this.renewals
  }

  /** Keepalives that failed (no answer, refused, …) so far; `lastError` is the latest. */
  get failureCount(): number {
    return this.failures
  }

  get lastError(): EtcdError | null {
    return this.lastErrorValue
  }

  /** Whether the holder may still act on the lease: kept alive by this loop and before its deadline. */
  alive(now = performance.now()): boolean {
    return this.currentState === 'alive' && now < this.deadline
  }

  /** Milliseconds left before the deadline (negative once past). */
  remainingMs(now = performance.now()): number {
    return this.deadline - now
  }

  /** Throws `lease-lost` unless `alive()`. */
  assertAlive(what = 'lease'): void {
    if (this.alive()) return
    const why = this.lostInfo?.reason ?? (this.currentState === 'alive' ? 'deadline' : this.currentState)
    throw new EtcdError('lease-lost', `${what}: lease ${this.id.toString(16)} is not alive (${why})`)
  }

  /** Calls `fn` once when the lease is lost (at once if it already is); returns an unsubscribe. */
  onLost(fn: (lost: LeaseLost) => void): () => void {
    if (this.lostInfo !== null) {
      fn(this.lostInfo)
      return () => undefined
    }
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  /**
   * Calls `fn` once when the lease ends for any reason: lost, stopped or revoked by its holder (at
   * once if it already has); returns an unsubscribe. What waits on the lease (a campaign) uses this.
   */
  onEnded(fn: (state: LeaseState) => void): () => void {
    if (this.currentState !== 'alive') {
      fn(this.currentState)
      return () => undefined
    }
    this.endListeners.add(fn)
    return () => this.endListeners.delete(fn)
  }

  /** Stops the keepalives and leaves the lease to expire at etcd. Idempotent; emits no 'lost'. */
  stop(): void {
    if (this.currentState !== 'alive') return
    this.currentState = 'stopped'
    this.end()
  }

  /** Stops the keepalives and revokes the lease: its keys are deleted at once. */
  async revoke(options?: CallOptions): Promise<void> {
    if (this.currentState === 'alive') {
      this.currentState = 'revoked'
      this.end()
    }
    try {
      await revokeLease(this.gw, this.id, options)
    } catch (err) {
      if (!(err instanceof EtcdError && err.code === 'not-found')) throw err // already gone is fine
    }
  }

  /** Sends one keepalive now (outside the schedule) and applies its answer. */
  async keepAliveNow(): Promise<boolean> {
    if (this.currentState !== 'alive') return false
    return this.keepAlive()
  }

  private scheduleTick(): void {
    this.tickTimer = setTimeout(() => {
      this.tickTimer = null
      if (this.currentState !== 'alive') return
      this.scheduleTick()
      void this.keepAlive()
    }, this.intervalMs)
  }

  private async keepAlive(): Promise<boolean> {
    const sentAt = performance.now()
    let result: KeepAliveResult
    try {
      result = await keepAliveOnce(this.gw, this.id, { timeoutMs: this.keepaliveTimeoutMs })
    } catch (err) {
      this.failures++
      this.lastErrorValue = err instanceof EtcdError ? err : new EtcdError('unknown', String(err), { cause: err })
      return false
    }
    if (this.currentState !== 'alive') return false
    if (result.ttl <= 0) {
      this.lose('expired')
      return false
    }
    this.renewals++
    const d = sentAt + Math.min(result.ttl, this.ttl) * 1000
    if (d > this.deadline) {
      this.deadline = d
      this.armDeadline()
    }
    return true
  }

  private armDeadline(): void {
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer)
    const wait = Math.max(0, this.deadline - performance.now())
    this.deadlineTimer = setTimeout(() => {
      this.deadlineTimer = null
      if (this.currentState !== 'alive') return
      if (performance.now() >= this.deadline) this.lose('deadline')
      else this.armDeadline()
    }, Math.ceil(wait))
  }

  private lose(reason: LeaseLost['reason']): void {
    if (this.currentState !== 'alive') return
    this.currentState = 'lost'
    this.lostInfo = { reason, atMs: performance.now(), deadlineMs: this.deadline }
    this.end()
    if (reason === 'deadline' && this.revokeOnLost) revokeLease(this.gw, this.id).catch(() => undefined)
    this.resolveLost(this.lostInfo)
    for (const fn of [...this.listeners]) {
      try {
        fn(this.lostInfo)
      } catch {
        // a listener's failure is its own
      }
    }
    this.listeners.clear()
  }

  private end(): void {
    if (this.tickTimer !== null) clearTimeout(this.tickTimer)
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer)
    this.tickTimer = null
    this.deadlineTimer = null
    this.onEnd(this)
    const state = this.currentState
    for (const fn of [...this.endListeners]) {
      try {
        fn(state)
      } catch {
        // a listener's failure is its own
      }
    }
    this.endListeners.clear()
  }
}
