import { ioError } from '../base/errors.js'
import { writeFully, type File, type FileSystem } from '../vfs/file-system.js'

/**
 * Appends framed records to one WAL file. `append` is a synchronous write(2):
 * when it returns, the bytes are in the operating system and survive a crash of
 * this process. `sync` makes them survive power loss.
 */
export class WalWriter {
  private bytes = 0

  private constructor(
    readonly path: string,
    readonly number: number,
    private readonly file: File,
  ) {}

  /** Creates a new, empty WAL file; fails if it exists. */
  static create(fs: FileSystem, path: string, number: number): WalWriter {
    try {
      return new WalWriter(path, number, fs.open(path, 'wx'))
    } catch (err) {
      throw ioError(`cannot create WAL ${path}`, err)
    }
  }

  /** Bytes appended so far. */
  get sizeBytes(): number {
    return this.bytes
  }

  /** Appends one framed record. A failure leaves the file with an unknown tail. */
  append(record: Uint8Array): void {
    try {
      writeFully(this.file, record, null)
    } catch (err) {
      throw ioError(`write to WAL ${this.path} failed`, err)
    }
    this.bytes += record.length
  }

  /** fdatasync on the thread pool; the event loop keeps running meanwhile. */
  async sync(): Promise<void> {
    try {
      await this.file.datasync()
    } catch (err) {
      throw ioError(`fsync of ${this.path} failed`, err)
    }
  }

  close(): void {
    this.file.close()
  }
}
