import type { TableVersion } from '../manifest/table-version.js'
import type { ResolvedOptions } from '../options.js'
import type { TableBuilderOptions } from '../sstable/table-builder.js'

/** Bytes a point index takes per distinct key (docs/format.md, "Point index": 4-byte slots at load 0.8). */
const POINT_INDEX_BYTES_PER_KEY = 5
/**
 * Bytes an open table's decoded index takes per key: its raw entries (~1 byte
 * per key with 16-byte keys in 4 KiB blocks) and 40 bytes of arrays per data
 * block of ~35 such entries (IndexBlock.sizeBytes).
 */
const INDEX_BYTES_PER_KEY = 2

/**
 * How a table written now is laid out, decided when its flush or compaction
 * starts from the options and the current table version:
 *
 * - Point-read indexes (a point index and per-block hash indexes), option
 *   `pointReadIndexes`: under 'auto', written while the filters, indexes and
 *   point indexes of the database's keys fit in the table cache's budget.
 *   Past that the cache cannot hold the point indexes (it drops them before
 *   anything else), so they would cost ~5 bytes per key on disk for nothing,
 *   and point reads mostly go to disk, where a block's hash index saves a
 *   fraction of a microsecond of a read that pays a `pread`
 *   (docs/performance.md, "Where the disk goes against classic-level").
 * - Compression, option `l0Compression`: under 'auto' a flush that finds L0
 *   below the compaction trigger writes its table raw (the compaction soon
 *   rewrites it compressed; docs/design.md, "Block compression").
 */
export function tableLayout(options: ResolvedOptions, version: TableVersion, flush: boolean): TableBuilderOptions {
  const soonCompacted = flush && options.l0Compression === 'auto' && version.levels[0].length < options.l0CompactionTrigger
  return {
    blockBytes: options.blockBytes,
    blockRestartInterval: options.blockRestartInterval,
    bloomBitsPerKey: options.bloomBitsPerKey,
    compression: soonCompacted ? 'none' : options.compression,
    pointReadIndexes: pointReadIndexesFit(options, version),
  }
}

function pointReadIndexesFit(options: ResolvedOptions, version: TableVersion): boolean {
  if (options.pointReadIndexes !== 'auto') return options.pointReadIndexes === 'always'
  let keys = 0
  for (const level of version.levels) for (const t of level) keys += t.entryCount
  const residentBytesPerKey = options.bloomBitsPerKey / 8 + INDEX_BYTES_PER_KEY + POINT_INDEX_BYTES_PER_KEY
  return keys * residentBytesPerKey <= options.tableCacheBytes
}
