import { fileClassOf, type File, type FileClass, type FileStat, type FileSystem, type OpenFlags } from './file-system.js'

/** The kinds of call a fault can be injected into. */
export type FileOp = 'open' | 'read' | 'write' | 'sync' | 'syncDir' | 'rename' | 'link' | 'unlink' | 'readdir' | 'stat' | 'mkdir' | 'rmdir'

/**
 * What an injected fault does:
 *  - 'ENOSPC', 'EIO': the call fails with that errno and changes nothing;
 *  - 'short-write' (writes only): the first half of the bytes reach the file,
 *    then the call fails with ENOSPC;
 *  - 'crash': the process "dies" in the call: it never completes, and from
 *    then on no call reaches the disk (each throws SimulatedCrash), so the
 *    directory is left exactly as a kill -9 at that instant would leave it.
 */
export type Fault = 'ENOSPC' | 'EIO' | 'short-write' | 'crash'

/** A call site of the seam: an operation on a class of file. */
export interface Site {
  op: FileOp
  fileClass: FileClass
}

export interface FaultRule extends Site {
  /** Fail the nth call (1-based, counted since the file system was made) of this site. */
  nth: number
  fault: Fault
  /** Keep failing every later call of the site too, until `heal()`. Default false. */
  sticky?: boolean
}

/** Thrown by every call once a 'crash' fault fired. */
export class SimulatedCrash extends Error {
  constructor(site: string) {
    super(`simulated crash at ${site}`)
    this.name = 'SimulatedCrash'
  }
}

function errnoError(code: 'ENOSPC' | 'EIO', op: FileOp, file: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: injected fault, ${op} '${file}'`)
  err.code = code
  err.errno = code === 'ENOSPC' ? -28 : -5
  err.syscall = op
  err.path = file
  return err
}

/**
 * Wraps a file system, counts every call by site, and fails the calls its
 * rules name (as Pebble's errorfs and LevelDB's fault_injection_test).
 */
export class FaultInjectingFileSystem implements FileSystem {
  /** Calls made so far, by site name. */
  readonly counts = new Map<string, number>()
  /** Faults that fired, in order. */
  readonly fired: Array<{ site: string; call: number; fault: Fault }> = []
  private rules: FaultRule[] = []
  private crashedAt: string | undefined

  constructor(private readonly inner: FileSystem) {}

  /** Adds a rule; returns this. */
  inject(rule: FaultRule): this {
    if (rule.fault === 'short-write' && rule.op !== 'write') throw new TypeError('short-write applies to writes only')
    this.rules.push(rule)
    return this
  }

  /** Removes every rule (a full disk was cleared, a bad sector remapped). A crash stays a crash. */
  heal(): void {
    this.rules = []
  }

  get crashed(): boolean {
    return this.crashedAt !== undefined
  }

  /**
   * Counts a call and decides its fate: undefined to run it, else the fault
   * to apply (a 'short-write' is applied by the write itself).
   */
  private enter(op: FileOp, file: string, fileClass: FileClass = fileClassOf(file)): Fault | undefined {
    if (this.crashedAt !== undefined) throw new SimulatedCrash(this.crashedAt)
    const site = `${op}:${fileClass}`
    const call = (this.counts.get(site) ?? 0) + 1
    this.counts.set(site, call)
    const rule = this.rules.find((r) => r.op === op && r.fileClass === fileClass && (r.sticky === true ? call >= r.nth : call === r.nth))
    if (rule === undefined) return undefined
    this.fired.push({ site, call, fault: rule.fault })
    if (rule.fault === 'crash') {
      this.crashedAt = `${site}#${call}`
      throw new SimulatedCrash(this.crashedAt)
    }
    if (rule.fault === 'short-write') return rule.fault
    throw errnoError(rule.fault, op, file)
  }

  /** Called by a file for its own operations. */
  check(op: FileOp, file: string): Fault | undefined {
    return this.enter(op, file)
  }

  open(file: string, flags: OpenFlags): File {
    this.enter('open', file)
    return new FaultInjectingFile(this, this.inner.open(file, flags))
  }

  readFile(file: string): Buffer {
    this.enter('read', file)
    return this.inner.readFile(file)
  }

  rename(from: string, to: string): void {
    this.enter('rename', to)
    this.inner.rename(from, to)
  }

  link(from: string, to: string): void {
    this.enter('link', to)
    this.inner.link(from, to)
  }

  unlink(file: string): void {
    this.enter('unlink', file)
    this.inner.unlink(file)
  }

  async unlinkAsync(file: string): Promise<void> {
    this.enter('unlink', file)
    await this.inner.unlinkAsync(file)
  }

  readdir(dir: string): string[] {
    this.enter('readdir', dir, 'directory')
    return this.inner.readdir(dir)
  }

  stat(file: string): FileStat {
    this.enter('stat', file)
    return this.inner.stat(file)
  }

  mkdir(dir: string): void {
    this.enter('mkdir', dir, 'directory')
    this.inner.mkdir(dir)
  }

  rmdir(dir: string): void {
    this.enter('rmdir', dir, 'directory')
    this.inner.rmdir(dir)
  }

  syncDir(dir: string): void {
    this.enter('syncDir', dir, 'directory')
    this.inner.syncDir(dir)
  }

  realpath(file: string): string {
    this.enter('stat', file)
    return this.inner.realpath(file)
  }
}

class FaultInjectingFile implements File {
  constructor(
    private readonly fs: FaultInjectingFileSystem,
    private readonly inner: File,
  ) {}

  get path(): string {
    return this.inner.path
  }

  read(buf: Uint8Array, offset: number, length: number, position: number): number {
    this.fs.check('read', this.inner.path)
    return this.inner.read(buf, offset, length, position)
  }

  write(buf: Uint8Array, offset: number, length: number, position: number | null): number {
    if (this.fs.check('write', this.inner.path) === 'short-write') {
      const half = length >> 1
      let done = 0
      while (done < half) done += this.inner.write(buf, offset + done, half - done, position === null ? null : position + done)
      throw errnoError('ENOSPC', 'write', this.inner.path)
    }
    return this.inner.write(buf, offset, length, position)
  }

  async writeChunks(chunks: readonly Uint8Array[]): Promise<void> {
    if (this.fs.check('write', this.inner.path) === 'short-write') {
      const total = chunks.reduce((n, c) => n + c.length, 0)
      let left = total >> 1
      const half: Uint8Array[] = []
      for (const c of chunks) {
        if (left === 0) break
        half.push(c.subarray(0, Math.min(left, c.length)))
        left -= half[half.length - 1].length
      }
      await this.inner.writeChunks(half)
      throw errnoError('ENOSPC', 'write', this.inner.path)
    }
    await this.inner.writeChunks(chunks)
  }

  async datasync(): Promise<void> {
    this.fs.check('sync', this.inner.path)
    await this.inner.datasync()
  }

  datasyncSync(): void {
    this.fs.check('sync', this.inner.path)
    this.inner.datasyncSync()
  }

  size(): number {
    this.fs.check('stat', this.inner.path)
    return this.inner.size()
  }

  close(): void {
    this.inner.close()
  }
}
