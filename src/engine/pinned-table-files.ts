import { assert } from '../base/assert.js'
import type { File, FileStat, FileSystem, OpenFlags } from '../vfs/file-system.js'

/**
 * The file system of a read-only view: table files the view needs are
 * opened once, up front, and every later open of one of them for reading
 * (the table cache reopens tables it evicted) gets that descriptor back. A
 * writer in another process may delete the files meanwhile: an open
 * descriptor keeps the data readable, so the view never fails on a table
 * the writer compacted away.
 *
 * A descriptor closes when the view let it go (`releaseAll`) and the last
 * reader opened from it closed. Everything else goes to the inner file system.
 */
export class PinnedTableFiles implements FileSystem {
  private readonly pinned = new Map<string, { file: File; refs: number }>()
  private released = false

  constructor(private readonly inner: FileSystem) {}

  /** Opens `file` for reading and keeps it for the view. Throws as `open` does (ENOENT when it is gone). */
  pin(file: string): File {
    assert(!this.released, 'pin after release')
    const held = this.pinned.get(file)
    if (held !== undefined) return held.file
    const opened = this.inner.open(file, 'r')
    this.pinned.set(file, { file: opened, refs: 1 })
    return opened
  }

  /** The view is done: each descriptor closes once its last reader closed. Idempotent. */
  releaseAll(): void {
    if (this.released) return
    this.released = true
    for (const file of [...this.pinned.keys()]) this.unref(file)
  }

  open(file: string, flags: OpenFlags): File {
    const held = flags === 'r' ? this.pinned.get(file) : undefined
    if (held === undefined) return this.inner.open(file, flags)
    held.refs++
    return this.share(file, held.file)
  }

  readFile(file: string): Buffer {
    return this.inner.readFile(file)
  }
  rename(from: string, to: string): void {
    this.inner.rename(from, to)
  }
  link(from: string, to: string): void {
    this.inner.link(from, to)
  }
  unlink(file: string): void {
    this.inner.unlink(file)
  }
  unlinkAsync(file: string): Promise<void> {
    return this.inner.unlinkAsync(file)
  }
  readdir(dir: string): string[] {
    return this.inner.readdir(dir)
  }
  stat(file: string): FileStat {
    return this.inner.stat(file)
  }
  mkdir(dir: string): void {
    this.inner.mkdir(dir)
  }
  rmdir(dir: string): void {
    this.inner.rmdir(dir)
  }
  syncDir(dir: string): void {
    this.inner.syncDir(dir)
  }
  realpath(file: string): string {
    return this.inner.realpath(file)
  }

  private unref(file: string): void {
    const held = this.pinned.get(file)
    assert(held !== undefined && held.refs > 0, 'pinned file released twice')
    if (--held.refs > 0) return
    this.pinned.delete(file)
    held.file.close()
  }

  /** A handle on a pinned descriptor whose close() gives back one reference. */
  private share(name: string, file: File): File {
    let closed = false
    return {
      path: file.path,
      read: (buf, offset, length, position) => file.read(buf, offset, length, position),
      write: () => {
        throw new Error(`${name} is open read-only`)
      },
      writeChunks: () => Promise.reject(new Error(`${name} is open read-only`)),
      datasync: () => file.datasync(),
      datasyncSync: () => file.datasyncSync(),
      size: () => file.size(),
      close: () => {
        if (closed) return
        closed = true
        this.unref(name)
      },
    }
  }
}
