import * as path from 'node:path'
import { assert } from '../base/assert.js'
import { StrataError, ioError } from '../base/errors.js'
import { walFileName } from '../base/file-names.js'
import { syncDirectory } from '../base/fs-util.js'
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
import { encodeWalRecord, type WriteOp } from '../wal/wal-record.js'
import { SnapshotList } from './snapshot-list.js'
import { Flusher, type FlushHost } from './flusher.js'
import { removeObsoleteFiles } from './obsolete-files.js'
import { openSources, readPoint } from './read-path.js'
import { admitWrites } from './conditions.js'
import { MAX_SLOWDOWN_MS, compactionDebt } from './write-pacing.js'
import { takeGroup, type Condition, type PendingWrite } from './write-group.js'
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
 * Write path: callers enqueue; one drain at a time takes a FIFO group, appends
 * it to the WAL as one record (write(2)), fsyncs when any member asked for it,
 * applies it to the memtable and resolves the members in order.
 */
export class Engine implements CompactionHost, FlushHost {
  readonly dir: string
  readonly options: ResolvedOptions
  /** Sequence of the newest write applied to the memtable (visible to reads). */
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
  private readonly flusher = new Flusher(this)
  private readonly compactions: CompactionScheduler

  private readonly queue: PendingWrite[] = []
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
    this.compactions = new CompactionScheduler(this)
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
    const pending = this.writesBefore()
    if (pending !== undefined) await pending
    while (this.imms.length >= this.options.maxImmutableMemtables) await this.backgroundProgress()
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
   * Queues one caller's write; resolves once it is in the WAL (and synced when
   * asked). With `conditions`, rejects with STRATA_CONFLICT, writing nothing,
   * unless all of them hold when the write reaches the head of the queue.
   */
  write(ops: WriteOp[], encodedBytes: number, sync: boolean, conditions?: Condition[]): Promise<void> {
    assert(this.state === 'open', 'write on a closed engine')
    if (this.backgroundError) return Promise.reject(this.backgroundError)
    return new Promise<void>((resolve, reject) => {
      const ticket = ++this.writesIssued
      this.queue.push({ ops, encodedBytes, sync: sync || this.options.syncWrites, conditions, ticket, resolve, reject })
      if (this.drainPromise === undefined) {
        this.drainPromise = Promise.resolve().then(() => this.drain())
      }
    })
  }

  /**
   * Resolves, once every write queued before this call has settled, with the
   * sequence number right after the last of them: reading at it sees those
   * writes and none issued later. Undefined when nothing is in flight.
   */
  writesBefore(): Promise<number> | undefined {
    if (this.writesSettled === this.writesIssued) return undefined
    const ticket = this.writesIssued
    return new Promise((resolve) => this.settleWaiters.push({ ticket, resolve }))
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        if (this.backgroundError) {
          this.settle(this.queue.splice(0), this.backgroundError)
          break
        }
        try {
          if (this.memtableFull()) await this.makeRoomForWrite()
          if (this.options.autoCompaction && compactionDebt(this.versions.current, this.options) > 0) await this.paceWrites()
        } catch (err) {
          this.setBackgroundError(err)
          continue
        }
        if (++this.groupsSinceYield >= GROUPS_PER_EVENT_LOOP_TURN) {
          // Writes that never wait on I/O resolve through microtasks only; let timers and I/O run.
          this.groupsSinceYield = 0
          await new Promise<void>((resolve) => setImmediate(resolve))
        }
        const group = takeGroup(this.queue)
        await this.commitGroup(group)
      }
    } finally {
      this.drainPromise = undefined
    }
  }

  private async commitGroup(taken: PendingWrite[]): Promise<void> {
    const group = taken.some((w) => w.conditions !== undefined) ? admitWrites(taken, this) : taken
    if (group.length === 0) return this.settle(taken, undefined)
    let ops: WriteOp[]
    let bytes = 0
    let sync = false
    if (group.length === 1) {
      ops = group[0].ops
      bytes = group[0].encodedBytes
      sync = group[0].sync
    } else {
      ops = []
      for (const w of group) {
        for (const op of w.ops) ops.push(op)
        bytes += w.encodedBytes
        sync ||= w.sync
      }
    }
    if (ops.length === 0) {
      // Only preconditions (all held): nothing to log.
      this.settle(taken, undefined)
      return
    }
    const firstSequence = this.lastSequence + 1
    const offsets: number[] = []
    let record: Buffer
    try {
      const arena = this.mem.arena
      record = encodeWalRecord(firstSequence, ops, bytes, offsets, (size) => arena.allocate(size))
      try {
        this.wal.append(record)
      } catch (err) {
        arena.release(record)
        throw err
      }
      this.counters.walBytes += record.length
      if (sync) {
        this.counters.syncs++
        this.groupsSinceYield = 0
        await this.wal.sync()
      }
    } catch (err) {
      // The WAL tail is now unknown: later appends could sit behind garbage. Stop writing.
      this.setBackgroundError(err)
      this.settle(taken, this.backgroundError)
      return
    }
    let seq = firstSequence
    // Keys and values stay in the record buffer: the memtable keeps offsets.
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]
      const ks = offsets[2 * i]
      const vs = offsets[2 * i + 1]
      this.mem.addRange(record, seq++, ks, ks + op.key.length, vs, op.value === null ? -1 : vs + op.value.length)
    }
    this.lastSequence = seq - 1
    this.counters.writeGroups++
    this.counters.writes += group.length
    this.counters.userBytes += bytes
    this.settle(taken, undefined)
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
   * Paces writes by compaction debt: a delay per write group that grows from
   * ~1 ms at the soft threshold to MAX_SLOWDOWN_MS near the hard one, and a
   * wait for compaction progress at the hard threshold. Gradual, so write
   * latency rises smoothly instead of falling off a cliff.
   */
  private async paceWrites(): Promise<void> {
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
      const delayMs = Math.max(1, Math.round(debt * MAX_SLOWDOWN_MS))
      const started = performance.now()
      await new Promise<void>((resolve) => setTimeout(resolve, delayMs))
      this.counters.slowdownMs += performance.now() - started
    }
  }

  private memtableFull(): boolean {
    return this.mem.approximateBytes >= this.options.memtableBytes
  }

  private freezeMemtable(): void {
    const number = this.versions.newFileNumber()
    const wal = WalWriter.create(path.join(this.dir, walFileName(number)), number)
    syncDirectory(this.dir)
    this.wal.close()
    this.wal = wal
    this.imms.push(this.mem)
    this.mem = new Memtable([number], this.recycler)
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
    await this.versions.logAndApply({ logNumber, deleted: [], added: table ? [{ level: 0, table }] : [] }, this.lastSequence)
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
