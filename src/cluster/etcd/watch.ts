/**
 * A watch over the gateway's streaming `POST /v3/watch`: one create request
 * (the request body then ends: gateway.ts), answered by newline-delimited
 * JSON messages, `{"result":{header, watch_id?, created?, events?, canceled?,
 * compact_revision?, cancel_reason?}}`. The first says `created`; then each
 * message is a batch of events in revision order (the events of one
 * revision never split across batches). A PUT event has no `type` field
 * (the enum's zero value is left out); a DELETE says "DELETE" and its kv
 * has only key and mod_revision.
 *
 * Resuming: `nextRevision` is the revision to start a new watch from so that
 * nothing is missed or repeated: the last event's mod_revision + 1. (Not the
 * header's revision + 1: a watch catching up from an old revision sends its
 * events in several batches that all carry the current store revision.)
 *
 * Cancelling closes the HTTP connection (the request body has ended, so no
 * cancel request can be sent); etcd drops the watcher with the stream.
 * A stream that breaks (connection reset, etcd gone) rejects `next()` with
 * `unavailable`; compaction past the start revision with `compacted`
 * (`compactRevision`: the oldest revision left, start from there after
 * re-reading). Over a blackholed link a watch simply hears nothing: a
 * watch alone cannot tell a quiet key from a dead link (etcd 3.4 sends
 * progress notifications only every 10 minutes by default), so the owner's
 * lease deadline is what notices partitions.
 */
import { EtcdError } from './errors.js'
import { asArray, asObject, int64, readInt64 } from './encoding.js'
import type { CallOptions, Gateway, JsonObject, JsonStream } from './gateway.js'
import { keyRange, readHeader, readKeyValue, type KeySelector, type KeyValue, type ResponseHeader } from './kv.js'
import type { Bytes } from './encoding.js'

export interface WatchOptions extends KeySelector, Pick<CallOptions, 'timeoutMs' | 'signal'> {
  /** The first revision to report (absent: changes after the watch is created). */
  startRevision?: bigint | number
  /** Send each event's previous kv. */
  prevKv?: boolean
  /** Leave out PUT events. */
  noPut?: boolean
  /** Leave out DELETE events. */
  noDelete?: boolean
  /** Ask for progress notifications (empty batches saying how far the watch is). */
  progressNotify?: boolean
}

export interface WatchEvent {
  type: 'put' | 'delete'
  /** For a delete: the key, modRevision = the delete's revision, the rest empty. */
  kv: KeyValue
  prevKv: KeyValue | null
}

export interface WatchBatch {
  header: ResponseHeader
  events: WatchEvent[]
}

function readEvent(v: unknown): WatchEvent {
  const e = asObject(v, 'watch event')
  const type = e.type === undefined || e.type === 'PUT' || e.type === 0 ? 'put' : e.type === 'DELETE' || e.type === 1 ? 'delete' : null
  if (type === null) throw new EtcdError('protocol', `etcd watch: unknown event type ${JSON.stringify(e.type)}`)
  return { type, kv: readKeyValue(e.kv), prevKv: e.prev_kv === undefined ? null : readKeyValue(e.prev_kv) }
}

export class Watch implements AsyncIterable<WatchBatch> {
  private canceled = false
  private pending = false
  private failed: EtcdError | null = null
  private next_: bigint

  private constructor(
    private readonly stream: JsonStream,
    readonly watchId: bigint,
    /** The store's revision when the watch was created. */
    readonly createdRevision: bigint,
    startRevision: bigint | undefined,
    private readonly onEnd: (w: Watch) => void,
  ) {
    this.next_ = startRevision ?? createdRevision + 1n
  }

  /** Opens a watch and waits (under the call's deadline) for etcd to confirm it. Use `EtcdClient.watch()`. */
  static async open(gw: Gateway, key: Bytes, options: WatchOptions = {}, onEnd: (w: Watch) => void = () => undefined): Promise<Watch> {
    const create: JsonObject = keyRange(key, options)
    if (options.startRevision !== undefined) create.start_revision = int64(options.startRevision)
    if (options.prevKv === true) create.prev_kv = true
    if (options.progressNotify === true) create.progress_notify = true
    const filters: string[] = []
    if (options.noPut === true) filters.push('NOPUT')
    if (options.noDelete === true) filters.push('NODELETE')
    if (filters.length > 0) create.filters = filters
    const stream = await gw.stream('/v3/watch', { create_request: create }, options)
    try {
      const first = await stream.next()
      if (first === null || first.created !== true) throw new EtcdError('protocol', `etcd watch: expected a created answer, got ${JSON.stringify(first)}`)
      const start = options.startRevision === undefined ? undefined : BigInt(options.startRevision)
      const w = new Watch(stream, readInt64(first.watch_id), readHeader(first.header).revision, start, onEnd)
      // etcd answers a create it refuses with created, then canceled (or both in one message).
      if (first.canceled === true) {
        w.failed = Watch.cancelError(first)
        throw w.failed
      }
      return w
    } catch (err) {
      stream.close()
      throw err
    }
  }

  private static cancelError(m: JsonObject): EtcdError {
    const compact = readInt64(m.compact_revision)
    if (compact > 0n) return new EtcdError('compacted', `etcd watch: revision compacted (oldest left: ${compact})`, { compactRevision: compact })
    return new EtcdError('watch-canceled', `etcd watch canceled${typeof m.cancel_reason === 'string' && m.cancel_reason !== '' ? `: ${m.cancel_reason}` : ''}`)
  }

  /** The revision a new watch should start from to continue this one without gap or repeat. */
  get nextRevision(): bigint {
    return this.next_
  }

  /**
   * The next batch of events (or progress notification: no events); null once cancelled. Rejects
   * when the stream breaks (`unavailable`), the start revision is compacted (`compacted`) or etcd
   * cancels the watch (`watch-canceled`); the watch is then closed. One caller at a time.
   */
  async next(): Promise<WatchBatch | null> {
    if (this.pending) throw new EtcdError('invalid-argument', 'etcd watch: next() called while another next() is pending')
    if (this.failed !== null) throw this.failed
    if (this.canceled) return null
    this.pending = true
    try {
      for (;;) {
        const m = await this.stream.next()
        if (m === null) return null
        if (m.canceled === true) throw Watch.cancelError(m)
        const header = readHeader(m.header)
        const events = asArray(m.events, 'events').map(readEvent)
        const last = events[events.length - 1]
        if (last !== undefined) this.next_ = last.kv.modRevision + 1n
        else if (header.revision + 1n > this.next_) this.next_ = header.revision + 1n // a progress notification
        return { header, events }
      }
    } catch (err) {
      if (this.canceled) return null
      this.failed = err instanceof EtcdError ? err : new EtcdError('unknown', String(err), { cause: err })
      this.close()
      throw this.failed
    } finally {
      this.pending = false
    }
  }

  /** Ends the watch; a pending `next()` resolves null. Idempotent. */
  cancel(): void {
    if (this.canceled) return
    this.canceled = true
    this.close()
  }

  get closed(): boolean {
    return this.canceled || this.failed !== null
  }

  private close(): void {
    this.stream.close()
    this.onEnd(this)
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WatchBatch> {
    try {
      for (;;) {
        const b = await this.next()
        if (b === null) return
        yield b
      }
    } finally {
      this.cancel()
    }
  }
}
