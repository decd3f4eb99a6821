import { assert } from '../base/assert.js'
import { StrataError } from '../base/errors.js'
import type { TableVersion } from '../manifest/table-version.js'
import type { Memtable } from '../memtable/memtable.js'
import type { ResolvedOptions } from '../options.js'
import type { WalWriter } from '../wal/wal-writer.js'
import { WalRecordBuilder } from '../wal/record-builder.js'
import { RECORD_HEADER_BYTES } from '../wal/record-framing.js'
import { PAYLOAD_HEADER_BYTES, forEachWalEntry, walRecordLastSequence } from '../wal/wal-record.js'
import { readU64 } from '../base/coding.js'
import { EXPIRY_BYTES, KIND_PUT_EXPIRING, KIND_RANGE_DELETE, type WriteOp } from '../base/entry.js'
import { checkConditions, type ConditionReader } from './conditions.js'
import { emptyWaits, type EngineStats } from './stats.js'
import type { FailureSite } from '../base/background-error.js'
import { WriteThrottle } from './write-pacing.js'
import { MAX_GROUP_BYTES, type Condition, type PendingWrite } from './write-group.js'

/** Write groups committed back to back before the drain lets the event loop turn... */
const GROUPS_PER_EVENT_LOOP_TURN = 64
/**
 * ...or this long since the drain last let it turn: 64 groups of 64 puts took
 * 80-110 ms while the code was still cold (interpreted) at the start of a
 * stream, blocking timers and sockets for that long (docs/performance.md,
 * "Bigdata").
 */
const MAX_MS_PER_EVENT_LOOP_TURN = 10
/** Written groups that may wait for the commit gate at once (replication: one per round trip otherwise). */
const MAX_GATED_GROUPS = 64

/**
 * What the write path needs from the engine. As a ConditionReader it reads
 * the applied state for write conditions (its `lastSequence` is the write
 * path's own).
 */
export interface WriteHost extends ConditionReader {
  readonly options: ResolvedOptions
  /** The current table version (compaction debt is computed from it). */
  currentTableVersion(): TableVersion
  /** The memtable writes are applied to; it changes only through `freezeMemtable`. */
  activeMemtable(): Memtable
  /** The active memtable's WAL. */
  activeWal(): WalWriter
  /** Frozen memtables, oldest first, waiting for (or in) flush. */
  frozenMemtables(): readonly Memtable[]
  /**
   * Freezes the active memtable, opens the next one and its WAL, and calls
   * `memtableSwitched`. Only when `allWritten` (asserted).
   */
  freezeMemtable(): void
  /** Resolves at the next flush or compaction that finishes (or fails). */
  backgroundProgress(): Promise<void>
  /** The error that made the database read-only, if any. */
  readonly failure: StrataError | undefined
  /** Makes the database read-only after `err` (the first error wins). */
  onError(err: unknown, where: FailureSite): void
  /** False once closing. */
  readonly isOpen: boolean
  /** A group's records are in the active WAL (synced when asked) and its writes resolved. */
  walCommitted(): void
  /**
   * Replication (docs/replication.md): resolves once the writes up to
   * `sequence`, already in this node's WAL, are committed (in the WALs of a
   * majority); only then do they resolve and become visible. A rejection
   * (leadership lost) fails them and stops this engine's writes.
   * Undefined on a single node: a write commits with its WAL write.
   */
  readonly commitGate: ((sequence: number) => Promise<void>) | undefined
  /**
   * Replication, on a follower: the highest sequence known committed. A
   * memtable is frozen (and so flushed) only once every entry in it is at or
   * below it, so no uncommitted entry ever reaches a table. Infinity when
   * not a follower.
   */
  readonly freezeLimit: number
  /** Resolves when `freezeLimit` may have moved (or the engine failed or closed). */
  freezeLimitProgress(): Promise<void>
}

/** The write path's share of `stats().writes` (flushes are counted by the engine). */
export type WriteCounters = Omit<EngineStats['writes'], 'flushes' | 'flushBytes' | 'flushMs'>

/**
 * The write queue and group commit (docs/design.md, "Write path"): a write is
 * applied when it is issued (conditions checked, bytes copied into the open
 * WAL record, entries added to the memtable) unless something holds writes
 * back, then it waits in a FIFO queue. One drain at a time writes the applied
 * writes' record (one write(2) per group), fsyncs when any of them asked for
 * it, and resolves them in order; only then do reads see them.
 */
export class WritePath {
  /**
   * Sequence of the newest write applied to the memtable: admitted, maybe not
   * yet in the WAL. Reads see `visibleSequence`; transactions and conditions
   * see this.
   */
  lastSequence: number
  readonly counters: WriteCounters = {
    walBytes: 0,
    writeGroups: 0,
    writes: 0,
    stalls: 0,
    stallMs: 0,
    slowdowns: 0,
    slowdownMs: 0,
    syncs: 0,
    userBytes: 0,
    waits: emptyWaits(),
  }
  /**
   * When this says more writes are coming in this event-loop turn (a chain of
   * transaction turns is running), the drain lets the turn finish before it
   * writes the group, so the chain shares one WAL write instead of one per
   * few links. Not used for plain writes: a lone awaited put would wait a turn.
   */
  holdGroupsWhile: (() => boolean) | undefined

  /** Writes waiting to be applied (memtable full, compaction debt, or behind others), in call order. */
  private readonly queue: PendingWrite[] = []
  /** Writes applied (or rejected by their conditions) whose records are not yet written, in call order. */
  private readonly applied: PendingWrite[] = []
  /** Encoded bytes of the applied writes. */
  private appliedBytes = 0
  /** The open WAL record(s) of the applied writes, in the active memtable's arena. */
  private records: WalRecordBuilder
  private readonly offsetScratch: number[] = []
  /** Compaction debt and flush pacing, and the count of every wait (the engine reports flushes to it). */
  readonly throttle: WriteThrottle
  private drainPromise: Promise<void> | undefined
  /** Callers waiting for the memtable to be frozen once every write applied before their call is written (freezeAfterWritten). */
  private readonly freezeRequests: Array<() => void> = []
  /** Written groups waiting for the commit gate, and the chain that settles them in order (settleAfterGate). */
  private gatedGroups = 0
  private gated: Promise<void> = Promise.resolve()
  /** Set while the drain waits for gated groups only: a new write wakes it to write the next group. */
  private wakeDrain: (() => void) | undefined
  /** Bytes of the active WAL holding resolved writes (whole records): what change cursors may read. */
  committedWalBytes = 0
  /** The replication epoch new records carry (setEpoch). */
  private epoch = 0
  /**
   * Bytes of the active WAL holding written records, resolved or still
   * waiting for the commit gate, and the sequence they end at: what
   * replication ships (a follower's ack is what commits them).
   */
  writtenWalBytes = 0
  writtenSequence: number
  private groupsSinceYield = 0
  /** When the drain last let the event loop turn (or began). */
  private yieldedAtMs = 0
  private writesIssued = 0
  private writesSettled = 0
  private readonly settleWaiters: Array<{ ticket: number; resolve: (sequence: number) => void }> = []
  /** Sequence after the last write settled so far (in ticket order). */
  private settledSequence: number

  constructor(
    private readonly host: WriteHost,
    lastSequence: number,
  ) {
    this.lastSequence = lastSequence
    this.settledSequence = lastSequence
    this.writtenSequence = lastSequence
    this.records = new WalRecordBuilder(host.activeMemtable().arena, MAX_GROUP_BYTES)
    this.throttle = new WriteThrottle(host, this.counters)
  }

  /**
   * Takes one caller's write; resolves once it is in the WAL (and synced when
   * asked). With `conditions`, rejects with STRATA_CONFLICT, writing nothing,
   * unless all of them hold against every write issued before it.
   *
   * Writes are applied in call order. When nothing holds writes back (no
   * queue, room in the memtable, no compaction debt), a write is applied at
   * once: its conditions are checked, its bytes copied into the open WAL
   * record and its entries added to the memtable under their final sequence
   * numbers. It stays invisible to reads (which read at the settled sequence)
   * until the drain has written its record and resolves it; transactions read
   * the applied state, so a chain of them on one key does not wait for a WAL
   * write per link. Otherwise the write waits in the queue (a copy of its
   * bytes) and the drain applies it once room is made.
   */
  write(ops: WriteOp[], encodedBytes: number, sync: boolean, conditions?: Condition[], onAdmitted?: () => void, record?: Buffer, noop?: boolean): Promise<void> {
    assert(this.host.isOpen, 'write on a closed engine')
    const failure = this.host.failure
    if (failure) return Promise.reject(failure)
    return new Promise<void>((resolve, reject) => {
      const w: PendingWrite = { ops, encodedBytes, sync: sync || this.host.options.syncWrites, conditions, ticket: ++this.writesIssued, resolve, reject, onAdmitted, record, noop }
      if (this.queue.length === 0 && this.canApplyNow()) {
        this.apply(w)
      } else {
        w.ops = ops.map((op) =>
          op.value === null ? { key: Buffer.from(op.key), value: null } : { ...op, key: Buffer.from(op.key), value: Buffer.from(op.value) },
        )
        if (w.record !== undefined) w.record = Buffer.from(w.record)
        if (conditions !== undefined) w.conditions = conditions.map((c) => (c.type === 'key' ? { ...c, key: Buffer.from(c.key) } : c))
        this.queue.push(w)
      }
      this.drainPromise ??= Promise.resolve().then(() => this.drain())
      this.wakeDrain?.()
    })
  }

  /**
   * Appends a whole record payload another node wrote (replication), in call
   * order with every other write: verbatim, as a WAL record of its own, its
   * entries applied under its own sequences (applyRecord). Rejects with
   * STRATA_INVALID_ARGUMENT, writing nothing, unless it starts right after
   * the last sequence applied.
   */
  writeRecord(payload: Buffer, sync: boolean): Promise<void> {
    return this.write([], RECORD_HEADER_BYTES + payload.length, sync, undefined, undefined, payload)
  }

  /** Writes a NOOP entry in call order; resolves (after the commit gate, if any) with its sequence. */
  async writeNoop(sync: boolean): Promise<number> {
    let sequence = 0
    await this.write([], RECORD_HEADER_BYTES + PAYLOAD_HEADER_BYTES + 1, sync, undefined, () => (sequence = this.lastSequence), undefined, true)
    return sequence
  }

  /**
   * The replication epoch of the records written from now on (0 on a single
   * node). The open record is closed first: no record mixes epochs.
   */
  setEpoch(epoch: number): void {
    this.epoch = epoch
    this.records.setEpoch(epoch)
  }

  /**
   * Resolves, once every write issued before this call has settled, with the
   * sequence number right after the last of them: reading at it sees those
   * writes and none issued later. Undefined when nothing is in flight.
   */
  writesBefore(): Promise<number> | undefined {
    if (this.writesSettled === this.writesIssued) return undefined
    const ticket = this.writesIssued
    return new Promise((resolve) => this.settleWaiters.push({ ticket, resolve }))
  }

  /** Sequence of the newest write settled (resolved): what reads see. */
  get visibleSequence(): number {
    return this.settledSequence
  }

  /** The running drain, if any (it ends once no write is queued or applied). */
  get currentDrain(): Promise<void> | undefined {
    return this.drainPromise
  }

  /**
   * True when every applied write's record is in the WAL: the only time the
   * active memtable may be frozen.
   */
  get allWritten(): boolean {
    return this.applied.length === 0 && this.records.isEmpty
  }

  /** The host froze the memtable: later writes build their records in the new one's arena. */
  memtableSwitched(): void {
    this.records = new WalRecordBuilder(this.host.activeMemtable().arena, MAX_GROUP_BYTES, this.epoch)
    this.throttle.memtableSwitched()
    this.committedWalBytes = 0
    this.writtenWalBytes = 0
  }

  /**
   * Freezes the active memtable (when it holds anything) once every write
   * applied before this call is in the WAL; resolves after the freeze, or
   * without one when the engine has failed. Writes issued meanwhile wait in
   * the queue, so a steady stream of writes cannot keep the freeze from
   * happening (every write in flight must be written first, and a new one is
   * applied only after the freeze). The caller makes sure a frozen-memtable
   * slot is free (or the freeze waits for one, as a full memtable does).
   */
  freezeAfterWritten(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.freezeRequests.push(resolve)
      this.drainPromise ??= Promise.resolve().then(() => this.drain())
    })
  }

  /** True when a write may be applied right away (nothing to wait for first). */
  private canApplyNow(): boolean {
    if (this.freezeRequests.length > 0) return false
    if (this.memtableFull()) return false
    return !this.throttle.holdsWrites()
  }

  /**
   * Admits `w`: checks its conditions against the applied state, then copies
   * its ops into the open WAL record and adds them to the memtable. It joins
   * `applied` either way, to be settled in order after the record is written.
   */
  private apply(w: PendingWrite): void {
    if (w.conditions !== undefined) {
      try {
        w.error = checkConditions(w.conditions, this.host)
      } catch (err) {
        w.error = err
      }
    }
    if (w.error === undefined && w.noop === true) {
      this.records.appendNoop(++this.lastSequence)
      w.sequences = 1
      this.appliedBytes += w.encodedBytes
    } else if (w.error === undefined && w.record !== undefined) {
      this.applyRecord(w, w.record)
    } else if (w.error === undefined && w.ops.length > 0) {
      const first = this.lastSequence + 1
      const offsets = this.offsetScratch
      offsets.length = 0
      const buf = this.records.append(w.ops, w.encodedBytes, first, offsets)
      const mem = this.host.activeMemtable()
      for (let i = 0; i < w.ops.length; i++) {
        const op = w.ops[i]
        const ks = offsets[2 * i]
        const vs = offsets[2 * i + 1]
        if (op.value === null) mem.addRange(buf, first + i, ks, ks + op.key.length, vs, -1)
        else if (op.rangeDelete === true) mem.addRange(buf, first + i, ks, ks + op.key.length, vs, vs + op.value.length, KIND_RANGE_DELETE)
        else if (op.expiresAt === undefined) mem.addRange(buf, first + i, ks, ks + op.key.length, vs, vs + op.value.length)
        else mem.addRange(buf, first + i, ks, ks + op.key.length, vs, vs + EXPIRY_BYTES + op.value.length, KIND_PUT_EXPIRING)
      }
      this.lastSequence += w.ops.length
      this.appliedBytes += w.encodedBytes
    }
    this.applied.push(w)
    w.onAdmitted?.()
  }

  /**
   * Appends a replicated record verbatim and applies its entries under their
   * own sequences (NOOPs take theirs and reach no memtable). It must start
   * right after the last sequence applied: a follower's log has no gaps.
   */
  private applyRecord(w: PendingWrite, payload: Buffer): void {
    // Checked whole before anything is applied: a record that does not parse changes nothing.
    try {
      forEachWalEntry(payload, 'replicated record', () => undefined)
    } catch (err) {
      w.error = new StrataError('STRATA_INVALID_ARGUMENT', `replicated record does not parse: ${(err as Error).message}`)
      return
    }
    const first = readU64(payload, 1)
    if (first !== this.lastSequence + 1) {
      w.error = new StrataError('STRATA_INVALID_ARGUMENT', `replicated record starts at sequence ${first}, expected ${this.lastSequence + 1}`)
      return
    }
    const { buf, start } = this.records.appendPayload(payload)
    const mem = this.host.activeMemtable()
    const body = buf.subarray(start)
    forEachWalEntry(body, 'replicated record', (p, seq, ks, ke, vs, ve, _end, kind) => mem.addRange(buf, seq, start + ks, start + ke, vs < 0 ? -1 : start + vs, vs < 0 ? -1 : start + ve, kind))
    const last = walRecordLastSequence(body)
    w.sequences = last - this.lastSequence
    this.lastSequence = last
    this.appliedBytes += w.encodedBytes
  }

  private async drain(): Promise<void> {
    this.yieldedAtMs = performance.now()
    try {
      for (;;) {
        if (this.applied.length === 0 && this.queue.length === 0 && this.freezeRequests.length === 0) {
          if (this.gatedGroups === 0) break
          // Groups wait for the commit gate: the drain ends after them, or writes the next group as soon as one comes.
          await new Promise<void>((resolve) => {
            this.wakeDrain = resolve
            this.gated.then(resolve, resolve)
          })
          this.wakeDrain = undefined
          continue
        }
        const failure = this.host.failure
        if (failure) {
          this.settle(this.applied.splice(0), failure)
          this.settle(this.queue.splice(0), failure)
          for (const resolve of this.freezeRequests.splice(0)) resolve()
          // Groups written before the failure settle as their gate decides (a close waits for them).
          while (this.gatedGroups > 0) await this.gated
          break
        }
        if (this.applied.length > 0) {
          if (
            ++this.groupsSinceYield >= GROUPS_PER_EVENT_LOOP_TURN ||
            performance.now() - this.yieldedAtMs >= MAX_MS_PER_EVENT_LOOP_TURN ||
            this.holdGroupsWhile?.() === true
          ) {
            // Writes that never wait on I/O resolve through microtasks only; let timers and I/O run.
            this.groupsSinceYield = 0
            await new Promise<void>((resolve) => setImmediate(resolve))
            this.yieldedAtMs = performance.now()
          }
          await this.commitApplied()
          continue
        }
        if (this.freezeRequests.length > 0) {
          // Every applied write is written (applied is empty, its records taken): freeze here.
          try {
            if (!this.host.activeMemtable().isEmpty) await this.makeRoomForWrite()
          } catch (err) {
            this.host.onError(err, 'memtable-switch')
            continue
          }
          for (const resolve of this.freezeRequests.splice(0)) resolve()
          continue
        }
        // Queued writes: make room and pace first. Nothing is applied meanwhile
        // (a write is applied at once only while the queue is empty).
        let rate = Infinity
        try {
          if (this.memtableFull()) await this.makeRoomForWrite()
          rate = await this.throttle.paceNextGroup()
        } catch (err) {
          this.host.onError(err, 'memtable-switch')
          continue
        }
        assert(this.applied.length === 0, 'writes applied past the queue')
        // One group: at least one write, then more while they fit (as they would have eagerly).
        let n = 0
        let bytes = 0
        while (n < this.queue.length && (n === 0 || (bytes + this.queue[n].encodedBytes <= MAX_GROUP_BYTES && !this.memtableFull()))) {
          bytes += this.queue[n].encodedBytes
          this.apply(this.queue[n++])
        }
        this.queue.splice(0, n)
        this.throttle.charge(bytes, rate)
      }
    } finally {
      this.drainPromise = undefined
    }
  }

  /** Writes the applied writes' records to the WAL (one write(2) each, one fsync if any asked) and settles them. */
  private async commitApplied(): Promise<void> {
    const group = this.applied.splice(0)
    const records = this.records.take()
    // The group ends here: writes applied while it is written belong to the next one.
    const groupEnd = this.lastSequence
    const bytes = this.appliedBytes
    this.appliedBytes = 0
    let sync = false
    for (const w of group) sync ||= w.sync && w.error === undefined
    let stage: FailureSite = 'wal-write'
    const wal = this.host.activeWal()
    try {
      for (const record of records) {
        wal.append(record)
        this.counters.walBytes += record.length
      }
      if (sync && records.length > 0) {
        this.counters.syncs++
        this.groupsSinceYield = 0
        stage = 'wal-sync'
        await wal.sync()
        this.yieldedAtMs = performance.now()
      }
    } catch (err) {
      // The WAL tail is now unknown: later appends could sit behind garbage. Stop writing.
      this.host.onError(err, stage)
      this.settle(group, this.host.failure)
      return
    }
    const gate = this.host.commitGate
    if (records.length > 0) {
      this.writtenWalBytes = wal.sizeBytes
      this.writtenSequence = groupEnd
      if (gate !== undefined) {
        // Shipping cursors may read the group now; without a gate the wake after the settle below serves both.
        this.host.walCommitted()
        await this.settleAfterGate(gate(groupEnd), group, bytes, wal.sizeBytes)
        return
      }
    }
    this.groupCommitted(group, bytes, records.length > 0, wal.sizeBytes)
  }

  /**
   * Settles a written group once the commit gate lets it through, without
   * holding up the next group: the next one is written (and shipped) while
   * this one waits for its acknowledgements, and settles right after it,
   * in order. Waits only when MAX_GATED_GROUPS are already waiting.
   */
  private async settleAfterGate(gated: Promise<void>, group: PendingWrite[], bytes: number, walBytes: number): Promise<void> {
    gated.catch(() => undefined)
    this.gatedGroups++
    this.gated = this.gated.then(async () => {
      try {
        await gated
      } catch (err) {
        // Not committed, maybe never: the entries are in this WAL and memtable, so no later write
        // may resolve past them. The engine stops taking writes until it is rebuilt from a log that agrees.
        this.host.onError(err, 'replication')
        this.settle(group, this.host.failure)
        return
      } finally {
        this.gatedGroups--
      }
      this.groupCommitted(group, bytes, true, walBytes)
    })
    if (this.gatedGroups >= MAX_GATED_GROUPS) await this.gated
  }

  /** A group's records are committed: its writes resolve, change cursors may read them. */
  private groupCommitted(group: PendingWrite[], bytes: number, wrote: boolean, walBytes: number): void {
    this.throttle.groupCommitted(bytes)
    if (wrote) this.counters.writeGroups++
    this.counters.writes += group.length
    this.counters.userBytes += bytes
    this.settle(group, undefined)
    if (wrote) {
      this.committedWalBytes = walBytes
      this.host.walCommitted()
    }
  }

  /**
   * Settles writes in ticket order: each rejected with its own admission error
   * or `err`, else resolved (its entries are applied). Reads waiting for a
   * ticket learn the sequence reached right after it.
   */
  private settle(writes: PendingWrite[], err: unknown): void {
    for (const w of writes) {
      const failure = w.error ?? err
      if (failure === undefined) {
        this.settledSequence += w.sequences ?? w.ops.length
        w.resolve()
      } else {
        w.reject(failure)
      }
      this.writesSettled = w.ticket
      while (this.settleWaiters.length > 0 && this.settleWaiters[0].ticket <= w.ticket) {
        this.settleWaiters.shift()!.resolve(this.settledSequence)
      }
    }
  }

  /** Freezes the full memtable, waiting first if too many are already waiting for flush. */
  private async makeRoomForWrite(): Promise<void> {
    // A follower freezes only committed entries (see WriteHost.freezeLimit).
    while (this.lastSequence > this.host.freezeLimit) {
      const failure = this.host.failure
      if (failure) throw failure
      // Closing: the uncommitted entries stay in the WAL (replayed at the next open), never in a table.
      if (!this.host.isOpen) return
      const started = performance.now()
      await this.host.freezeLimitProgress()
      this.throttle.countWait('stall', 'freezeLimit', started)
    }
    while (this.host.frozenMemtables().length >= this.host.options.maxImmutableMemtables) {
      const failure = this.host.failure
      if (failure) throw failure
      const started = performance.now()
      await this.host.backgroundProgress()
      this.throttle.countWait('stall', 'flushSlot', started)
    }
    // Only committed entries are frozen (and so flushed): the groups waiting for the gate settle first.
    while (this.gatedGroups > 0) await this.gated
    const failure = this.host.failure
    if (failure) throw failure
    this.host.freezeMemtable()
  }

  private memtableFull(): boolean {
    return this.host.activeMemtable().approximateBytes >= this.host.options.memtableBytes
  }
}
