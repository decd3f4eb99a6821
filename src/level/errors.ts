import { StrataError } from '../index.js'

/**
 * The error StrataLevel throws for a failure of the engine: `code` is the
 * Level code users of abstract-level check (LEVEL_LOCKED, LEVEL_CORRUPTION,
 * ...) and `cause` is the StrataError the engine threw. A StrataError code
 * without a Level equivalent (STRATA_NOT_FOUND, STRATA_EXISTS, ...) is kept
 * as is. Same shape as abstract-level's own errors (module-error).
 */
export class StrataLevelError extends Error {
  readonly code: string

  constructor(message: string, code: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'StrataLevelError'
    this.code = code
  }
}

const LEVEL_CODES: Partial<Record<string, string>> = {
  STRATA_LOCKED: 'LEVEL_LOCKED',
  STRATA_CORRUPTION: 'LEVEL_CORRUPTION',
  STRATA_NOT_OPEN: 'LEVEL_DATABASE_NOT_OPEN',
  STRATA_IO_ERROR: 'LEVEL_IO_ERROR',
  STRATA_READ_ONLY: 'LEVEL_READONLY',
}

/** Byte limits of single keys and values, as the user configured them. */
export interface SizeLimits {
  maxKeyBytes: number
  maxValueBytes: number
}

/** A key or value of a failed write, to tell which one was too large. */
type Data = string | Uint8Array

/**
 * Converts an engine error into a StrataLevelError; anything else (a bug, a
 * TypeError) is returned unchanged. `suspects` are the keys and values of
 * the failed call: a STRATA_TOO_LARGE caused by one of them becomes
 * LEVEL_INVALID_KEY or LEVEL_INVALID_VALUE (a whole batch over maxBatchBytes
 * keeps STRATA_TOO_LARGE).
 */
export function toLevelError(err: unknown, limits?: SizeLimits, suspects?: Iterable<[Data | undefined, Data | undefined]>): unknown {
  if (!(err instanceof StrataError)) return err
  let code = LEVEL_CODES[err.code] ?? err.code
  let message = err.message
  if (err.code === 'STRATA_NOT_FOUND') {
    message = `Database does not exist (createIfMissing is false): ${err.message}`
  } else if (err.code === 'STRATA_EXISTS') {
    message = `Database already exists (errorIfExists is true): ${err.message}`
  } else if (err.code === 'STRATA_TOO_LARGE' && limits !== undefined && suspects !== undefined) {
    code = tooLargeCode(limits, suspects) ?? code
  }
  return new StrataLevelError(message, code, err)
}

function tooLargeCode(limits: SizeLimits, suspects: Iterable<[Data | undefined, Data | undefined]>): string | undefined {
  for (const [key, value] of suspects) {
    if (key !== undefined && byteLength(key) > limits.maxKeyBytes) return 'LEVEL_INVALID_KEY'
    if (value !== undefined && byteLength(value) > limits.maxValueBytes) return 'LEVEL_INVALID_VALUE'
  }
  return undefined
}

function byteLength(data: Data): number {
  return typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.byteLength
}
