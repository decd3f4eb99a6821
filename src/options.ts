import * as os from 'node:os'
import { StrataError } from './base/errors.js'
import type { BackgroundErrorInfo } from './base/background-error.js'
import type { FileSystem } from './vfs/file-system.js'
import { nodeFileSystem } from './vfs/node-file-system.js'

/** Options of `open()`. Every size carries its unit in its name. */
export interface OpenOptions {
  /** Create the directory and an empty database when missing. Default true. */
  createIfMissing?: boolean
  /** Fail with STRATA_EXISTS when a database already exists there. Default false. */
  errorIfExists?: boolean
  /**
   * Open a read-only view: no lock is taken and no file is written, renamed
   * or deleted, so it works on a checkpoint and on a directory another
   * process has open for writing. The view is the database as of the open
   * (tables it needs are opened up front, the WALs read into memory);
   * `db.refresh()` moves it forward. Writes reject with STRATA_READ_ONLY.
   * Default false.
   */
  readOnly?: boolean
  /** fsync the WAL before every write resolves (survives power loss). Default false. */
  syncWrites?: boolean
  /** Size at which the active memtable is frozen and flushed. Default 64 MiB. */
  memtableBytes?: number
  /** Frozen memtables waiting for flush before writes stall. Default 1. */
  maxImmutableMemtables?: number
  /**
   * Budget of the block cache. Default: 1/32 of the memory the process may use
   * (its cgroup limit, else the machine's RAM), between 32 MiB and 256 MiB
   * (`defaultBlockCacheBytes`). The cache fills only with blocks that reads
   * load; a database smaller than the budget never holds more than itself.
   */
  blockCacheBytes?: number
  /** Target data block size. Default 4096. */
  blockBytes?: number
  /** Entries between restart points in a data block. Default 16. */
  blockRestartInterval?: number
  /** Bloom filter bits per key. Default 10 (~1% false positives). */
  bloomBitsPerKey?: number
  /**
   * How new tables compress their data blocks: 'lz4' (LZ4 block format; a
   * block that does not shrink by at least 1/8 is stored raw) or 'none'.
   * Recorded per block, so tables written under either setting mix; the block
   * cache holds blocks decompressed. Default 'lz4' (docs/performance.md,
   * "Block compression").
   */
  compression?: BlockCompression
  /**
   * Whether a flush compresses the L0 table it writes. 'auto': stored raw
   * while L0 holds fewer than `l0CompactionTrigger` tables before it (more
   * flushes bring L0 to the trigger, and the compaction then rewrites the
   * table compressed), compressed as `compression` says once L0 is at the
   * trigger or past it (tables that may sit in L0 a while): a flush on the
   * path of a write stream skips LZ4's ~35% of building a table (RocksDB's
   * per-level compression, no compression in L0). A database that stops
   * writing keeps at most `l0CompactionTrigger` - 1 raw tables (L0 reaching
   * the trigger starts the compaction) until more writes come.
   * 'always': every flush compresses (LevelDB's way). Default 'auto'
   * (docs/performance.md, "Block compression").
   */
  l0Compression?: 'auto' | 'always'
  /**
   * Whether new tables carry the two structures that only make point reads
   * cheaper: a point index per table (5 bytes per key, in memory while the
   * table is open) and a hash index in each data block (about 4 bytes per
   * key). 'auto' writes them while the filters, indexes and point indexes of
   * all the database's keys fit in `tableCacheBytes` (about 8M keys at the
   * defaults); past that most point indexes could not be loaded anyway, a
   * point read mostly pays a disk read, and the ~9 bytes per key (about 12%
   * of a 100-byte entry on disk) are left out. Recorded per table, so tables
   * with and without mix. Default 'auto' (docs/performance.md, "Where the
   * disk goes against classic-level").
   */
  pointReadIndexes?: PointReadIndexes
  /**
   * Values of at least this many bytes are kept apart from the keys, in blob
   * files written at flush; tables hold a 10-odd-byte reference instead, so
   * compactions do not rewrite the values and the block cache holds no large
   * value (key-value separation, docs/design.md "Blob files"). Default 4096.
   * A `minBlobBytes` above `maxValueBytes` keeps every value inline.
   */
  minBlobBytes?: number
  /**
   * A compaction that meets a reference into a blob file at least this many
   * percent garbage moves the value into a new blob file, and a file past it
   * with no compaction due gets one (blob garbage collection). Default 25.
   */
  blobGarbagePercent?: number
  /** Largest accepted key. Default 65536. */
  maxKeyBytes?: number
  /** Largest accepted value. Default 16 MiB. */
  maxValueBytes?: number
  /** Largest accepted batch (keys + values). Default 256 MiB. */
  maxBatchBytes?: number
  /** Table files kept open at once. Default 1000. */
  maxOpenTables?: number
  /** Memory for the index and filter of open tables; least recently used tables are closed past it. Default 64 MiB. */
  tableCacheBytes?: number
  /** Target size of L1; each deeper level is `levelSizeMultiplier` times larger. Default 256 MiB. */
  levelBaseBytes?: number
  /** Size ratio between adjacent levels. Default 10. */
  levelSizeMultiplier?: number
  /** Compaction output tables are cut at this size. Default 16 MiB. */
  targetTableBytes?: number
  /** L0 table count that triggers an L0 compaction. Default 4. */
  l0CompactionTrigger?: number
  /** L0 table count at which writes start to be slowed (their rate falls with the excess). Default 8. */
  l0SlowdownTrigger?: number
  /**
   * L0 table count at which writes wait for compaction. Default 72: a random-write
   * stream on 2 cores kept its slowest window at 0.63 of the median against 0.24
   * with RocksDB's 36 (docs/performance.md, "Compaction").
   */
  l0StopTrigger?: number
  /** Estimated compaction debt at which writes are slowed. Default 4 GiB. */
  softPendingCompactionBytes?: number
  /** Estimated compaction debt at which writes wait. Default 16 GiB. */
  hardPendingCompactionBytes?: number
  /** Compactions running at once (each on its own worker thread). Default 1. */
  maxConcurrentCompactions?: number
  /** Run automatic background compactions. Default true (tests may turn it off). */
  autoCompaction?: boolean
  /**
   * `close()` writes the active memtable to an L0 table, so the next open
   * replays nothing (fast open, no replayed memtable in memory). Default true;
   * false leaves the writes in the WAL (like RocksDB's avoid_flush_during_shutdown).
   */
  flushOnClose?: boolean
  /** A manifest larger than this is rewritten as one record at the next edit (RocksDB's max_manifest_file_size). Default 16 MiB. */
  maxManifestBytes?: number
  /**
   * Upper bound on the bytes of WAL files kept after their writes are in
   * tables, for the change stream (`db.changes()`): kept while an open change
   * cursor still has to read them or while younger than `walRetentionMs`;
   * past this bound the oldest go first, and a cursor that needed one ends
   * with STRATA_CHANGES_TRUNCATED. Default 1 GiB. 0 keeps none.
   */
  walRetentionBytes?: number
  /**
   * Keep every WAL file this long after its last write even without an open
   * change cursor (within `walRetentionBytes`), so that a consumer can
   * reconnect, or a reopened database replay `changes({ since })`, after its
   * writes were flushed. Checked at each flush and compaction. Default 0
   * (only open cursors keep WALs).
   */
  walRetentionMs?: number
  /**
   * Called once when a failed write, fsync, flush or compaction makes the
   * database read-only (STRATA_READ_ONLY), with what failed, where and when;
   * and for failures that do not (a failed deletion of an obsolete file).
   * `stats().failure` holds the same. Default: nothing.
   */
  onBackgroundError?: (info: BackgroundErrorInfo) => void
  /**
   * The file system every file operation goes through. Default: the real one
   * (node:fs). Tests pass a fault-injecting one; with any file system but the
   * default, flushes and compactions run on the calling thread (the seam
   * object cannot cross to a worker thread).
   */
  fileSystem?: FileSystem
  /**
   * The clock expiry times are compared with: milliseconds since the epoch.
   * Default `Date.now`. Reads compare at the moment of the read; a
   * compaction with the clock read when it starts. Tests pass a clock they
   * move by hand (no test sleeps to wait for an expiry). Expiry assumes the
   * clock does not go back: a compaction may drop a value as expired that a
   * clock set back would show again.
   */
  clock?: () => number
}

/** Block compression of new tables: recorded per block, so tables of any setting mix. */
export type BlockCompression = 'none' | 'lz4'

/** When new tables get a point index and per-block hash indexes (OpenOptions.pointReadIndexes). */
export type PointReadIndexes = 'auto' | 'always' | 'never'

export type ResolvedOptions = Required<OpenOptions>

const MiB = 2 ** 20

/**
 * The default block cache budget for a process that may use `availableBytes`
 * of memory: 1/32 of it, between 32 MiB (RocksDB's default) and 256 MiB, in
 * whole MiB. lmdb serves reads from the OS page cache, as large as free
 * memory; a read our cache misses is a `pread` and a checksum (~5 µs against
 * ~2 µs for a hit, docs/performance.md), so a cache that only holds a small
 * part of a database that fits in memory many times over leaves most of a
 * random read's time in system calls. The cap keeps one open database's
 * memory predictable; pass `blockCacheBytes` to choose.
 */
export function defaultBlockCacheBytes(availableBytes: number = availableMemoryBytes()): number {
  const mib = Math.floor(availableBytes / 32 / MiB)
  return Math.min(256, Math.max(32, mib)) * MiB
}

/** The process's cgroup memory limit when it has one, else the machine's RAM. */
function availableMemoryBytes(): number {
  const total = os.totalmem()
  // Node 20 returns undefined without a limit, later versions 0; an unlimited cgroup reports a huge number.
  const constrained = process.constrainedMemory?.()
  return constrained !== undefined && constrained > 0 ? Math.min(constrained, total) : total
}

export const DEFAULT_OPTIONS: ResolvedOptions = {
  createIfMissing: true,
  errorIfExists: false,
  readOnly: false,
  syncWrites: false,
  memtableBytes: 64 << 20,
  maxImmutableMemtables: 1,
  blockCacheBytes: defaultBlockCacheBytes(),
  blockBytes: 4096,
  blockRestartInterval: 16,
  bloomBitsPerKey: 10,
  compression: 'lz4',
  l0Compression: 'auto',
  pointReadIndexes: 'auto',
  minBlobBytes: 4096,
  blobGarbagePercent: 25,
  maxKeyBytes: 65536,
  maxValueBytes: 16 << 20,
  maxBatchBytes: 256 << 20,
  maxOpenTables: 1000,
  tableCacheBytes: 64 << 20,
  levelBaseBytes: 256 << 20,
  levelSizeMultiplier: 10,
  targetTableBytes: 16 << 20,
  l0CompactionTrigger: 4,
  l0SlowdownTrigger: 8,
  l0StopTrigger: 72,
  softPendingCompactionBytes: 4 * 2 ** 30,
  hardPendingCompactionBytes: 16 * 2 ** 30,
  maxConcurrentCompactions: 1,
  autoCompaction: true,
  flushOnClose: true,
  maxManifestBytes: 16 << 20,
  walRetentionBytes: 2 ** 30,
  walRetentionMs: 0,
  onBackgroundError: () => undefined,
  fileSystem: nodeFileSystem,
  clock: Date.now,
}

/** Limits on numeric options: [minimum, maximum]. */
const RANGES: Partial<Record<keyof OpenOptions, [number, number]>> = {
  memtableBytes: [4096, 2 ** 40],
  maxImmutableMemtables: [1, 64],
  blockCacheBytes: [0, 2 ** 45],
  blockBytes: [256, 1 << 26],
  blockRestartInterval: [1, 1024],
  bloomBitsPerKey: [1, 64],
  minBlobBytes: [1, 2 ** 31],
  blobGarbagePercent: [1, 100],
  maxKeyBytes: [1, 1 << 26],
  maxValueBytes: [0, 1 << 29],
  maxBatchBytes: [1, 1 << 30],
  maxOpenTables: [8, 1 << 20],
  tableCacheBytes: [0, 2 ** 45],
  levelBaseBytes: [4096, 2 ** 50],
  levelSizeMultiplier: [2, 100],
  targetTableBytes: [1024, 2 ** 32],
  l0CompactionTrigger: [1, 1000],
  l0SlowdownTrigger: [1, 1000],
  l0StopTrigger: [1, 1000],
  softPendingCompactionBytes: [0, 2 ** 52],
  hardPendingCompactionBytes: [0, 2 ** 52],
  maxConcurrentCompactions: [1, 16],
  maxManifestBytes: [1, 2 ** 40],
  walRetentionBytes: [0, 2 ** 52],
  walRetentionMs: [0, 2 ** 52],
}

/** Options whose value is one of a few strings. */
const CHOICES: Partial<Record<keyof ResolvedOptions, readonly string[]>> = {
  compression: ['lz4', 'none'] satisfies BlockCompression[],
  l0Compression: ['auto', 'always'] satisfies Array<OpenOptions['l0Compression']>,
  pointReadIndexes: ['auto', 'always', 'never'] satisfies PointReadIndexes[],
}

const FILE_SYSTEM_METHODS = ['open', 'readFile', 'rename', 'link', 'unlink', 'readdir', 'stat', 'mkdir', 'syncDir', 'realpath'] as const satisfies ReadonlyArray<keyof FileSystem>

/** Merges `options` over the defaults; throws STRATA_INVALID_ARGUMENT on an unknown or bad option. */
export function resolveOptions(options: OpenOptions | undefined): ResolvedOptions {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new StrataError('STRATA_INVALID_ARGUMENT', 'options must be an object')
  }
  const out: ResolvedOptions = { ...DEFAULT_OPTIONS }
  for (const [name, value] of Object.entries(options ?? {})) {
    if (value === undefined) continue
    if (!(name in DEFAULT_OPTIONS)) throw new StrataError('STRATA_INVALID_ARGUMENT', `unknown option ${name}`)
    const key = name as keyof ResolvedOptions
    const expected = typeof DEFAULT_OPTIONS[key]
    if (typeof value !== expected || value === null) {
      throw new StrataError('STRATA_INVALID_ARGUMENT', `option ${name} must be a ${expected}`)
    }
    const range = RANGES[key]
    if (range && (!Number.isInteger(value) || (value as number) < range[0] || (value as number) > range[1])) {
      throw new StrataError('STRATA_INVALID_ARGUMENT', `option ${name} must be an integer in [${range[0]}, ${range[1]}]`)
    }
    const choices = CHOICES[key]
    if (choices && !choices.includes(value as string)) {
      throw new StrataError('STRATA_INVALID_ARGUMENT', `option ${name} must be ${choices.map((c) => `'${c}'`).join(' or ')}, got ${JSON.stringify(value)}`)
    }
    ;(out as unknown as Record<string, unknown>)[key] = value
  }
  const missing = FILE_SYSTEM_METHODS.filter((m) => typeof (out.fileSystem as unknown as Record<string, unknown>)[m] !== 'function')
  if (missing.length > 0) throw new StrataError('STRATA_INVALID_ARGUMENT', `option fileSystem lacks ${missing.join(', ')}`)
  if (!(out.l0CompactionTrigger <= out.l0SlowdownTrigger && out.l0SlowdownTrigger < out.l0StopTrigger)) {
    throw new StrataError('STRATA_INVALID_ARGUMENT', 'need l0CompactionTrigger <= l0SlowdownTrigger < l0StopTrigger')
  }
  if (out.readOnly && out.errorIfExists) {
    throw new StrataError('STRATA_INVALID_ARGUMENT', 'readOnly opens an existing database: errorIfExists cannot be set with it')
  }
  if (out.softPendingCompactionBytes > out.hardPendingCompactionBytes) {
    throw new StrataError('STRATA_INVALID_ARGUMENT', 'need softPendingCompactionBytes <= hardPendingCompactionBytes')
  }
  return out
}
