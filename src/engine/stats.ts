import type { CompactionStats } from '../compaction/scheduler.js'
import { levelScores, pendingCompactionBytes } from '../compaction/picker.js'
import type { TableVersion } from '../manifest/table-version.js'
import type { Memtable } from '../memtable/memtable.js'
import type { ResolvedOptions } from '../options.js'
import type { BlockCache } from '../sstable/block-cache.js'
import type { TableCache } from '../sstable/table-cache.js'
import { memoryBudget, type MemoryBudget } from './memory-budget.js'
import type { BackgroundErrorInfo, FailureSite } from '../base/background-error.js'

/** What an open found and dropped (`stats().recovery`). */
export interface RecoveryReport {
  /** WAL files replayed. */
  walFiles: number
  /** Intact WAL records replayed, and the entries they held. */
  walRecords: number
  walEntries: number
  /**
   * Torn or damaged WAL tails that were dropped, one per file that had one:
   * the bytes after its last intact record and the records they held. A
   * crash in the middle of an append leaves one; so does a damaged last
   * record (a damaged record followed by intact ones is STRATA_CORRUPTION).
   */
  droppedTails: Array<{ file: string; bytes: number; records: number }>
  /** One line per thing the open dropped or repaired, for logs. */
  warnings: string[]
}

/** A failure as `stats()` reports it. */
export interface FailureReport {
  message: string
  where: FailureSite
  /** ENOSPC, EIO, ... when the operating system gave one. */
  errno: string | undefined
  /** Date.now() when it happened. */
  atMs: number
}

/** A point-in-time report of the engine's state (`db.stats()`). */
export interface EngineStats {
  /** Sequence number of the newest applied write. */
  lastSequence: number
  /** Table count and bytes per level, L0 first. */
  levels: Array<{ level: number; tables: number; bytes: number }>
  memtable: { activeBytes: number; immutableCount: number }
  /** Memory in use by part, in bytes. */
  memory: {
    memtableBytes: number
    /** Memtable buffers kept for the next memtables (record chunks, pages, hash table). */
    recycledBytes: number
    blockCacheBytes: number
    tableReadersBytes: number
    /** The bound derived from the options (docs/design.md, "Memory"). */
    budget: MemoryBudget
  }
  blockCache: { capacityBytes: number; hits: number; misses: number }
  openTables: number
  /** Open tables whose point reads use their point index (the others use their Bloom filter). */
  pointIndexedTables: number
  liveSnapshots: number
  writes: {
    flushes: number
    /** Bytes written to tables and blob files by flushes. */
    flushBytes: number
    /** Time flushes took, from the start of the job to its installed table (summed). */
    flushMs: number
    /** Bytes appended to WALs. */
    walBytes: number
    writeGroups: number
    writes: number
    /** Write groups that waited for compaction (hard threshold) or for a flush slot. */
    stalls: number
    stallMs: number
    /** Write groups delayed in proportion to compaction debt (soft threshold). */
    slowdowns: number
    slowdownMs: number
    syncs: number
    /** Key and value bytes written by callers (as encoded in the WAL). */
    userBytes: number
    /** The stalls and slowdowns above by cause: where every wait of a write group came from. */
    waits: Record<WaitCause, WaitStats>
  }
  compaction: CompactionStats
  /** Estimated bytes compaction still has to rewrite. */
  pendingCompactionBytes: number
  /** Per level: >= 1 means the level is due for compaction. */
  levelScores: number[]
  /** (WAL + flush + compaction bytes written) / user bytes written, since open. */
  writeAmplification: number
  /** Set when a failed write or flush made the database read-only: its message (`failure` says more). */
  backgroundError?: string
  /** What made the database read-only: where, the errno, when. `db.resume()` clears it. */
  failure?: FailureReport
  /** Failed deletions of obsolete files (not fatal; retried after the next flush or compaction), and the last one. */
  deleteFailures: { count: number; last: FailureReport | undefined }
  /** What the open (or the last resume) replayed from the WALs and what it dropped. */
  recovery: RecoveryReport
  /** The change stream: open cursors, and the WAL files kept for it after their writes reached tables. */
  changes: ChangeStats
  /** Separated values (blob files): what is on disk, what of it is garbage, and the work on them. */
  blobs: BlobStats
}

export interface BlobStats {
  /** Blob files the current table version holds, their bytes, and the value bytes in them. */
  files: number
  fileBytes: number
  valueBytes: number
  /** Value bytes in them that no table references any more (compactions dropped or moved the references). */
  garbageBytes: number
  /** Blob files written by flushes and their bytes, since open. */
  filesWritten: number
  bytesWritten: number
  /** Values read from blob files by reads and iterators, and their bytes, since open. */
  valuesRead: number
  valueBytesRead: number
  /** Bytes garbage collection moved to new blob files (compaction.blobBytesRelocated), since open. */
  bytesRelocated: number
}

/**
 * Why a write group waited: `flushSlot`, the memtable was full and
 * `maxImmutableMemtables` frozen memtables were still waiting for their
 * flush; `freezeLimit`, a replicated node's memtable was full of entries not
 * yet committed; `l0Stop` / `pendingCompactionStop`, compaction debt at its
 * hard threshold (L0 files at `l0StopTrigger`, pending compaction bytes at
 * `hardPendingCompactionBytes`); `l0Slowdown` / `pendingCompactionSlowdown`,
 * paced between the soft and hard thresholds (docs/design.md, "Write
 * pacing"). The cause of compaction debt is the larger of its two measures.
 * `flushSlowdown`: paced so that the active memtable does not fill before
 * the running flush is expected to end (which would be a `flushSlot` wait).
 */
export type WaitCause = 'flushSlot' | 'freezeLimit' | 'l0Stop' | 'pendingCompactionStop' | 'l0Slowdown' | 'pendingCompactionSlowdown' | 'flushSlowdown'

/** Waits of one cause: how many, their total and longest time, and how many lasted 50 ms or more. */
export interface WaitStats {
  count: number
  ms: number
  maxMs: number
  over50Ms: number
}

export function emptyWaits(): Record<WaitCause, WaitStats> {
  const w = (): WaitStats => ({ count: 0, ms: 0, maxMs: 0, over50Ms: 0 })
  return { flushSlot: w(), freezeLimit: w(), l0Stop: w(), pendingCompactionStop: w(), l0Slowdown: w(), pendingCompactionSlowdown: w(), flushSlowdown: w() }
}

export interface ChangeStats {
  cursors: number
  retainedWalFiles: number
  retainedWalBytes: number
}

/** The engine parts a stats report is assembled from. */
export interface StatsSources {
  options: ResolvedOptions
  tableVersion: TableVersion
  lastSequence: number
  /** Active memtable first, then the frozen ones. */
  memtables: Memtable[]
  recycledBytes: number
  blockCache: BlockCache
  tableCache: TableCache
  liveSnapshots: number
  writes: EngineStats['writes']
  compaction: CompactionStats
  failure: BackgroundErrorInfo | undefined
  deleteFailures: { count: number; last: BackgroundErrorInfo | undefined }
  recovery: RecoveryReport
  changes: ChangeStats
  blobs: { filesWritten: number; bytesWritten: number; valuesRead: number; valueBytesRead: number }
}

function failureReport(info: BackgroundErrorInfo | undefined): FailureReport | undefined {
  if (info === undefined) return undefined
  const cause = info.error.cause instanceof Error ? info.error.cause.message : info.error.message
  return { message: cause, where: info.where, errno: info.errno, atMs: info.atMs }
}

export function collectStats(s: StatsSources): EngineStats {
  const levels = s.tableVersion.levels.map((tables, level) => ({
    level,
    tables: tables.length,
    bytes: tables.reduce((n, t) => n + t.fileBytes, 0),
  }))
  const [active] = s.memtables
  const w = s.writes
  return {
    lastSequence: s.lastSequence,
    levels,
    memtable: { activeBytes: active.approximateBytes, immutableCount: s.memtables.length - 1 },
    memory: {
      memtableBytes: s.memtables.reduce((n, m) => n + m.approximateBytes, 0),
      recycledBytes: s.recycledBytes,
      blockCacheBytes: s.blockCache.memoryBytes,
      tableReadersBytes: s.tableCache.residentBytes,
      budget: memoryBudget(s.options),
    },
    blockCache: { capacityBytes: s.blockCache.capacityBytes, hits: s.blockCache.hits, misses: s.blockCache.misses },
    openTables: s.tableCache.openCount,
    pointIndexedTables: s.tableCache.pointIndexedCount,
    liveSnapshots: s.liveSnapshots,
    writes: { ...w, waits: Object.fromEntries(Object.entries(w.waits).map(([k, v]) => [k, { ...v }])) as Record<WaitCause, WaitStats> },
    compaction: { ...s.compaction, byReason: { ...s.compaction.byReason } },
    pendingCompactionBytes: pendingCompactionBytes(s.tableVersion, s.options),
    levelScores: levelScores(s.tableVersion, s.options),
    writeAmplification: w.userBytes === 0 ? 0 : (w.walBytes + w.flushBytes + s.compaction.bytesWritten) / w.userBytes,
    backgroundError: s.failure?.error.message,
    failure: failureReport(s.failure),
    deleteFailures: { count: s.deleteFailures.count, last: failureReport(s.deleteFailures.last) },
    recovery: { ...s.recovery, droppedTails: s.recovery.droppedTails.map((t) => ({ ...t })), warnings: [...s.recovery.warnings] },
    changes: { ...s.changes },
    blobs: blobStats(s),
  }
}

function blobStats(s: StatsSources): BlobStats {
  let fileBytes = 0
  let valueBytes = 0
  let garbageBytes = 0
  for (const b of s.tableVersion.blobs.values()) {
    fileBytes += b.fileBytes
    valueBytes += b.valueBytes
    garbageBytes += b.garbageBytes
  }
  return { files: s.tableVersion.blobs.size, fileBytes, valueBytes, garbageBytes, ...s.blobs, bytesRelocated: s.compaction.blobBytesRelocated }
}
