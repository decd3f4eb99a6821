/**
 * A small etcd v3 client over etcd's JSON gateway (etcd >= 3.4 serves it on
 * the client URL under /v3/), on Node's own `fetch`: KV (range, put, delete,
 * txn with range compares), leases with a keepalive loop and a local
 * deadline (lease.ts), and watches (watch.ts). The election of
 * docs/replication.md is built on it in election.ts.
 *
 * Every call has a deadline (`timeoutMs`, per client and per call) and fails
 * fast with an `EtcdError` (errors.ts); nothing is retried unless a call asks
 * (`retries`), and there is no circuit breaker (gateway.ts).
 *
 * Keys and values go in as strings (UTF-8) or bytes and come back as
 * Buffers; revisions, versions and lease IDs are bigints (int64 on the wire,
 * decimal strings in the gateway's JSON).
 */
import type { Bytes } from './encoding.js'
import { EtcdError } from './errors.js'
import { Gateway, type CallOptions, type GatewayOptions } from './gateway.js'
import {
  deleteRequest,
  putRequest,
  rangeRequest,
  readDelete,
  readPut,
  readRange,
  readTxn,
  txnRequest,
  type DeleteOptions,
  type DeleteResult,
  type PutOptions,
  type PutResult,
  type RangeOptions,
  type RangeResult,
  type ResponseHeader,
  type TxnRequest,
  type TxnResult,
} from './kv.js'
import { grantLease, keepAliveOnce, Lease, leaseTimeToLive, revokeLease, type KeepAliveResult, type LeaseGrant, type LeaseOptions, type TimeToLiveResult } from './lease.js'
import { Watch, type WatchOptions } from './watch.js'

export type EtcdClientOptions = GatewayOptions

export class EtcdClient {
  readonly gateway: Gateway
  private readonly leases = new Set<Lease>()
  private readonly watches = new Set<Watch>()
  private closed = false

  constructor(options: EtcdClientOptions) {
    this.gateway = new Gateway(options)
  }

  /** The endpoints, as given (normalized to their origin). */
  get endpoints(): readonly string[] {
    return this.gateway.endpoints
  }

  // ---- KV

  /** Reads `key`, or a range of keys (`prefix`, `rangeEnd`). */
  async range(key: Bytes, options: RangeOptions & CallOptions = {}): Promise<RangeResult> {
    return readRange(await this.gateway.call('/v3/kv/range', rangeRequest(key, options), options))
  }

  /** The value of one key, or null. */
  async get(key: Bytes, options: CallOptions & Pick<RangeOptions, 'revision' | 'serializable'> = {}): Promise<Buffer | null> {
    const r = await this.range(key, options)
    return r.kvs[0]?.value ?? null
  }

  async put(key: Bytes, value: Bytes, options: PutOptions & CallOptions = {}): Promise<PutResult> {
    return readPut(await this.gateway.call('/v3/kv/put', putRequest(key, value, options), options))
  }

  /** Deletes `key`, or a range of keys (`prefix`, `rangeEnd`). */
  async delete(key: Bytes, options: DeleteOptions & CallOptions = {}): Promise<DeleteResult> {
    return readDelete(await this.gateway.call('/v3/kv/deleterange', deleteRequest(key, options), options))
  }

  /** If every compare holds, the success ops, else the failure ops; atomically, at one revision. */
  async txn(request: TxnRequest, options: CallOptions = {}): Promise<TxnResult> {
    return readTxn(await this.gateway.call('/v3/kv/txn', txnRequest(request), options))
  }

  // ---- leases

  /** Grants a lease; `ttl` in the answer is the one etcd granted (it may raise a small one). */
  async grant(ttlSeconds: number, options: CallOptions & { id?: bigint } = {}): Promise<LeaseGrant> {
    return grantLease(this.gateway, ttlSeconds, options.id, options)
  }

  /** Revokes a lease: its keys are deleted at once. A lease etcd does not know: `not-found`. */
  async revoke(id: bigint, options: CallOptions = {}): Promise<ResponseHeader> {
    return revokeLease(this.gateway, id, options)
  }

  /** One keepalive; `ttl` 0 in the answer: etcd does not know the lease (any more). */
  async keepAliveOnce(id: bigint, options: CallOptions = {}): Promise<KeepAliveResult> {
    return keepAliveOnce(this.gateway, id, options)
  }

  async timeToLive(id: bigint, options: CallOptions & { keys?: boolean } = {}): Promise<TimeToLiveResult> {
    return leaseTimeToLive(this.gateway, id, options.keys ?? false, options)
  }

  /**
   * Grants a lease and keeps it alive (lease.ts): `deadlineMs`, `alive()`, `onLost`, `stop()`,
   * `revoke()`. The first deadline counts from when the grant was sent.
   */
  async lease(ttlSeconds: number, options: LeaseOptions & CallOptions & { id?: bigint } = {}): Promise<Lease> {
    this.assertOpen()
    const sentAt = performance.now()
    const g = await this.grant(ttlSeconds, options)
    if (this.closed) {
      await this.revoke(g.id).catch(() => undefined)
      this.assertOpen()
    }
    const lease = new Lease(this.gateway, g.id, g.ttl, sentAt, options, (l) => this.leases.delete(l))
    this.leases.add(lease)
    return lease
  }

  // ---- watches

  /** Opens a watch on `key` or a range; resolves once etcd confirmed it (under the call's deadline). */
  async watch(key: Bytes, options: WatchOptions = {}): Promise<Watch> {
    this.assertOpen()
    const w = await Watch.open(this.gateway, key, options, (x) => this.watches.delete(x))
    if (this.closed) {
      w.cancel()
      this.assertOpen()
    }
    this.watches.add(w)
    return w
  }

  /**
   * Stops every lease's keepalives (without revoking: they expire at etcd; revoke first to
   * leave at once) and cancels every watch this client opened. Calls in flight finish.
   */
  close(): void {
    this.closed = true
    for (const l of [...this.leases]) l.stop()
    for (const w of [...this.watches]) w.cancel()
  }

  private assertOpen(): void {
    if (this.closed) throw new EtcdError('canceled', 'etcd client is closed')
  }
}
