import * as path from 'node:path'
import { StrataError, corruption, ioError } from '../base/errors.js'
import { parseFileName, walFileName } from '../base/file-names.js'
import { listDirectory, readExactly, readInto, type File, type FileSystem } from '../vfs/file-system.js'
import { RECORD_HEADER_BYTES, scanRecords } from '../wal/record-framing.js'
import { PAYLOAD_PREFIX_BYTES, forEachWalEntry, walRecordEpoch, walRecordLastSequence } from '../wal/wal-record.js'
import { readU32, readU64 } from '../base/coding.js'
import { EXPIRY_BYTES, KIND_PUT_EXPIRING, KIND_RANGE_DELETE, expiryOf } from '../base/entry.js'

/** One operation of a committed batch, as the change stream hands it out. */
export interface ChangeOp {
  /** 'delRange': every key in [key, end) (no `end`: to the last key) was deleted. */
  type: 'put' | 'del' | 'delRange'
  /** The key written; of a delRange, the start of the range. */
  key: Buffer
  /** The value of a put; absent for a delete. */
  value?: Buffer
  /** The end (exclusive) of a delRange; absent for no end and for other ops. */
  end?: Buffer
  /** The op's sequence number: the version a read returns for this value. */
  version: number
  /** When the put's value expires (ms since the epoch); absent when it never does. */
  expiresAt?: number
}

/** One committed write (a put, a delete, a batch, a transaction commit), exactly as committed. */
export interface ChangeBatch {
  /** Sequence number of the batch's last op: a snapshot at it sees the whole batch. */
  sequence: number
  ops: ChangeOp[]
}

/**
 * One WAL record as it is on disk (the raw mode replication ships: a follower
 * appends it verbatim, so sequences and epochs are the same everywhere).
 */
export interface WalRecordItem {
  firstSequence: number
  /** Sequence of its last entry, NOOPs included. */
  lastSequence: number
  epoch: number
  /** The record's payload (docs/format.md, "WAL record payload"): a view into the read chunk. */
  payload: Buffer
}

/** What a cursor hands out: committed batches, or whole WAL records. */
export type ChangeItem = ChangeBatch | WalRecordItem

/** What a change cursor reads from: the engine of the moment (a resume replaces it). */
export interface ChangeSource {
  readonly dir: string
  readonly fs: FileSystem
  readonly isOpen: boolean
  /** Sequence of the newest committed (resolved) write. */
  readonly visibleSequence: number
  /** The WAL new writes go to, and how many of its bytes hold committed writes. */
  committedWal(): { number: number; bytes: number }
  /**
   * The same for written records, committed or still waiting for
   * replication's commit (what is shipped to followers), and the sequence
   * they end at. Equal to the committed ones on a single node.
   */
  writtenWal(): { number: number; bytes: number; sequence: number }
  /** Resolves at the next commit, WAL switch or close. */
  nextCommit(): Promise<void>
}

/**
 * The open change cursors, shared by the engines a database runs through
 * (a resume keeps them). Obsolete-file deletion keeps every WAL at or above
 * the lowest number a cursor still reads (within `walRetentionBytes`).
 */
export class ChangeCursors {
  private readonly open = new Set<{ walNumber: number; close(): void }>()

  add(cursor: { walNumber: number; close(): void }): void {
    this.open.add(cursor)
  }

  delete(cursor: { walNumber: number; close(): void }): void {
    this.open.delete(cursor)
  }

  get size(): number {
    return this.open.size
  }

  /** The lowest WAL number an open cursor still needs; Infinity without cursors. */
  pinnedFrom(): number {
    let min = Infinity
    for (const c of this.open) min = Math.min(min, c.walNumber)
    return min
  }

  /** Ends every cursor (the database closed). */
  closeAll(): void {
    for (const c of [...this.open]) c.close()
  }
}

/** Bytes read from a WAL file at a time (more when one record is larger). */
const READ_CHUNK_BYTES = 1 << 20

/**
 * Reads committed batches, in sequence order, from the WAL files of the
 * directory: the retained WALs whose writes are already in tables, then the
 * live ones, and (with `live`) waits for new commits at the end. It holds
 * one read chunk at a time and nothing of the engine's memory, so a slow
 * consumer costs the engine only the WAL files it keeps on disk.
 *
 * Where to start: the WAL whose first sequence is the newest at or below
 * `since + 1`. When the oldest WAL on disk starts after that while there are
 * writes after `since`, the changes in between were in WALs retention
 * deleted: STRATA_CHANGES_TRUNCATED (the consumer resyncs from a
 * checkpoint). The same error ends a cursor whose next WAL was deleted
 * while it was behind.
 *
 * A WAL older than the active one is complete (the memtable switch happens
 * only when every write is in it) and is read to its end; the active one up
 * to its committed bytes, which only ever hold whole records.
 */
export class ChangeCursor<T extends ChangeItem = ChangeBatch> implements AsyncIterableIterator<T> {
  /** The WAL being read (kept on disk for this cursor: see ChangeCursors). */
  walNumber: number
  private file: File | undefined
  private offset = 0
  /** Sequence of the last batch read. */
  private since: number
  private ready: T[] = []
  private readyIndex = 0
  private ended = false
  /** Ends a live wait for the next commit (close() calls it). */
  private wake: (() => void) | undefined

  /**
   * @param mode 'batches' hands out committed batches (`db.changes()`);
   *   'records' whole WAL records, for shipping: `since` must then be a
   *   record boundary (the end of a group commit: what a checkpoint's
   *   sequence and a follower's last sequence always are), else
   *   STRATA_INVALID_ARGUMENT when the record holding `since + 1` is read.
   */
  constructor(
    private readonly source: () => ChangeSource,
    private readonly registry: ChangeCursors,
    since: number,
    private readonly live: boolean,
    private readonly mode: 'batches' | 'records' = 'batches',
  ) {
    this.since = since
    // Located synchronously and registered at once: no deletion can run in between.
    this.walNumber = this.locate(source())
    this.registry.add(this)
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this
  }

  async next(): Promise<IteratorResult<T>> {
    try {
      for (;;) {
        if (this.readyIndex < this.ready.length) return { value: this.ready[this.readyIndex++], done: false }
        if (this.ended) return { value: undefined, done: true }
        const src = this.source()
        if (!src.isOpen) break
        this.ready = this.readMore(src)
        this.readyIndex = 0
        if (this.ready.length > 0) continue
        if (!this.live) break
        // Nothing runs between the read above and this registration: no commit is missed.
        await new Promise<void>((resolve) => {
          this.wake = resolve
          void src.nextCommit().then(resolve)
        })
        this.wake = undefined
      }
    } catch (err) {
      this.close()
      throw err
    }
    this.close()
    return { value: undefined, done: true }
  }

  async return(): Promise<IteratorResult<T>> {
    this.close()
    return { value: undefined, done: true }
  }

  /** Ends the cursor and lets retention delete the WALs it kept. Idempotent. */
  close(): void {
    this.ended = true
    this.ready = []
    this.readyIndex = 0
    this.file?.close()
    this.file = undefined
    this.registry.delete(this)
    this.wake?.()
  }

  /** The WAL to start in (see the class comment); opens it. */
  private locate(src: ChangeSource): number {
    const wals = listWals(src.fs, src.dir)
    let start: number | undefined
    let oldestFirst: number | undefined
    for (const n of wals) {
      const first = firstSequenceOf(src.fs, path.join(src.dir, walFileName(n)))
      if (first === undefined) continue
      oldestFirst ??= first
      if (first <= this.since + 1) start = n
      else break
    }
    if (start === undefined) {
      if (this.since < (this.mode === 'records' ? src.writtenWal().sequence : src.visibleSequence)) {
        const kept = oldestFirst === undefined ? 'no WAL holds a change' : `the oldest retained WAL starts at sequence ${oldestFirst}`
        throw truncated(`${kept}; changes after ${this.since} are no longer kept`)
      }
      start = wals[0] ?? src.committedWal().number
    }
    return this.open(src, start)
  }

  private open(src: ChangeSource, number: number): number {
    const file = path.join(src.dir, walFileName(number))
    try {
      this.file = src.fs.open(file, 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw truncated(`WAL ${walFileName(number)} was deleted before this cursor read it`)
      throw ioError(`cannot open WAL ${file}`, err)
    }
    this.walNumber = number
    this.offset = 0
    return number
  }

  /** The batches of the next records after `since`; empty at the committed end. */
  private readMore(src: ChangeSource): T[] {
    for (;;) {
      // Records are shipped once written (a follower's ack commits them); batches are handed out once committed.
      const committed = this.mode === 'records' ? src.writtenWal() : src.committedWal()
      const complete = this.walNumber < committed.number
      const limit = complete ? this.file!.size() : this.walNumber === committed.number ? committed.bytes : 0
      if (this.offset < limit) {
        const batches = this.readRecords(limit, complete)
        if (batches !== undefined) {
          if (batches.length > 0) return batches
          continue
        }
      }
      if (!complete) {
        // The committed end: every resolved write has been read, unless some were in WALs already deleted.
        const end = this.mode === 'records' ? src.writtenWal().sequence : src.visibleSequence
        if (this.since < end) {
          throw truncated(`the WALs hold no changes between sequence ${this.since} and ${end}`)
        }
        return []
      }
      this.moveToNextWal(src)
    }
  }

  /**
   * Reads whole records from `offset` up to `limit`; undefined when the rest
   * of a complete WAL is a torn tail (what a crash left: recovery dropped it).
   */
  private readRecords(limit: number, complete: boolean): T[] | undefined {
    const name = walFileName(this.walNumber)
    let want = Math.min(limit - this.offset, READ_CHUNK_BYTES)
    for (;;) {
      const buf = Buffer.allocUnsafe(want)
      let got: number
      try {
        got = readInto(this.file!, buf, this.offset)
      } catch (err) {
        throw ioError(`read of WAL ${name} failed`, err)
      }
      const chunk = buf.subarray(0, got)
      const scan = scanRecords(chunk, name)
      if (scan.validBytes > 0) {
        this.offset += scan.validBytes
        return (this.mode === 'records' ? this.records(scan.payloads, name) : this.decode(scan.payloads, name)) as T[]
      }
      // No whole record in the chunk: a record larger than the chunk, or damage, or the file's tail.
      const needed = chunk.length >= RECORD_HEADER_BYTES ? RECORD_HEADER_BYTES + readU32(chunk, 0) : Infinity
      if (needed > want && needed <= limit - this.offset) {
        want = needed
        continue
      }
      if (!complete) throw corruption('committed WAL bytes do not hold a whole record', name, this.offset)
      // A torn tail ends the file; damage followed by intact records is corruption (scanRecords throws).
      if (this.offset + got < limit) scanRecords(readRest(this.file!, this.offset, limit, name), name)
      this.offset = limit
      return undefined
    }
  }

  /** Whole records after `since`, checked for density; a record `since` falls inside is refused. */
  private records(payloads: readonly Buffer[], name: string): WalRecordItem[] {
    const out: WalRecordItem[] = []
    for (const payload of payloads) {
      // Decoding checks the record's structure (the framing checked its bytes).
      forEachWalEntry(payload, name, () => undefined)
      const firstSequence = readU64(payload, 1)
      const lastSequence = walRecordLastSequence(payload)
      if (lastSequence <= this.since || lastSequence < firstSequence) continue
      if (firstSequence > this.since + 1) throw truncated(`the changes after sequence ${this.since} are gone (the next record kept starts at ${firstSequence})`)
      if (firstSequence < this.since + 1) {
        throw new StrataError('STRATA_INVALID_ARGUMENT', `sequence ${this.since} is inside a WAL record (${firstSequence}..${lastSequence}) of ${name}: records are read from a record boundary`)
      }
      out.push({ firstSequence, lastSequence, epoch: walRecordEpoch(payload), payload })
      this.since = lastSequence
    }
    return out
  }

  private decode(payloads: readonly Buffer[], name: string): ChangeBatch[] {
    const batches: ChangeBatch[] = []
    let ops: ChangeOp[] = []
    // A NOOP (a new leader's first entry in its epoch) is a batch of its own that holds nothing: it is
    // read past, not handed out, but it takes a sequence, so the density check counts it.
    const noop = (version: number): void => {
      if (version <= this.since) return
      if (version > this.since + 1) throw truncated(`the changes after sequence ${this.since} are gone (the next one kept is ${version})`)
      this.since = version
    }
    for (const payload of payloads) {
      forEachWalEntry(payload, name, (p, version, ks, ke, vs, ve, batchEnd, kind) => {
        // A batch that ends at or before `since` was handed out already: its ops are dropped at its end.
        if (vs < 0) ops.push({ type: 'del', key: p.subarray(ks, ke), version })
        else if (kind === KIND_RANGE_DELETE) ops.push(ve > vs ? { type: 'delRange', key: p.subarray(ks, ke), end: p.subarray(vs, ve), version } : { type: 'delRange', key: p.subarray(ks, ke), version })
        else if (kind !== KIND_PUT_EXPIRING) ops.push({ type: 'put', key: p.subarray(ks, ke), value: p.subarray(vs, ve), version })
        else ops.push({ type: 'put', key: p.subarray(ks, ke), value: p.subarray(vs + EXPIRY_BYTES, ve), version, expiresAt: expiryOf(p, vs) })
        if (!batchEnd) return
        if (version > this.since) {
          // Sequences are dense: a batch that does not start right after the last one read means a gap.
          if (ops[0].version > this.since + 1) throw truncated(`the changes after sequence ${this.since} are gone (the next one kept is ${ops[0].version})`)
          batches.push({ sequence: version, ops })
          this.since = version
        }
        ops = []
      }, noop)
    }
    return batches
  }

  /** After a complete WAL: the next one in number order (it exists: the active WAL is newer). */
  private moveToNextWal(src: ChangeSource): void {
    const current = this.walNumber
    const wals = listWals(src.fs, src.dir)
    const next = wals.find((n) => n > current)
    if (next === undefined) throw new StrataError('STRATA_CHANGES_TRUNCATED', `no WAL follows ${walFileName(current)}`)
    // Retention deletes the oldest WALs first: when this cursor's own WAL is
    // still there, none after it was deleted. Otherwise the next one must
    // start right after what was read.
    if (!wals.includes(current)) {
      const first = firstSequenceOf(src.fs, path.join(src.dir, walFileName(next)))
      if (first !== undefined && first > this.since + 1) {
        throw truncated(`WALs after ${walFileName(current)} were deleted while this cursor was behind (next retained sequence ${first}, read up to ${this.since})`)
      }
    }
    this.file?.close()
    this.file = undefined
    this.open(src, next)
  }
}

function readRest(file: File, offset: number, limit: number, name: string): Buffer {
  try {
    return readExactly(file, limit - offset, offset)
  } catch (err) {
    throw ioError(`read of WAL ${name} failed`, err)
  }
}

function truncated(message: string): StrataError {
  return new StrataError('STRATA_CHANGES_TRUNCATED', `${message}: resync from a checkpoint`)
}

/** The WAL numbers in the directory, ascending. */
function listWals(fs: FileSystem, dir: string): number[] {
  const names = listDirectory(fs, dir)
  const wals: number[] = []
  for (const name of names) {
    const f = parseFileName(name)
    if (f?.kind === 'wal') wals.push(f.number)
  }
  return wals.sort((a, b) => a - b)
}

/** The first sequence of a WAL's first record; undefined when it holds no whole record header (or was deleted). */
function firstSequenceOf(fs: FileSystem, file: string): number | undefined {
  let handle: File
  try {
    handle = fs.open(file, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw ioError(`cannot open WAL ${file}`, err)
  }
  try {
    const head = readExactly(handle, RECORD_HEADER_BYTES + PAYLOAD_PREFIX_BYTES, 0)
    if (head.length < RECORD_HEADER_BYTES + PAYLOAD_PREFIX_BYTES) return undefined
    return readU64(head, RECORD_HEADER_BYTES + 1)
  } catch (err) {
    throw ioError(`read of WAL ${file} failed`, err)
  } finally {
    handle.close()
  }
}
