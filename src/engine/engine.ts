import * as path from 'node:path'
import { assert } from '../base/assert.js'
import type { BlobResolver, Found, KeyRange, WriteOp } from '../base/entry.js'
import { BlobFileCache } from '../blob/blob-file-cache.js'
import { StrataError } from '../base/errors.js'
import { walFileName } from '../base/file-names.js'
import { syncDirectory, type FileSystem } from '../vfs/file-system.js'
import { BackgroundRunner } from '../compaction/background-runner.js'
import { CompactionScheduler, type CompactionHost } from '../compaction/scheduler.js'
import { DbIterator } from '../iterators/db-iterator.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'
import type { TableVersion } from '../manifest/table-version.js'
import type { TableVersionEdit } from '../manifest/table-version-edit.js'
import type { WrittenTable } from '../compaction/table-writer.js'
import type { TableVersionSet } from '../manifest/table-version-set.js'
import { Memtable } from '../memtable/memtable.js'
import type { Recycler } from '../memtable/recycler.js'
import type { ResolvedOptions } from '../options.js'
import { BlockCache } from '../sstable/block-cache.js'
import { TableCache } from '../sstable/table-cache.js'
import type { TableBuilderOptions } from '../sstable/table-builder.js'
import { tableLayout } from './table-layout.js'
import { WalWriter } from '../wal/wal-writer.js'
import { SnapshotList } from './snapshot-list.js'
import { FlushLoop, type FlushHost } from './flush-loop.js'
import { ObsoleteFileDeleter, type RetainedWals } from './obsolete-files.js'
import { ChangeCursors, type ChangeSource } from './change-cursor.js'
import { writeCheckpoint, type CheckpointHost, type CheckpointResult } from './checkpoint.js'
import { coveringRangeDelete, firstRangeDeleteSince, openSources, rangeDeletesAt, readPoint } from './read-path.js'
import type { Condition } from './write-group.js'
import { WritePath, type WriteHost } from './write-path.js'
import { collectStats, type EngineStats, type RecoveryReport } from './stats.js'
import type { FailureSite } from '../base/background-error.js'
import { Failures } from './failures.js'

/** What recovery hands to the engine. */
export interface RecoveredEngineState {
  dir: string
  options: ResolvedOptions
  tableVersions: TableVersionSet
  mem: Memtable
  /** Where memtables get their memory and return it once flushed. */
  recycler: Recycler
  /** The WAL new writes go to; undefined for a read-only view. */
  wal: WalWriter | undefined
  lastSequence: number
  releaseLock: () => void
  /** What the open replayed and dropped. */
  recovery: RecoveryReport
  /** The change cursors of the database (a resumed engine keeps its predecessor's). */
  changeCursors?: ChangeCursors
  /**
   * Set for a read-only view (read-only.ts): no WAL, no flush, compaction or
   * deletion, writes reject with STRATA_READ_ONLY; `release` lets go of the
   * files the view pinned once the engine is retired or closed.
   */
  readOnlyView?: { release(): void; options: ResolvedOptions }
}

/**
 * The running database: memtables and their WALs, table versions and caches,
 * the background flush and compactions, and reads. Writes go through the
 * write path (write-path.ts: write queue, group commit, pacing), which applies
 * them to the active memtable and appends them to its WAL. Arguments are
 * validated by the facade (db.ts) or txn/ before they reach here; this class asserts.
 */
export class Engine implements CompactionHost, FlushHost, WriteHost, ChangeSource, CheckpointHost {
  readonly dir: string
  readonly options: ResolvedOptions
  readonly fs: FileSystem
  readonly snapshots = new SnapshotList()
  readonly recovery: RecoveryReport
  /** Open change cursors: they keep the WALs they still read (obsolete-files.ts, WalRetention). */
  readonly changeCursors: ChangeCursors
  /** Woken at each commit, WAL switch and close (change cursors waiting for more). */
  private commitWaiters: Array<() => void> = []
  /** Replication: see WriteHost.commitGate (set by the replication layer; undefined on a single node). */
  commitGate: ((sequence: number) => Promise<void>) | undefined
  /** Replication, on a follower: the error every write of its own gets (only replicated records are appended). */
  refuseWrites: (() => Error) | undefined
  /** Replication, on a follower: see WriteHost.freezeLimit. */
  freezeLimit = Infinity
  private freezeLimitWaiters: Array<() => void> = []
  /** Checkpoints in progress: while any runs, no WAL is deleted. */
  private walDeletionHolds = 0
  /** What the last deletion pass kept for the change stream. */
  private retainedWals: RetainedWals = { files: 0, bytes: 0 }

  private mem: Memtable
  /** Frozen memtables, oldest first, waiting for (or in) flush. */
  private readonly imms: Memtable[] = []
  private readonly recycler: Recycler
  private wal: WalWriter | undefined
  /** Set for a read-only view: what releases its pinned files. */
  private readonly readOnlyView: { release(): void; options: ResolvedOptions } | undefined
  /** A read-only view replaced by a refresh: retire once no iterator or snapshot uses it. */
  private retireWhenUnpinned = false
  readonly tableVersions: TableVersionSet
  private readonly blockCache: BlockCache
  private readonly tableCache: TableCache
  /** Open blob files: separated values are read through it. */
  private readonly blobFiles: BlobFileCache
  private readonly resolveBlob: BlobResolver
  readonly minBlobBytes: number
  private readonly blobCounters = { filesWritten: 0, bytesWritten: 0 }
  /** Table versions held by iterators (besides the current one). */
  private readonly liveTableVersions = new Set<TableVersion>()
  /** Table numbers being written, not yet in any table version. */
  private readonly pendingOutputs = new Set<number>()
  /** Releases the directory's lock; handed on to the engine that resumes this one. */
  readonly releaseLock: () => void
  private readonly flushLoop: FlushLoop
  private readonly compactions: CompactionScheduler
  /** The write queue and group commit. */
  private readonly writePath: WritePath
  private readonly flushWaiters: Array<() => void> = []
  /** What failed: the failure that made the engine read-only (nothing is written or deleted after it), failed deletions. */
  private readonly failures: Failures
  private readonly obsoleteFiles: ObsoleteFileDeleter
  private state: 'open' | 'closing' | 'closed' = 'open'
  private closePromise: Promise<void> | undefined
  private readonly flushCounters = { flushes: 0, flushBytes: 0, flushMs: 0 }

  constructor(s: RecoveredEngineState) {
    this.dir = s.dir
    this.options = s.options
    this.fs = s.options.fileSystem
    this.recovery = s.recovery
    this.changeCursors = s.changeCursors ?? new ChangeCursors()
    this.failures = new Failures(s.options.onBackgroundError)
    this.obsoleteFiles = new ObsoleteFileDeleter(this.fs, this.dir, (err) => this.failures.deleteFailed(err))
    this.tableVersions = s.tableVersions
    this.mem = s.mem
    this.recycler = s.recycler
    this.wal = s.wal
    this.readOnlyView = s.readOnlyView
    assert((this.wal === undefined) === (this.readOnlyView !== undefined), 'a read-only view has no WAL, a writable engine has one')
    this.releaseLock = s.releaseLock
    this.blockCache = new BlockCache(s.options.blockCacheBytes)
    this.blobFiles = new BlobFileCache(this.fs, s.dir)
    this.resolveBlob = (reference, where) => this.blobFiles.read(reference, where)
    this.tableCache = new TableCache(this.fs, s.dir, this.blockCache, s.options.maxOpenTables, s.options.tableCacheBytes, this.resolveBlob)
    this.minBlobBytes = s.options.minBlobBytes
    this.writePath = new WritePath(this, s.lastSequence)
    // Flushes have a worker thread of their own, compactions theirs (see FlushLoop).
    this.flushLoop = new FlushLoop(this, new BackgroundRunner(this.fs))
    this.compactions = new CompactionScheduler(this)
  }

  /**
   * Starts the background work of a recovered engine. Entries replayed from
   * WAL files live in whole-file buffers: they are flushed to L0 right away
   * (as LevelDB does at recovery) instead of holding those buffers until the
   * memtable fills. Not on a replicated node: replayed entries may be an
   * uncommitted tail, which never reaches a table (docs/replication.md); its
   * freeze limit decides. Throws when the WAL for new writes cannot be
   * created; the caller then retires the engine.
   */
  start(flushReplayed: boolean): void {
    if (this.mem.replayed && flushReplayed) this.freezeMemtable()
    this.compactions.maybeSchedule()
  }

  // ---- compaction host -----------------------------------------------------

  /** Layout of the tables a compaction starting now writes (table-layout.ts). */
  get tableOptions(): TableBuilderOptions {
    return tableLayout(this.options, this.tableVersions.current, false)
  }

  /** Layout of the table a flush starting now writes (table-layout.ts). */
  get flushTableOptions(): TableBuilderOptions {
    return tableLayout(this.options, this.tableVersions.current, true)
  }

  snapshotSequences(): number[] {
    return this.snapshots.sequences()
  }

  reserveOutputs(count: number): number[] {
    const numbers: number[] = []
    for (let i = 0; i < count; i++) {
      const n = this.tableVersions.newFileNumber()
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

  onError(err: unknown, where: FailureSite): void {
    this.setBackgroundError(err, where)
  }

  canRunBackgroundWork(): boolean {
    return this.state === 'open' && this.failures.readOnly === undefined
  }

  currentSequence(): number {
    return this.lastSequence
  }

  get isOpen(): boolean {
    return this.state === 'open'
  }

  /** The error that made the database read-only (STRATA_READ_ONLY), if any. */
  get failure(): StrataError | undefined {
    return this.failures.readOnly?.error
  }

  /** Compacts the key range [start, end] down to the deepest populated level. */
  async compactRange(start: Buffer | undefined, end: Buffer | undefined): Promise<void> {
    // Frozen memtables too (one replayed at open, or frozen when full): what was written before the call is compacted.
    if (!this.mem.isEmpty || this.imms.length > 0) {
      await this.forceFlush()
    }
    await this.compactions.compactRange(start, end)
    // The files it made obsolete are gone when it resolves.
    await this.obsoleteFiles.idle()
    if (this.failures.readOnly) throw this.failures.readOnly.error
  }

  /** Freezes the memtable (after queued writes) and waits until every frozen memtable is flushed. */
  private async forceFlush(): Promise<void> {
    await this.freezeWhenWritten()
    while (this.imms.length > 0 && !this.failures.readOnly) await this.backgroundProgress()
  }

  /**
   * Freezes a non-empty active memtable once every write issued before the
   * call is in its WAL (the write path holds later writes back until then:
   * WritePath.freezeAfterWritten). Gives up when the engine has failed (no
   * flush would free a slot).
   */
  private async freezeWhenWritten(): Promise<void> {
    if (this.failures.readOnly) return
    await this.writePath.freezeAfterWritten()
  }

  /** Resolves at the next flush or compaction that finishes (or fails). */
  backgroundProgress(): Promise<void> {
    return new Promise<void>((resolve) => this.flushWaiters.push(resolve))
  }

  private wakeBackgroundWaiters(): void {
    for (const wake of this.flushWaiters.splice(0)) wake()
  }

  // ---- writes (the write path does the work) -----------------------------

  /**
   * Takes one caller's write; resolves once it is in the WAL (and synced when
   * asked). With `conditions`, rejects with STRATA_CONFLICT, writing nothing,
   * unless all of them hold against every write issued before it. Ordering
   * and when a write becomes visible: WritePath.write.
   */
  write(ops: WriteOp[], encodedBytes: number, sync: boolean, conditions?: Condition[], onAdmitted?: () => void): Promise<void> {
    if (this.readOnly) return Promise.reject(new StrataError('STRATA_READ_ONLY', `database ${this.dir} is open read-only`))
    if (this.refuseWrites !== undefined) return Promise.reject(this.refuseWrites())
    return this.writePath.write(ops, encodedBytes, sync, conditions, onAdmitted)
  }

  /** Writes a NOOP entry (WritePath.writeNoop); resolves with its sequence. */
  writeNoop(sync: boolean): Promise<number> {
    if (this.readOnly) return Promise.reject(new StrataError('STRATA_READ_ONLY', `database ${this.dir} is open read-only`))
    if (this.refuseWrites !== undefined) return Promise.reject(this.refuseWrites())
    return this.writePath.writeNoop(sync)
  }

  /** The replication epoch new WAL records carry (WritePath.setEpoch). */
  setEpoch(epoch: number): void {
    this.writePath.setEpoch(epoch)
  }

  /** Appends a replicated record verbatim (WritePath.writeRecord). */
  writeRecord(payload: Buffer, sync: boolean): Promise<void> {
    if (this.readOnly) return Promise.reject(new StrataError('STRATA_READ_ONLY', `database ${this.dir} is open read-only`))
    return this.writePath.writeRecord(payload, sync)
  }

  /** True for a read-only view (open with `readOnly`). */
  get readOnly(): boolean {
    return this.readOnlyView !== undefined
  }

  /** A read-only view's options as given to open (a refresh loads the next view with them). */
  get readOnlyOptions(): ResolvedOptions | undefined {
    return this.readOnlyView?.options
  }

  /**
   * Resolves, once every write issued before this call has settled, with the
   * sequence number right after the last of them: reading at it sees those
   * writes and none issued later. Undefined when nothing is in flight.
   */
  writesBefore(): Promise<number> | undefined {
    return this.writePath.writesBefore()
  }

  /** Sequence of the newest write settled (resolved): what reads see. */
  get visibleSequence(): number {
    return this.writePath.visibleSequence
  }

  /**
   * Sequence of the newest write applied to the memtable: admitted, maybe not
   * yet in the WAL. Reads see `visibleSequence`; transactions and conditions
   * see this.
   */
  get lastSequence(): number {
    return this.writePath.lastSequence
  }

  // ---- checkpoints ---------------------------------------------------------

  /** A consistent copy of the database in `target` (checkpoint.ts). */
  checkpoint(target: string): Promise<CheckpointResult> {
    return writeCheckpoint(this, target)
  }

  /** Pins the current table version as an iterator does: its tables are not deleted until the release. */
  pinTableVersion(): { tableVersion: TableVersion; release: () => void } {
    const tableVersion = this.tableVersions.current
    tableVersion.ref()
    this.liveTableVersions.add(tableVersion)
    return { tableVersion, release: () => this.releaseTableVersion(tableVersion) }
  }

  /** No WAL is deleted until the release (a checkpoint copies them). */
  holdWalDeletion(): () => void {
    this.walDeletionHolds++
    let released = false
    return () => {
      if (released) return
      released = true
      this.walDeletionHolds--
    }
  }

  // ---- change stream -------------------------------------------------------

  /** The active WAL and how many of its bytes hold resolved writes. */
  committedWal(): { number: number; bytes: number } {
    assert(this.wal !== undefined, 'no change stream on a read-only view')
    return { number: this.wal.number, bytes: this.writePath.committedWalBytes }
  }

  /** Resolves at the next commit, WAL switch or close. */
  nextCommit(): Promise<void> {
    if (this.state !== 'open') return Promise.resolve()
    return new Promise<void>((resolve) => this.commitWaiters.push(resolve))
  }

  walCommitted(): void {
    if (this.commitWaiters.length > 0) this.wakeCommitWaiters()
  }

  /** Records in the WAL, committed or not (what replication ships), and the sequence they end at. */
  writtenWal(): { number: number; bytes: number; sequence: number } {
    assert(this.wal !== undefined, 'no change stream on a read-only view')
    return { number: this.wal.number, bytes: this.writePath.writtenWalBytes, sequence: this.writePath.writtenSequence }
  }

  /** A follower learned that every entry up to `sequence` is committed: memtables up to it may be frozen. */
  setFreezeLimit(sequence: number): void {
    assert(sequence >= 0, 'freeze limit below 0')
    this.freezeLimit = sequence
    this.wakeFreezeLimitWaiters()
  }

  freezeLimitProgress(): Promise<void> {
    if (this.state !== 'open' || this.failures.readOnly) return Promise.resolve()
    return new Promise<void>((resolve) => this.freezeLimitWaiters.push(resolve))
  }

  private wakeFreezeLimitWaiters(): void {
    const waiters = this.freezeLimitWaiters
    this.freezeLimitWaiters = []
    for (const wake of waiters) wake()
  }

  private wakeCommitWaiters(): void {
    const waiters = this.commitWaiters
    this.commitWaiters = []
    for (const wake of waiters) wake()
  }

  /** Lets chains of transaction turns share WAL writes: see WritePath.holdGroupsWhile. */
  holdWriteGroupsWhile(more: () => boolean): void {
    this.writePath.holdGroupsWhile = more
  }

  // ---- write host ----------------------------------------------------------

  currentTableVersion(): TableVersion {
    return this.tableVersions.current
  }

  activeMemtable(): Memtable {
    return this.mem
  }

  activeWal(): WalWriter {
    assert(this.wal !== undefined, 'write on a read-only view')
    return this.wal
  }

  /** Sequence of the write that produced the key's value at `sequence`; 0 when absent or deleted. */
  versionOf(key: Buffer, sequence: number): number {
    const found = this.get(key, sequence, false)
    return found === undefined || found.v === null ? 0 : found.s
  }

  /** The first key in `range` with any entry (put or delete) newer than `sinceSequence`, if one exists. */
  firstChangeSince(range: KeyRange, sinceSequence: number): Buffer | undefined {
    const deleted = firstRangeDeleteSince(this.mem, this.imms, this.tableVersions.current, range, sinceSequence)
    if (deleted !== undefined) return deleted
    const it = this.internalIterator(range)
    try {
      return it.firstNewerThan(sinceSequence)
    } finally {
      it.close()
    }
  }

  /**
   * Freezes the active memtable (it waits for flush) and starts the next one
   * with a new WAL. Only when every applied write is in the active WAL (asserted).
   */
  freezeMemtable(): void {
    assert(this.writePath.allWritten, 'memtable frozen with writes not yet in its WAL')
    const number = this.tableVersions.newFileNumber()
    const wal = WalWriter.create(this.fs, path.join(this.dir, walFileName(number)), number)
    try {
      // The new WAL's directory entry is durable before any write is acknowledged from it.
      syncDirectory(this.fs, this.dir)
    } catch (err) {
      wal.close()
      throw err
    }
    this.wal?.close()
    this.wal = wal
    this.imms.push(this.mem)
    this.mem = new Memtable([number], this.recycler)
    this.writePath.memtableSwitched()
    this.flushLoop.schedule()
    this.wakeCommitWaiters()
  }

  /**
   * The first failed write, fsync, rename, flush or compaction makes the
   * engine read-only (as RocksDB's background error): reads go on, writes
   * reject with STRATA_READ_ONLY, no flush or compaction starts and no file
   * is deleted (an edit whose sync failed may still be replayed at the next
   * open, so whatever it references must stay). `resume()` leaves the state.
   */
  private setBackgroundError(err: unknown, where: FailureSite): void {
    // A flush or compaction that failed in its manifest edit failed in the manifest.
    const site = this.tableVersions.failed !== undefined && err === this.tableVersions.failed ? 'manifest' : where
    if (this.failures.setReadOnly(err, site)) {
      this.wakeBackgroundWaiters()
      this.wakeFreezeLimitWaiters()
    }
  }

  // ---- flush host --------------------------------------------------------

  frozenMemtables(): readonly Memtable[] {
    return this.imms
  }

  async installFlush(imm: Memtable, { table, blobFile }: WrittenTable, startedMs: number): Promise<void> {
    assert(this.imms[0] === imm, 'flushed memtable is not the oldest')
    // Every WAL older than the next memtable's first WAL is now in tables.
    const logNumber = this.imms.length > 1 ? this.imms[1].firstWalNumber : this.mem.firstWalNumber
    const edit: TableVersionEdit = { logNumber, deleted: [], added: table ? [{ level: 0, table }] : [] }
    if (blobFile !== undefined) edit.blobsAdded = [{ ...blobFile, garbageCount: 0, garbageBytes: 0 }]
    if (imm.rangeTombstones.length > 0) edit.rangeTombstonesAdded = [...imm.rangeTombstones]
    await this.tableVersions.logAndApply(edit, this.writePath.visibleSequence)
    const flushMs = performance.now() - startedMs
    this.flushCounters.flushes++
    this.flushCounters.flushMs += flushMs
    this.writePath.throttle.flushFinished(imm.approximateBytes, flushMs)
    this.flushCounters.flushBytes += (table?.fileBytes ?? 0) + (blobFile?.fileBytes ?? 0)
    if (blobFile !== undefined) (this.blobCounters.filesWritten++, (this.blobCounters.bytesWritten += blobFile.fileBytes))
    // Reads that start from now on do not see it; open iterators keep their references.
    this.imms.shift()!.unref()
    this.deleteObsoleteFiles()
    this.compactions.maybeSchedule()
  }

  flushStarted(startedMs: number): void {
    this.writePath.throttle.flushStarted(startedMs)
  }

  flushEnded(): void {
    this.writePath.throttle.flushEnded()
    this.wakeBackgroundWaiters()
  }

  hasBackgroundError(): boolean {
    return this.failures.readOnly !== undefined
  }

  /**
   * Deletes tables no table version uses, WALs already in tables, old manifests and
   * temp files. Never after a failure (see setBackgroundError). A failed
   * deletion is reported, not fatal: the file costs space until the next try.
   * The unlinks run afterwards on the thread pool (obsolete-files.ts).
   */
  deleteObsoleteFiles(): void {
    if (this.failures.readOnly || this.readOnly) return
    const live = new Set<number>(this.tableVersions.current.tableNumbers())
    for (const n of this.tableVersions.current.blobFileNumbers()) live.add(n)
    for (const v of this.liveTableVersions) {
      for (const n of v.tableNumbers()) live.add(n)
      for (const n of v.blobFileNumbers()) live.add(n)
    }
    for (const n of this.pendingOutputs) live.add(n)
    this.retainedWals = this.obsoleteFiles.deleteObsolete({
      liveTables: live,
      // While a checkpoint copies WALs, none is obsolete.
      logNumber: this.walDeletionHolds > 0 ? 0 : this.tableVersions.logNumber,
      manifestNumber: this.tableVersions.manifestFileNumber,
      beforeTableDelete: (n) => this.tableCache.evict(n),
      beforeBlobDelete: (n) => this.blobFiles.drop(n),
      walRetention: {
        pinnedFrom: this.changeCursors.pinnedFrom(),
        bytes: this.options.walRetentionBytes,
        ms: this.options.walRetentionMs,
        nowMs: Date.now(),
      },
    })
  }

  /** Resolves once every obsolete-file deletion started so far is done. */
  obsoleteFilesDeleted(): Promise<void> {
    return this.obsoleteFiles.idle()
  }

  // ---- reads -------------------------------------------------------------

  /** Newest version of `key` with sequence <= `sequence`; value null for a delete (VALUE_NOT_READ for a put without `wantValue`). */
  get(key: Buffer, sequence: number, wantValue = true): Found | undefined {
    const tableVersion = this.tableVersions.current
    const found = readPoint(this.mem, this.imms, tableVersion, this.tableCache, key, sequence, wantValue)
    const cover = coveringRangeDelete(this.mem, this.imms, tableVersion, key, sequence)
    // A range delete newer than the version found (or over a key not found): deleted at the range delete's sequence.
    if (cover > 0 && (found === undefined || found.s < cover)) return { s: cover, v: null, e: 0 }
    if (found === undefined || found.e === 0 || found.e > this.options.clock()) return found
    // Expired: from its expiry time on, a put reads as a delete of the same sequence.
    return { s: found.s, v: null, e: 0 }
  }

  /** A merged iterator over everything visible at `sequence`. */
  iterator(range: KeyRange, reverse: boolean, limit: number, sequence: number, closeAtEnd = true, values = true): DbIterator {
    const rangeDeletes = rangeDeletesAt(this.mem, this.imms, this.tableVersions.current, sequence)
    const { children, release } = this.sources(range)
    return new DbIterator(children, sequence, range, reverse, limit, release, closeAtEnd, values, values ? this.blobFiles.scanReader(reverse) : undefined, this.options.clock, rangeDeletes)
  }

  /** A forward iterator over the range at the newest sequence (for commit-path checks). */
  private internalIterator(range: KeyRange): DbIterator {
    return this.iterator(range, false, Infinity, Number.MAX_SAFE_INTEGER)
  }

  /** One child iterator per source overlapping `range`, and the release of what they pin. */
  private sources(range: KeyRange): { children: InternalIterator[]; release: () => void } {
    const { tableVersion, release } = this.pinTableVersion()
    try {
      return { children: openSources(this.mem, this.imms, tableVersion, this.tableCache, range), release }
    } catch (err) {
      release()
      throw err
    }
  }

  private releaseTableVersion(tableVersion: TableVersion): void {
    if (!tableVersion.unref()) return
    this.liveTableVersions.delete(tableVersion)
    if (tableVersion !== this.tableVersions.current && this.state === 'open') this.deleteObsoleteFiles()
    this.retireIfUnpinned()
  }

  /** A snapshot on this engine was released. */
  releaseSnapshot(sequence: number): void {
    this.snapshots.remove(sequence)
    this.retireIfUnpinned()
  }

  /**
   * A read-only view a refresh replaced: retired now, or once the last
   * iterator or snapshot reading it is released (they keep reading the
   * state they started on).
   */
  retireWhenReleased(): void {
    this.retireWhenUnpinned = true
    this.retireIfUnpinned()
  }

  private retireIfUnpinned(): void {
    if (this.retireWhenUnpinned && !this.pinsState && this.state === 'open') this.retire()
  }

  // ---- lifecycle and stats -----------------------------------------------

  /** Waits for queued writes and running flushes and compactions, then releases everything. Idempotent. */
  close(): Promise<void> {
    this.closePromise ??= this.closeOnce()
    return this.closePromise
  }

  private async closeOnce(): Promise<void> {
    this.state = 'closing'
    // A follower's write path waiting to freeze committed entries gives up: the rest stays in the WAL.
    this.wakeFreezeLimitWaiters()
    while (this.writePath.currentDrain !== undefined) await this.writePath.currentDrain
    // Every write is in the WAL now; with flushOnClose the memtable goes to a
    // table too (the flush loop runs while closing, compactions do not start).
    // A failure there loses nothing (the WAL holds the writes): it is
    // reported and the close goes on, so the lock is always released.
    try {
      if (this.options.flushOnClose && !this.readOnly) await this.freezeWhenWritten()
    } catch (err) {
      this.setBackgroundError(err, 'memtable-switch')
    }
    await this.flushLoop.close()
    await this.compactions.close()
    await this.obsoleteFiles.idle()
    this.changeCursors.closeAll()
    this.releaseResources()
    this.releaseLock()
  }

  /** Open iterators or snapshots: a resume would have to keep this engine's tables and memtables for them. */
  get pinsState(): boolean {
    return this.liveTableVersions.size > 0 || this.snapshots.size > 0
  }

  /**
   * Before a resume: waits for queued writes to settle (they reject, the
   * engine has failed) and stops flushes and compactions. Reads go on.
   */
  async stopBackgroundWork(): Promise<void> {
    while (this.writePath.currentDrain !== undefined) await this.writePath.currentDrain
    await this.flushLoop.close()
    await this.compactions.close()
    await this.obsoleteFiles.idle()
  }

  /** A resume failed: its error becomes the reported failure (the cause is still there). */
  noteResumeFailure(err: unknown): void {
    this.failures.replaceReadOnly(err)
  }

  /** After a resume took over: closes files and frees memory, keeping the lock (the new engine holds it). */
  retire(): void {
    this.state = 'closing'
    this.releaseResources()
  }

  private releaseResources(): void {
    this.wal?.close()
    this.readOnlyView?.release()
    this.tableVersions.close()
    this.tableCache.close()
    this.blobFiles.close()
    // Drop the memtables' memory (iterators still open keep theirs until they close).
    this.mem.unref()
    for (const m of this.imms.splice(0)) m.unref()
    this.recycler.clear()
    this.state = 'closed'
    this.wakeCommitWaiters()
    this.wakeFreezeLimitWaiters()
  }

  stats(): EngineStats {
    return collectStats({
      options: this.options,
      tableVersion: this.tableVersions.current,
      lastSequence: this.lastSequence,
      memtables: [this.mem, ...this.imms],
      recycledBytes: this.recycler.heldBytes,
      blockCache: this.blockCache,
      tableCache: this.tableCache,
      blobs: { ...this.blobCounters, valuesRead: this.blobFiles.reads, valueBytesRead: this.blobFiles.readBytes },
      liveSnapshots: this.snapshots.size,
      writes: { ...this.flushCounters, ...this.writePath.counters },
      compaction: this.compactions.stats,
      failure: this.failures.readOnly,
      deleteFailures: this.failures.deletes,
      recovery: this.recovery,
      changes: { cursors: this.changeCursors.size, retainedWalFiles: this.retainedWals.files, retainedWalBytes: this.retainedWals.bytes },
    })
  }

}
