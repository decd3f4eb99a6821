import * as path from 'node:path'
import { assert } from '../base/assert.js'
import { StrataError, ioError } from '../base/errors.js'
import { walFileName } from '../base/file-names.js'
import { syncDirectory } from '../base/fs-util.js'
import { BackgroundRunner } from '../compaction/background-runner.js'
import { CompactionScheduler, type CompactionHost } from '../compaction/scheduler.js'
import { DbIterator, type KeyRange } from '../iterators/db-iterator.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'
import type { Version } from '../manifest/version.js'
import type { TableMeta } from '../manifest/table-meta.js'
import type { VersionSet } from '../manifest/version-set.js'
import { Memtable, type Found } from '../memtable/memtable.js'
import type { Recycler } from '../memtable/recycler.js'
import type { ResolvedOptions } from '../options.js'
import { BlockCache } from '../sstable/block-cache.js'
import { TableCache } from '../sstable/table-cache.js'
import type { TableBuilderOptions } from '../sstable/table-builder.js'
import { WalWriter } from '../wal/wal-writer.js'
import { WalRecordBuilder } from '../wal/record-builder.js'
import type { WriteOp } from '../wal/wal-record.js'
import { SnapshotList } from './snapshot-list.js'
import { Flusher, type FlushHost } from './flusher.js'
import { removeObsoleteFiles } from './obsolete-files.js'
import { openSources, readPoint } from './read-path.js'
import { checkConditions } from './conditions.js'
import { WritePacer, compactionDebt } from './write-pacing.js'
import { MAX_GROUP_BYTES, type Condition, type PendingWrite } from './write-group.js'
import { collectStats, type EngineStats } from './stats.js'

/** Write groups committed back to back before the drain lets the event loop turn. */
const GROUPS_PER_EVENT_LOOP_TURN = 64

/** What recovery hands to the engine. */
export interface RecoveredEngineState {
  dir: string
  options: ResolvedOptions
  versions: VersionSet
  mem: Memtable
  /** Where memtables get their memory and return it once flushed. */
  recycler: Recycler
  wal: WalWriter
  lastSequence: number
  releaseLock: () => void
}

/**
 * The running database: memtables, WAL, table versions and caches, the write
 * queue (group commit) and the background flush. Arguments are validated by
 * the facade (db.ts) before they reach here; this class asserts.
 *
 * Write path (docs/design.md, "Write path"): a write is applied when it is
 * issued (conditions checked, bytes copied into the open WAL record, entries
 * added to the memtable) unless something holds writes back, then it waits
 * in a FIFO queue. One drain at a time writes the applied writes' record
 * (one write(2) per group), fsyncs when any of them asked for it, and
 * resolves them in order; only then do reads see them.
 */
export class Engine implements CompactionHost, FlushHost {
  readonly dir: string
  readonly options: ResolvedOptions
  /**
   * Sequence of the newest write applied to the memtable: admitted, maybe not
   * yet in the WAL. Reads see `visibleSequence`; transactions and conditions
   * see this.
   */
  lastSequence: number
  readonly snapshots = new SnapshotList()

  private mem: Memtable
  /** Frozen memtables, oldest first, waiting for (or in) flush. */
  private readonly imms: Memtable[] = []
  private readonly recycler: Recycler
  private wal: WalWriter
  readonly versions: VersionSet
  private readonly blockCache: BlockCache
  private readonly tableCache: TableCache
  readonly tableOptions: TableBuilderOptions
  /** Versions held by iterators (besides the current one). */
  private readonly liveVersions = new Set<Version>()
  /** Table numbers being written, not yet in any version. */
  private readonly pendingOutputs = new Set<number>()
  private readonly releaseLock: () => void
  private readonly flusher: Flusher
  private readonly compactions: CompactionScheduler

  /** Writes waiting to be applied (memtable full, compaction debt, or behind others), in call order. */
  private readonly queue: PendingWrite[] = []
  /** Writes applied (or rejected by their conditions) whose records are not yet written, in call order. */
  private readonly applied: PendingWrite[] = []
  /** Encoded bytes of the applied writes. */
  private appliedBytes = 0
  /** The open WAL record(s) of the applied writes, in the active memtable's arena. */
  private records: WalRecordBuilder
  private readonly offsetScratch: number[] = []
  /** Compaction debt of `debtVersion` (recomputed when the version changes). */
  private debtVersion: Version | undefined
  private debt = 0
  private readonly pacer = new WritePacer()
  /**
   * When this says more writes are coming in this event-loop turn (a chain of
   * transaction turns is running), the drain lets the turn finish before it
   * writes the group, so the chain shares one WAL write instead of one per
   * few links. Not used for plain writes: a lone awaited put would wait a turn.
   */
  holdGroupsWhile: (() => boolean) | undefined
  private drainPromise: Promise<void> | undefined
  private groupsSinceYield = 0
  private readonly flushWaiters: Array<() => void> = []
  private backgroundError: StrataError | undefined
  private writesIssued = 0
  private writesSettled = 0
  private readonly settleWaiters: Array<{ ticket: number; resolve: (sequence: number) => void }> = []
  /** Sequence after the last write settled so far (in ticket order). */
  private settledSequence: number
  private state: 'open' | 'closing' | 'closed' = 'open'
  private closePromise: Promise<void> | undefined

  private readonly counters = {
    flushes: 0,
    flushBytes: 0,
    walBytes: 0,
    writeGroups: 0,
    writes: 0,
    stalls: 0,
    stallMs: 0,
    slowdowns: 0,
    slowdownMs: 0,
    syncs: 0,
    userBytes: 0,
  }

  constructor(s: RecoveredEngineState) {
    this.dir = s.dir
    this.options = s.options
    this.versions = s.versions
    this.mem = s.mem
    this.recycler = s.recycler
    this.wal = s.wal
    this.lastSequence = s.lastSequence
    this.settledSequence = s.lastSequence
    this.releaseLock = s.releaseLock
    this.blockCache = new BlockCache(s.options.blockCacheBytes)
    this.tableCache = new TableCache(s.dir, this.blockCache, s.options.maxOpenTables, s.options.tableCacheBytes)
    this.tableOptions = {
      blockBytes: s.options.blockBytes,
      blockRestartInterval: s.options.blockRestartInterval,
      bloomBitsPerKey: s.options.bloomBitsPerKey,
    }
    this.records = new WalRecordBuilder(this.mem.arena, MAX_GROUP_BYTES)
    // One worker thread runs the flushes and the first compaction (see CompactionScheduler).
    const runner = new BackgroundRunner()
    this.flusher = new Flusher(this, runner)
    this.compactions = new CompactionScheduler(this, runner)
    // Entries replayed from WAL files live in whole-file buffers: flush them to
    // L0 in the background right away (as LevelDB does at recovery) instead of
    // holding those buffers until the memtable fills.
    if (this.mem.replayed) this.freezeMemtable()
    this.compactions.maybeSchedule()
  }

  // ---- compaction host -----------------------------------------------------

  snapshotSequences(): number[] {
    return this.snapshots.sequences()
  }

  reserveOutputs(count: number): number[] {
    const numbers: number[] = []
    for (let i = 0; i < count; i++) {
      const n = this.versions.newFileNumber()
      this.pendingOutputs.add(n)
      numbers.push(n)
    }
    return numbers
  }

  releaseOutputs(numbers: readonly number[]): void {
    for (const n of numbers) this.pendingOutputs.delete(n)
  }

  afterInstall(): void {
    if (this.state !== 'closed') this.deleteObsoleteFiles()
    this.wakeBackgroundWaiters()
  }

  onError(err: unknown): void {
    this.setBackgroundError(err)
  }

  canRunBackgroundWork(): boolean {
    return this.state === 'open' && this.backgroundError === undefined
  }

  currentSequence(): number {
    return this.lastSequence
  }

  get isOpen(): boolean {
    return this.state === 'open'
  }

  /** The error that made the database read-only, if any. */
  get failure(): StrataError | undefined {
    return this.backgroundError
  }

  /** Compacts the key range [start, end] down to the deepest populated level. */
  async compactRange(start: Buffer | undefined, end: Buffer | undefined): Promise<void> {
    if (this.mem.entryCount > 0) {
      await this.forceFlush()
    }
    await this.compactions.compactRange(start, end)
    if (this.backgroundError) throw this.backgroundError
  }

  /** Freezes the memtable (after queued writes) and waits until every frozen memtable is flushed. */
  private async forceFlush(): Promise<void> {
    // Freeze only with every applied write in the WAL (checked again after each wait).
    for (;;) {
      const pending = this.writesBefore()
      if (pending !== undefined) await pending
      else if (this.imms.length >= this.options.maxImmutableMemtables) await this.backgroundProgress()
      else break
    }
    if (this.mem.entryCount > 0) this.freezeMemtable()
    while (this.imms.length > 0 && !this.backgroundError) await this.backgroundProgress()
  }

  /** Resolves at the next flush or compaction that finishes (or fails). */
  private backgroundProgress(): Promise<void> {
    return new Promise<void>((resolve) => this.flushWaiters.push(resolve))
  }

  private wakeBackgroundWaiters(): void {
    for (const wake of this.flushWaiters.splice(0)) wake()
  }

  // ---- writes ------------------------------------------------------------

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
  write(ops: WriteOp[], encodedBytes: number, sync: boolean, conditions?: Condition[], onAdmitted?: () => void): Promise<void> {
    assert(this.state === 'open', 'write on a closed engine')
    if (this.backgroundError) return Promise.reject(this.backgroundError)
    return new Promise<void>((resolve, reject) => {
      const w: PendingWrite = { ops, encodedBytes, sync: sync || this.options.syncWrites, conditions, ticket: ++this.writesIssued, resolve, reject, onAdmitted }
      if (this.queue.length === 0 && this.canApplyNow()) {
        this.apply(w)
      } else {
        w.ops = ops.map((op) => ({ key: Buffer.from(op.key), value: op.value === null ? null : Buffer.from(op.value) }))
        if (conditions !== undefined) w.conditions = conditions.map((c) => (c.type === 'key' ? { ...c, key: Buffer.from(c.key) } : c))
        this.queue.push(w)
      }
      this.drainPromise ??= Promise.resolve().then(() => this.drain())
    })
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

  /** True when a write may be applied right away (nothing to wait for first). */
  private canApplyNow(): boolean {
    if (this.memtableFull()) return false
    return this.currentDebt() === 0
  }

  /** Compaction debt of the current version (0 without automatic compaction); cached per version. */
  private currentDebt(): number {
    if (!this.options.autoCompaction) return 0
    const version = this.versions.current
    if (version !== this.debtVersion) {
      this.debtVersion = version
      this.debt = compactionDebt(version, this.options)
    }
    return this.debt
  }

  /**
   * Admits `w`: checks its conditions against the applied state, then copies
   * its ops into the open WAL record and adds them to the memtable. It joins
   * `applied` either way, to be settled in order after the record is written.
   */
  private apply(w: PendingWrite): void {
    if (w.conditions !== undefined) {
      try {
        w.error = checkConditions(w.conditions, this)
      } catch (err) {
        w.error = err
      }
    }
    if (w.error === undefined && w.ops.length > 0) {
      const first = this.lastSequence + 1
      const offsets = this.offsetScratch
      offsets.length = 0
      const buf = this.records.append(w.ops, w.encodedBytes, first, offsets)
      const mem = this.mem
      for (let i = 0; i < w.ops.length; i++) {
        const op = w.ops[i]
        const ks = offsets[2 * i]
        const vs = offsets[2 * i + 1]
        mem.addRange(buf, first + i, ks, ks + op.key.length, vs, op.value === null ? -1 : vs + op.value.length)
      }
      this.lastSequence += w.ops.length
      this.appliedBytes += w.encodedBytes
    }
    this.applied.push(w)
    w.onAdmitted?.()
  }

  private async drain(): Promise<void> {
    try {
      while (this.applied.length > 0 || this.queue.length > 0) {
        if (this.backgroundError) {
          this.settle(this.applied.splice(0), this.backgroundError)
          this.settle(this.queue.splice(0), this.backgroundError)
          break
        }
        if (this.applied.length > 0) {
          if (++this.groupsSinceYield >= GROUPS_PER_EVENT_LOOP_TURN || this.holdGroupsWhile?.() === true) {
            // Writes that never wait on I/O resolve through microtasks only; let timers and I/O run.
            this.groupsSinceYield = 0
            await new Promise<void>((resolve) => setImmediate(resolve))
          }
          await this.commitApplied()
          continue
        }
        // Queued writes: make room and pace first. Nothing is applied meanwhile
        // (a write is applied at once only while the queue is empty).
        let debt = 0
        try {
          if (this.memtableFull()) await this.makeRoomForWrite()
          if (this.currentDebt() > 0) debt = await this.paceWrites()
        } catch (err) {
          this.setBackgroundError(err)
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
        if (debt > 0) this.pacer.charge(bytes, debt, performance.now())
      }
    } finally {
      this.drainPromise = undefined
    }
  }

  /** Writes the applied writes' records to the WAL (one write(2) each, one fsync if any asked) and settles them. */
  private async commitApplied(): Promise<void> {
    const group = this.applied.splice(0)
    const records = this.records.take()
    const bytes = this.appliedBytes
    this.appliedBytes = 0
    let sync = false
    for (const w of group) sync ||= w.sync && w.error === undefined
    try {
      for (const record of records) {
        this.wal.append(record)
        this.counters.walBytes += record.length
      }
      if (sync && records.length > 0) {
        this.counters.syncs++
        this.groupsSinceYield = 0
        await this.wal.sync()
      }
    } catch (err) {
      // The WAL tail is now unknown: later appends could sit behind garbage. Stop writing.
      this.setBackgroundError(err)
      this.settle(group, this.backgroundError)
      return
    }
    this.pacer.record(bytes, this.currentDebt() > 0, performance.now())
    if (records.length > 0) this.counters.writeGroups++
    this.counters.writes += group.length
    this.counters.userBytes += bytes
    this.settle(group, undefined)
  }

  /** Sequence of the write that produced the key's value at `sequence`; 0 when absent or deleted. */
  versionOf(key: Buffer, sequence: number): number {
    const found = this.get(key, sequence)
    return found === undefined || found.v === null ? 0 : found.s
  }

  /** The first key in `range` with any entry (put or delete) newer than `sinceSequence`, if one exists. */
  firstChangeSince(range: KeyRange, sinceSequence: number): Buffer | undefined {
    const it = this.internalIterator(range)
    try {
      return it.firstNewerThan(sinceSequence)
    } finally {
      it.close()
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
        this.settledSequence += w.ops.length
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
    while (this.imms.length >= this.options.maxImmutableMemtables) {
      if (this.backgroundError) throw this.backgroundError
      this.counters.stalls++
      const started = performance.now()
      await this.backgroundProgress()
      this.counters.stallMs += performance.now() - started
    }
    this.freezeMemtable()
  }

  /**
   * Paces writes by compaction debt: between the soft and hard thresholds the
   * write rate is limited to a share of the unpaced rate that shrinks with the
   * debt (WritePacer); at the hard threshold writes wait for compaction
   * progress. Gradual, so throughput and latency change smoothly instead of
   * falling off a cliff. Returns the debt the next group is paced at.
   */
  private async paceWrites(): Promise<number> {
    let debt = compactionDebt(this.versions.current, this.options)
    if (debt >= 1) {
      this.counters.stalls++
      const started = performance.now()
      // While closing no new compaction starts: let the queued writes through instead of waiting.
      while (debt >= 1 && !this.backgroundError && this.state === 'open') {
        await this.backgroundProgress()
        debt = compactionDebt(this.versions.current, this.options)
      }
      this.counters.stallMs += performance.now() - started
      if (this.backgroundError) throw this.backgroundError
    }
    if (debt > 0) {
      this.counters.slowdowns++
      const started = performance.now()
      const waitMs = this.pacer.waitMs(started)
      // Timers have millisecond resolution: shorter waits are carried by the bucket.
      if (waitMs >= 1) await new Promise<void>((resolve) => setTimeout(resolve, waitMs))
      this.counters.slowdownMs += performance.now() - started
    }
    return debt
  }

  private memtableFull(): boolean {
    return this.mem.approximateBytes >= this.options.memtableBytes
  }

  private freezeMemtable(): void {
    assert(this.applied.length === 0 && this.records.isEmpty, 'memtable frozen with writes not yet in its WAL')
    const number = this.versions.newFileNumber()
    const wal = WalWriter.create(path.join(this.dir, walFileName(number)), number)
    syncDirectory(this.dir)
    this.wal.close()
    this.wal = wal
    this.imms.push(this.mem)
    this.mem = new Memtable([number], this.recycler)
    this.records = new WalRecordBuilder(this.mem.arena, MAX_GROUP_BYTES)
    this.flusher.schedule()
  }

  private setBackgroundError(err: unknown): void {
    if (this.backgroundError) return
    const cause = err instanceof StrataError ? err : ioError('background operation failed', err)
    this.backgroundError = new StrataError(
      'STRATA_READ_ONLY',
      `database is read-only after a failed write: ${cause.message}`,
      { cause },
    )
    this.wakeBackgroundWaiters()
  }

  // ---- flush host --------------------------------------------------------

  frozenMemtables(): readonly Memtable[] {
    return this.imms
  }

  async installFlush(imm: Memtable, table: TableMeta | undefined): Promise<void> {
    assert(this.imms[0] === imm, 'flushed memtable is not the oldest')
    // Every WAL older than the next memtable's first WAL is now in tables.
    const logNumber = this.imms.length > 1 ? this.imms[1].firstWalNumber : this.mem.firstWalNumber
    await this.versions.logAndApply({ logNumber, deleted: [], added: table ? [{ level: 0, table }] : [] }, this.settledSequence)
    this.counters.flushes++
    this.counters.flushBytes += table?.fileBytes ?? 0
    // Reads that start from now on do not see it; open iterators keep their references.
    this.imms.shift()!.unref()
    this.deleteObsoleteFiles()
    this.compactions.maybeSchedule()
  }

  flushEnded(): void {
    this.wakeBackgroundWaiters()
  }

  hasBackgroundError(): boolean {
    return this.backgroundError !== undefined
  }

  /** Deletes tables no version uses, WALs already in tables, old manifests and temp files. */
  deleteObsoleteFiles(): void {
    const live = new Set<number>(this.versions.current.tableNumbers())
    for (const v of this.liveVersions) for (const n of v.tableNumbers()) live.add(n)
    for (const n of this.pendingOutputs) live.add(n)
    removeObsoleteFiles(this.dir, {
      liveTables: live,
      logNumber: this.versions.logNumber,
      manifestNumber: this.versions.manifestFileNumber,
      beforeTableDelete: (n) => this.tableCache.evict(n),
    })
  }

  // ---- reads -------------------------------------------------------------

  /** Newest version of `key` with sequence <= `sequence`; value null for a delete. */
  get(key: Buffer, sequence: number): Found | undefined {
    return readPoint(this.mem, this.imms, this.versions.current, this.tableCache, key, sequence)
  }

  /** A merged iterator over everything visible at `sequence`. */
  iterator(range: KeyRange, reverse: boolean, limit: number, sequence: number, closeAtEnd = true): DbIterator {
    const { children, release } = this.sources(range)
    return new DbIterator(children, sequence, range, reverse, limit, release, closeAtEnd)
  }

  /** A forward iterator over the range at the newest sequence (for commit-path checks). */
  private internalIterator(range: KeyRange): DbIterator {
    return this.iterator(range, false, Infinity, Number.MAX_SAFE_INTEGER)
  }

  /** One child iterator per source overlapping `range`, and the release of what they pin. */
  private sources(range: KeyRange): { children: InternalIterator[]; release: () => void } {
    const version = this.versions.current
    version.ref()
    this.liveVersions.add(version)
    const release = (): void => this.releaseVersion(version)
    try {
      return { children: openSources(this.mem, this.imms, version, this.tableCache, range), release }
    } catch (err) {
      release()
      throw err
    }
  }

  private releaseVersion(version: Version): void {
    if (!version.unref()) return
    this.liveVersions.delete(version)
    if (version !== this.versions.current && this.state === 'open') this.deleteObsoleteFiles()
  }

  // ---- lifecycle and stats -----------------------------------------------

  /** Waits for queued writes and running flushes and compactions, then releases everything. Idempotent. */
  close(): Promise<void> {
    this.closePromise ??= this.closeOnce()
    return this.closePromise
  }

  private async closeOnce(): Promise<void> {
    this.state = 'closing'
    while (this.drainPromise !== undefined) await this.drainPromise
    // Every write is in the WAL now; with flushOnClose the memtable goes to a
    // table too (the flush loop runs while closing, compactions do not start).
    if (this.options.flushOnClose && this.mem.entryCount > 0 && this.backgroundError === undefined) {
      while (this.imms.length >= this.options.maxImmutableMemtables && this.backgroundError === undefined) await this.backgroundProgress()
      if (this.backgroundError === undefined) this.freezeMemtable()
    }
    await this.flusher.close()
    await this.compactions.close()
    this.wal.close()
    this.versions.close()
    this.tableCache.close()
    // Drop the memtables' memory (iterators still open keep theirs until they close).
    this.mem.unref()
    for (const m of this.imms.splice(0)) m.unref()
    this.recycler.clear()
    this.releaseLock()
    this.state = 'closed'
  }

  stats(): EngineStats {
    return collectStats({
      options: this.options,
      version: this.versions.current,
      lastSequence: this.lastSequence,
      memtables: [this.mem, ...this.imms],
      recycledBytes: this.recycler.heldBytes,
      blockCache: this.blockCache,
      tableCache: this.tableCache,
      liveSnapshots: this.snapshots.size,
      writes: this.counters,
      compaction: this.compactions.stats,
      backgroundError: this.backgroundError?.message,
    })
  }

}
