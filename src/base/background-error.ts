import { StrataError, ioError } from './errors.js'

/** Where a background failure happened (docs/design.md, "When I/O fails"). */
export type FailureSite =
  | 'wal-write'
  | 'wal-sync'
  | 'memtable-switch'
  | 'flush'
  | 'compaction'
  | 'manifest'
  | 'obsolete-file-deletion'
  | 'resume'
  | 'replication'

/** What `onBackgroundError` and `stats().failure` report. */
export interface BackgroundErrorInfo {
  /** The error as the caller sees it: STRATA_READ_ONLY (its `cause` is the failure) unless `readOnly` is false. */
  error: StrataError
  /** What the engine was doing. */
  where: FailureSite
  /** The operating system's error code (ENOSPC, EIO, ...) when there is one. */
  errno: string | undefined
  /** Date.now() when it happened. */
  atMs: number
  /** True when the failure made the database read-only. */
  readOnly: boolean
}

/** The errno code of `err` or of the first cause in its chain that has one. */
export function errnoOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code
    if (typeof code === 'string' && !code.startsWith('STRATA_')) return code
  }
  return undefined
}

/** Builds the report of a failure that makes the database read-only. */
export function readOnlyFailure(err: unknown, where: FailureSite): BackgroundErrorInfo {
  const cause = err instanceof StrataError ? err : ioError(`${where} failed`, err)
  const error = new StrataError('STRATA_READ_ONLY', `database is read-only after a failed ${where}: ${cause.message}`, { cause })
  return { error, where, errno: errnoOf(err), atMs: Date.now(), readOnly: true }
}
