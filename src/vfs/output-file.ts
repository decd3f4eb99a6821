import { ioError } from '../base/errors.js'
import type { File, FileSystem } from './file-system.js'

/**
 * A new file written front to back in chunks, each write off the event loop,
 * then fdatasynced and closed: tables and blob files. Created at the first
 * append ('wx': never over an existing file). Every failure is
 * STRATA_IO_ERROR naming the file; after one, `abandon` closes it and the
 * caller leaves it for obsolete-file deletion.
 */
export class OutputFile {
  private handle: File | undefined

  constructor(
    private readonly fs: FileSystem,
    readonly path: string,
    /** What the file is, for error messages ("table", "blob file"). */
    private readonly what: string,
  ) {}

  async append(chunks: readonly Uint8Array[]): Promise<void> {
    if (chunks.length === 0) return
    await this.guard(async () => {
      this.handle ??= this.fs.open(this.path, 'wx')
      await this.handle.writeChunks(chunks)
    })
  }

  /** fdatasyncs and closes. REQUIRES: something was appended. */
  async finish(): Promise<void> {
    await this.guard(async () => {
      await this.handle!.datasync()
      this.handle!.close()
    })
    this.handle = undefined
  }

  abandon(): void {
    this.handle?.close()
    this.handle = undefined
  }

  private async guard(op: () => Promise<void>): Promise<void> {
    try {
      await op()
    } catch (err) {
      throw ioError(`cannot write ${this.what} ${this.path}`, err)
    }
  }
}
