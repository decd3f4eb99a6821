/**
 * Stable error codes. Callers branch on `err.code`, never on the message.
 * Each code is documented in README.md ("Errors").
 */
export type StrataErrorCode =
  | 'STRATA_LOCKED'
  | 'STRATA_CORRUPTION'
  | 'STRATA_NOT_OPEN'
  | 'STRATA_INVALID_ARGUMENT'
  | 'STRATA_TOO_LARGE'
  | 'STRATA_IO_ERROR'
  | 'STRATA_NOT_FOUND'
  | 'STRATA_EXISTS'
  | 'STRATA_READ_ONLY'
  | 'STRATA_CONFLICT'
  | 'STRATA_NOT_A_DATABASE'
  | 'STRATA_CHANGES_TRUNCATED'

/** The one error class the engine throws for operating errors; `code` is stable. */
export class StrataError extends Error {
  readonly code: StrataErrorCode

  constructor(code: StrataErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StrataError'
    this.code = code
  }
}

/** A failed precondition: nothing of the write was applied. `keys` names what conflicted. */
export class ConflictError extends StrataError {
  readonly keys: Buffer[]

  constructor(keys: Buffer[]) {
    const unique = keys.filter((k, i) => keys.findIndex((o) => o.equals(k)) === i)
    super('STRATA_CONFLICT', `conflict on ${unique.length} key(s): ${unique.map((k) => JSON.stringify(k.toString('utf8'))).join(', ')}`)
    this.name = 'ConflictError'
    this.keys = unique
  }
}

/** Builds a STRATA_CORRUPTION error naming the file and offset that failed. */
export function corruption(what: string, file?: string, offset?: number): StrataError {
  const where = file === undefined ? '' : ` in ${file}${offset === undefined ? '' : ` at offset ${offset}`}`
  return new StrataError('STRATA_CORRUPTION', `corruption: ${what}${where}`)
}

/** Wraps a Node.js file-system error as STRATA_IO_ERROR, keeping it as `cause`. */
export function ioError(what: string, cause: unknown): StrataError {
  const detail = cause instanceof Error ? cause.message : String(cause)
  return new StrataError('STRATA_IO_ERROR', `${what}: ${detail}`, { cause })
}
