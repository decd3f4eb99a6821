import { StrataError } from './base/errors.js'

/** Options of `open()`. Every size carries its unit in its name. */
export interface OpenOptions {
  /** Create the directory and an empty database when missing. Default true. */
  createIfMissing?: boolean
  /** Fail with STRATA_EXISTS when a database already exists there. Default false. */
  errorIfExists?: boolean
  /** fsync the WAL before every write resolves (survives power loss). Default false. */
  syncWrites?: boolean
  /** Size at which the active memtable is frozen and flushed. Default 64 MiB. */
  memtableBytes?: number
  /** Frozen memtables waiting for flush before writes stall. Default 1. */
  maxImmutableMemtables?: number
  /** Budget of the block cache. Default 32 MiB. */
  blockCacheBytes?: number
  /** Target data block size. Default 4096. */
  blockBytes?: number
  /** Entries between restart points in a data block. Default 16. */
  blockRestartInterval?: number
  /** Bloom filter bits per key. Default 10 (~1% false positives). */
  bloomBitsPerKey?: number
  /** Largest accepted key. Default 65536. */
  maxKeyBytes?: number
  /** Largest accepted value. Default 16 MiB. */
  maxValueBytes?: number
  /** Largest accepted batch (keys + values). Default 256 MiB. */
  maxBatchBytes?: number
  /** Table files kept open at once. Default 1000. */
  maxOpenTables?: number
}

export type ResolvedOptions = Required<OpenOptions>

export const DEFAULT_OPTIONS: ResolvedOptions = {
  createIfMissing: true,
  errorIfExists: false,
  syncWrites: false,
  memtableBytes: 64 << 20,
  maxImmutableMemtables: 1,
  blockCacheBytes: 32 << 20,
  blockBytes: 4096,
  blockRestartInterval: 16,
  bloomBitsPerKey: 10,
  maxKeyBytes: 65536,
  maxValueBytes: 16 << 20,
  maxBatchBytes: 256 << 20,
  maxOpenTables: 1000,
}

/** Limits on numeric options: [minimum, maximum]. */
const RANGES: Partial<Record<keyof OpenOptions, [number, number]>> = {
  memtableBytes: [4096, 2 ** 40],
  maxImmutableMemtables: [1, 64],
  blockCacheBytes: [0, 2 ** 45],
  blockBytes: [256, 1 << 26],
  blockRestartInterval: [1, 1024],
  bloomBitsPerKey: [1, 64],
  maxKeyBytes: [1, 1 << 26],
  maxValueBytes: [0, 1 << 29],
  maxBatchBytes: [1, 1 << 30],
  maxOpenTables: [8, 1 << 20],
}

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
    if (typeof value !== expected) {
      throw new StrataError('STRATA_INVALID_ARGUMENT', `option ${name} must be a ${expected}`)
    }
    const range = RANGES[key]
    if (range && (!Number.isInteger(value) || (value as number) < range[0] || (value as number) > range[1])) {
      throw new StrataError('STRATA_INVALID_ARGUMENT', `option ${name} must be an integer in [${range[0]}, ${range[1]}]`)
    }
    ;(out as unknown as Record<string, unknown>)[key] = value
  }
  return out
}
