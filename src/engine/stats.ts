import type { CompactionStats } from '../compaction/scheduler.js'
import type { MemoryBudget } from './memory-budget.js'

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
    blockCacheBytes: number
    tableReadersBytes: number
    /** The bound derived from the options (docs/design.md, "Memory"). */
    budget: MemoryBudget
  }
  blockCache: { capacityBytes: number; hits: number; misses: number }
  openTables: number
  liveSnapshots: number
  writes: {
    flushes: number
    /** Bytes written to tables by flushes. */
    flushBytes: number
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
  }
  compaction: CompactionStats
  /** Estimated bytes compaction still has to rewrite. */
  pendingCompactionBytes: number
  /** Per level: >= 1 means the level is due for compaction. */
  levelScores: number[]
  /** (WAL + flush + compaction bytes written) / user bytes written, since open. */
  writeAmplification: number
  /** Set when a failed write or flush made the database read-only. */
  backgroundError?: string
}
