import * as fs from 'node:fs'
import { fdatasync, writeFully } from '../base/fs-util.js'
import { ioError } from '../base/errors.js'

/**
 * Appends framed records to one WAL file. `append` is a synchronous write(2):
 * when it returns, the bytes are in the operating system and survive a crash of
 * this process. `sync` makes them survive power loss.
 */
export class WalWriter {
  private bytes = 0
  private closed = false

  private constructor(
    readonly path: string,
    readonly number: number,
    private readonly fd: number,
  ) {}

  /** Creates a new, empty WAL file; fails if it exists. */
  static create(path: string, number: number): WalWriter {
    try {
      return new WalWriter(path, number, fs.openSync(path, 'wx'))
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
      writeFully(this.fd, record, null)
    } catch (err) {
      throw ioError(`write to WAL ${this.path} failed`, err)
    }
    this.bytes += record.length
  }

  /** fdatasync on the thread pool; the event loop keeps running meanwhile. */
  sync(): Promise<void> {
    return fdatasync(this.fd, this.path)
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    fs.closeSync(this.fd)
  }
}
