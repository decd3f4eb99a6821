/** A point-in-time report of the engine's state (`db.stats()`). */
export interface EngineStats {
  /** Sequence number of the newest applied write. */
  lastSequence: number
  /** Table count and bytes per level, L0 first. */
  levels: Array<{ level: number; tables: number; bytes: number }>
  memtable: { activeBytes: number; immutableCount: number }
  /** Memory in use by part, in bytes. */
  memory: { memtableBytes: number; blockCacheBytes: number; tableReadersBytes: number }
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
    stalls: number
    stallMs: number
    syncs: number
  }
  /** Set when a failed write or flush made the database read-only. */
  backgroundError?: string
}
