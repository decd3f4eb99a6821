import type { ResolvedOptions } from '../options.js'
import { slabBytesFor } from '../sstable/block-cache.js'

/**
 * The memory the engine may use, derived from its options (docs/design.md,
 * "Memory"). Each term is the most that part holds live:
 *
 *   memtables      (1 + maxImmutableMemtables) × memtableBytes
 *                  (each memtable counts its record chunks, entry pages and
 *                  hash table; the recycler's kept buffers stand in for
 *                  allocations, since the active memtable takes them first)
 *   block cache    blockCacheBytes + one slab (at most 1 MiB; block-cache.ts)
 *   table readers  tableCacheBytes (index and filter of open tables)
 *   workers        (1 + maxConcurrentCompactions) × WORKER_BYTES (the flushes'
 *                  thread and one per concurrent compaction)
 *
 * On top of live data, V8 lets garbage accumulate between collections; that
 * headroom is GC_HEADROOM_BYTES. The engine bounds each part by construction;
 * the memory test checks the process's RSS against the total.
 */
export interface MemoryBudget {
  memtablesBytes: number
  blockCacheBytes: number
  tableReadersBytes: number
  workersBytes: number
  gcHeadroomBytes: number
  totalBytes: number
}

/** A worker thread: its V8 isolate, 4 MiB young generation, its job's input scanners and output builder. */
export const WORKER_BYTES = 40 << 20
/** Garbage V8 keeps between collections, all threads (memory test: 100-110 MiB measured; docs/performance.md). */
export const GC_HEADROOM_BYTES = 128 << 20

export function memoryBudget(o: ResolvedOptions): MemoryBudget {
  const memtablesBytes = (1 + o.maxImmutableMemtables) * o.memtableBytes
  const workersBytes = (1 + o.maxConcurrentCompactions) * WORKER_BYTES
  const parts = {
    memtablesBytes,
    blockCacheBytes: o.blockCacheBytes + slabBytesFor(o.blockCacheBytes),
    tableReadersBytes: o.tableCacheBytes,
    workersBytes,
    gcHeadroomBytes: GC_HEADROOM_BYTES,
  }
  return { ...parts, totalBytes: Object.values(parts).reduce((a, b) => a + b, 0) }
}
