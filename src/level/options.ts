import { DEFAULT_OPTIONS, type OpenOptions } from '../index.js'
import type { SizeLimits } from './errors.js'

/**
 * classic-level's tuning options and the stratadb option each one maps to,
 * so that switching the import keeps the configured sizes. A stratadb option
 * given explicitly wins over its alias. `compression` (a boolean in
 * classic-level) maps onto stratadb's: true → 'lz4', false → 'none' (the
 * stratadb values are taken too). `multithreading` has no equivalent and is
 * ignored.
 */
export interface ClassicLevelOptions {
  /** → blockCacheBytes */
  cacheSize?: number
  /** → memtableBytes */
  writeBufferSize?: number
  /** → blockBytes */
  blockSize?: number
  /** → maxOpenTables */
  maxOpenFiles?: number
  /** Same name in stratadb. */
  blockRestartInterval?: number
  /** → targetTableBytes */
  maxFileSize?: number
  /** true → 'lz4' (the default), false → 'none'; or stratadb's own value. */
  compression?: boolean | 'lz4' | 'none'
  /** Ignored. */
  multithreading?: boolean
}

const ALIASES: ReadonlyArray<[keyof ClassicLevelOptions, keyof OpenOptions]> = [
  ['cacheSize', 'blockCacheBytes'],
  ['writeBufferSize', 'memtableBytes'],
  ['blockSize', 'blockBytes'],
  ['maxOpenFiles', 'maxOpenTables'],
  ['maxFileSize', 'targetTableBytes'],
]

/** The engine's upper limit of maxKeyBytes (src/options.ts). */
const ENGINE_MAX_KEY_BYTES = 1 << 26

/**
 * The engine options for the options abstract-level passes to `_open()`
 * (constructor options merged with `open()` options). Options stratadb does
 * not know (keyEncoding, passive, another implementation's options) are
 * ignored, as LevelDB ignores what it does not know. maxKeyBytes is the
 * limit of Level keys: the engine gets one more byte for the key prefix.
 */
export function engineOptions(options: Record<string, unknown>): { open: OpenOptions; limits: SizeLimits } {
  const out: Record<string, unknown> = {}
  for (const name of Object.keys(DEFAULT_OPTIONS)) {
    if (options[name] !== undefined) out[name] = options[name]
  }
  for (const [alias, target] of ALIASES) {
    if (out[target] === undefined && options[alias] !== undefined) out[target] = options[alias]
  }
  if (typeof out.compression === 'boolean') out.compression = out.compression ? 'lz4' : 'none'
  const open = out as OpenOptions
  const maxKeyBytes = open.maxKeyBytes ?? DEFAULT_OPTIONS.maxKeyBytes
  if (Number.isInteger(maxKeyBytes) && maxKeyBytes >= 1 && maxKeyBytes < ENGINE_MAX_KEY_BYTES) {
    open.maxKeyBytes = maxKeyBytes + 1
  }
  return {
    open,
    limits: { maxKeyBytes, maxValueBytes: open.maxValueBytes ?? DEFAULT_OPTIONS.maxValueBytes },
  }
}
