import type { StrataError } from '../base/errors.js'
import { errnoOf, readOnlyFailure, type BackgroundErrorInfo, type FailureSite } from '../base/background-error.js'

/**
 * What has failed in an engine, and telling the application about it
 * (`onBackgroundError`): the failure that made the engine read-only (the
 * first one wins; see Engine.setBackgroundError), and the failed deletions of
 * obsolete files, which are reported but not fatal.
 */
export class Failures {
  /** What made the engine read-only, if anything. */
  readOnly: BackgroundErrorInfo | undefined
  /** Failed obsolete-file deletions: how many, and the last. */
  readonly deletes: { count: number; last: BackgroundErrorInfo | undefined } = { count: 0, last: undefined }

  constructor(private readonly onBackgroundError: (info: BackgroundErrorInfo) => void) {}

  /** Records `err` as what made the engine read-only unless something already did; true when it did. */
  setReadOnly(err: unknown, where: FailureSite): boolean {
    if (this.readOnly !== undefined) return false
    this.readOnly = readOnlyFailure(err, where)
    this.report(this.readOnly)
    return true
  }

  /** A resume failed: its error replaces the reported failure (the cause is still there). */
  replaceReadOnly(err: unknown): void {
    this.readOnly = readOnlyFailure(err, 'resume')
    this.report(this.readOnly)
  }

  /** Deleting an obsolete file failed (`err` is its STRATA_IO_ERROR); the next flush or compaction tries again. */
  deleteFailed(err: StrataError): void {
    this.deletes.count++
    this.deletes.last = { error: err, where: 'obsolete-file-deletion', errno: errnoOf(err), atMs: Date.now(), readOnly: false }
    this.report(this.deletes.last)
  }

  /** A throwing callback does not disturb the engine. */
  private report(info: BackgroundErrorInfo): void {
    try {
      this.onBackgroundError(info)
    } catch {
      // The callback's own failure is not the engine's.
    }
  }
}
