import * as fs from 'node:fs'
import type { File, FileStat, FileSystem, OpenFlags } from './file-system.js'

/** An open file descriptor. */
class NodeFile implements File {
  private fd: number

  constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd
  }

  read(buf: Uint8Array, offset: number, length: number, position: number): number {
    return fs.readSync(this.fd, buf, offset, length, position)
  }

  write(buf: Uint8Array, offset: number, length: number, position: number | null): number {
    return fs.writeSync(this.fd, buf, offset, length, position)
  }

  async writeChunks(chunks: readonly Uint8Array[]): Promise<void> {
    let pending = chunks.filter((c) => c.length > 0)
    while (pending.length > 0) {
      const written = await new Promise<number>((resolve, reject) => {
        fs.writev(this.fd, pending as NodeJS.ArrayBufferView[], (err, n) => (err ? reject(err) : resolve(n)))
      })
      // A short writev: drop what was written and continue with the rest.
      let skip = written
      while (pending.length > 0 && skip >= pending[0].length) skip -= pending.shift()!.length
      if (skip > 0) pending[0] = pending[0].subarray(skip)
    }
  }

  datasync(): Promise<void> {
    return new Promise((resolve, reject) => fs.fdatasync(this.fd, (err) => (err ? reject(err) : resolve())))
  }

  datasyncSync(): void {
    fs.fdatasyncSync(this.fd)
  }

  size(): number {
    return fs.fstatSync(this.fd).size
  }

  close(): void {
    if (this.fd < 0) return
    const fd = this.fd
    this.fd = -1
    try {
      fs.closeSync(fd)
    } catch {
      // close(2) reports nothing the last fsync did not; the descriptor is gone either way.
    }
  }
}

/** The real file system, through Node's synchronous calls (and the thread pool for fsync and chunked writes). */
export const nodeFileSystem: FileSystem = {
  open(file: string, flags: OpenFlags): File {
    return new NodeFile(file, fs.openSync(file, flags))
  },
  readFile(file: string): Buffer {
    return fs.readFileSync(file)
  },
  rename(from: string, to: string): void {
    fs.renameSync(from, to)
  },
  link(from: string, to: string): void {
    fs.linkSync(from, to)
  },
  unlink(file: string): void {
    fs.unlinkSync(file)
  },
  unlinkAsync(file: string): Promise<void> {
    return fs.promises.unlink(file)
  },
  readdir(dir: string): string[] {
    return fs.readdirSync(dir)
  },
  stat(file: string): FileStat {
    const s = fs.statSync(file)
    return { size: s.size, isDirectory: s.isDirectory(), isFile: s.isFile(), mtimeMs: s.mtimeMs }
  },
  mkdir(dir: string): void {
    fs.mkdirSync(dir, { recursive: true })
  },
  rmdir(dir: string): void {
    fs.rmdirSync(dir)
  },
  syncDir(dir: string): void {
    const fd = fs.openSync(dir, 'r')
    try {
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
  },
  realpath(file: string): string {
    return fs.realpathSync(file)
  },
}
