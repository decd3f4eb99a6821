import { assert } from '../base/assert.js'
import { compareKeys, copyBytes, keysEqual } from '../base/coding.js'
import { EMPTY_VALUE, EXPIRY_BYTES, KIND_BLOB, KIND_BLOB_EXPIRING, KIND_PUT, KIND_PUT_EXPIRING, expiryOf, isExpiringKind, tightestBounds, type BlobResolver, type KeyRange } from '../base/entry.js'
import type { RangeTombstoneIndex } from '../base/range-tombstones.js'
import type { InternalIterator } from './internal-iterator.js'
import { MergingIterator } from './merging-iterator.js'

/** Entries yielded between macrotask yields, so a long scan does not starve I/O callbacks. */
const ENTRIES_PER_YIELD = 1024

/**
 * The user-facing iterator: merges every source, hides versions newer than its
 * sequence number and older versions shadowed by newer ones, drops deletes and
 * expired puts (by `clock` at each step), and applies bounds and limit. The
 * point in time is fixed at creation; the sources
 * (memtables and a referenced table version) stay readable until `close`.
 *
 * Yields fresh copies of keys and values, which the caller owns. With
 * `values` false (keys only) no value is copied: every entry's value is
 * EMPTY_VALUE, a shared zero-length Buffer.
 */
export class DbIterator implements AsyncIterableIterator<[Buffer, Buffer]> {
  private readonly merge: MergingIterator
  /** At most one bound per side: the stricter of gt/gte and of lt/lte. */
  private readonly range: KeyRange
  private started = false
  private done = false
  private emitted = 0
  private sinceYield = 0

  constructor(
    children: InternalIterator[],
    private readonly sequence: number,
    range: KeyRange,
    private readonly reverse: boolean,
    private readonly limit: number,
    private readonly release: () => void,
    /** Release the sources on reaching the end (false: only close() does, so seek can continue). */
    private readonly closeAtEnd = true,
    /** Copy values (false: keys only, every value is EMPTY_VALUE, and no blob file is read). */
    private readonly values = true,
    /** Reads separated values (KIND_BLOB entries), in key order as the iterator steps. */
    private readonly blobs?: BlobResolver,
    /** Expiry times are compared with this clock's reading (ms since the epoch) when an expiring entry is met. */
    private readonly clock: () => number = Date.now,
    /** Range deletes visible at `sequence`: a version older than one covering its key is deleted. */
    private readonly rangeDeletes?: RangeTombstoneIndex,
  ) {
    this.merge = new MergingIterator(children, reverse)
    this.range = tightestBounds(range)
  }

  [Symbol.asyncIterator](): this {
    return this
  }

  /** Not an async function: an already resolved promise per entry, a turn of the event loop every ENTRIES_PER_YIELD. */
  next(): Promise<IteratorResult<[Buffer, Buffer]>> {
    if (++this.sinceYield >= ENTRIES_PER_YIELD) {
      this.sinceYield = 0
      return new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.result())
    }
    try {
      return Promise.resolve(this.result())
    } catch (err) {
      return Promise.reject(err)
    }
  }

  private result(): IteratorResult<[Buffer, Buffer]> {
    const entry = this.nextSync()
    return entry === undefined ? { done: true, value: undefined } : { done: false, value: entry }
  }

  async return(): Promise<IteratorResult<[Buffer, Buffer]>> {
    this.close()
    return { done: true, value: undefined }
  }

  /** The next entry, or undefined at the end (which also closes the iterator). */
  nextSync(): [Buffer, Buffer] | undefined {
    if (this.done) return undefined
    try {
      if (!this.started) {
        this.started = true
        this.position()
      }
      const entry = this.emitted < this.limit ? (this.reverse ? this.stepBackward() : this.stepForward()) : undefined
      if (entry === undefined) {
        if (this.closeAtEnd) this.close()
      } else {
        this.emitted++
      }
      return entry
    } catch (err) {
      this.close()
      throw err
    }
  }

  /** Releases the sources; idempotent. Called automatically at the end and by `break`. */
  close(): void {
    if (this.done) return
    this.done = true
    this.merge.close()
    this.release()
  }

  /**
   * Repositions at the first key >= target (reverse: the last key <= target),
   * still within the bounds; a target outside them ends the iteration.
   * The point in time, the bounds and the count toward `limit` are kept.
   */
  seek(target: Buffer): void {
    if (this.done) return
    this.started = true
    const { gt, gte, lt, lte } = this.range
    if (!this.reverse) {
      if (gt !== undefined && compareKeys(target, gt) <= 0) this.merge.seek((c) => c.seekGT(gt))
      else if (gte !== undefined && compareKeys(target, gte) < 0) this.merge.seek((c) => c.seekGE(gte))
      else this.merge.seek((c) => c.seekGE(target))
    } else {
      if (lt !== undefined && compareKeys(target, lt) >= 0) this.merge.seek((c) => c.seekLT(lt))
      else if (lte !== undefined && compareKeys(target, lte) > 0) this.merge.seek((c) => c.seekLE(lte))
      else this.merge.seek((c) => c.seekLE(target))
    }
  }

  /**
   * Forward only: the first key in range with any entry (put or delete) whose
   * sequence is above `sequence`, ignoring visibility; undefined if none.
   * Used to detect writes into a range a transaction scanned (phantoms).
   */
  firstNewerThan(sequence: number): Buffer | undefined {
    if (!this.started) {
      this.started = true
      this.position()
    }
    const m = this.merge
    for (; m.valid(); m.advance()) {
      const top = m.top()
      if (this.pastUpperBound(top.key())) return undefined
      if (top.sequence() > sequence) return copyOf(top.key())
    }
    return undefined
  }

  private position(): void {
    const { gt, gte, lt, lte } = this.range
    if (!this.reverse) {
      if (gte !== undefined) this.merge.seek((c) => c.seekGE(gte))
      else if (gt !== undefined) this.merge.seek((c) => c.seekGT(gt))
      else this.merge.seek((c) => c.seekToFirst())
    } else {
      if (lte !== undefined) this.merge.seek((c) => c.seekLE(lte))
      else if (lt !== undefined) this.merge.seek((c) => c.seekLT(lt))
      else this.merge.seek((c) => c.seekToLast())
    }
  }

  private pastUpperBound(key: Buffer): boolean {
    const { lt, lte } = this.range
    if (lt !== undefined && compareKeys(key, lt) >= 0) return true
    if (lte !== undefined && compareKeys(key, lte) > 0) return true
    return false
  }

  private pastLowerBound(key: Buffer): boolean {
    const { gt, gte } = this.range
    if (gt !== undefined && compareKeys(key, gt) <= 0) return true
    if (gte !== undefined && compareKeys(key, gte) < 0) return true
    return false
  }

  /**
   * What the newest visible entry of a key, of `kind` with value bytes
   * `bytes` (owned: a copy, else a view), yields: a copy of its inline value,
   * the separated value its blob reference names, EMPTY_VALUE without
   * `values`, or undefined for a delete or an expired put.
   */
  private valueOf(kind: number, bytes: Uint8Array, owned: boolean): Buffer | undefined {
    switch (kind) {
      case KIND_PUT:
        return !this.values ? EMPTY_VALUE : owned ? (bytes as Buffer) : copyOf(bytes)
      case KIND_BLOB:
        return this.values ? this.resolve(bytes) : EMPTY_VALUE
      case KIND_PUT_EXPIRING:
      case KIND_BLOB_EXPIRING:
        if (expiryOf(bytes) <= this.clock()) return undefined
        return this.valueOf(kind === KIND_PUT_EXPIRING ? KIND_PUT : KIND_BLOB, bytes.subarray(EXPIRY_BYTES), owned)
      default:
        return undefined
    }
  }

  /** True when a range delete visible to this iterator covers `key` and is newer than its version `seq`. */
  private rangeDeleted(key: Buffer, seq: number): boolean {
    return this.rangeDeletes !== undefined && this.rangeDeletes.coveringSequence(key, this.sequence) > seq
  }

  private resolve(reference: Uint8Array): Buffer {
    assert(this.blobs !== undefined, 'a blob reference reached an iterator without blob files')
    return this.blobs(reference, 'iterator')
  }

  /** Forward: versions of a key arrive newest first; the first visible one decides. */
  private stepForward(): [Buffer, Buffer] | undefined {
    const m = this.merge
    while (m.valid()) {
      const top = m.top()
      if (this.pastUpperBound(top.key())) return undefined
      if (top.sequence() > this.sequence) {
        m.advance()
        continue
      }
      const key = copyOf(top.key())
      const value = this.rangeDeleted(key, top.sequence()) ? undefined : this.valueOf(top.kind(), top.value(), false)
      m.advance()
      while (m.valid() && keysEqual(m.top().key(), key)) m.advance()
      if (value !== undefined) return [key, value]
    }
    return undefined
  }

  /** Reverse: versions of a key arrive oldest first; the last visible one decides. */
  private stepBackward(): [Buffer, Buffer] | undefined {
    const m = this.merge
    while (m.valid()) {
      const first = m.top()
      if (this.pastLowerBound(first.key())) return undefined
      const key = copyOf(first.key())
      let newest: InternalIterator | undefined
      let bytes: Buffer = EMPTY_VALUE
      let kind = -1
      let seq = 0
      while (m.valid() && keysEqual(m.top().key(), key)) {
        newest = m.top()
        if (newest.sequence() <= this.sequence) {
          seq = newest.sequence()
          // Copied (a blob reference is copied, not read: only the newest visible version is); keys only: the expiry time at most.
          kind = newest.kind()
          const raw = newest.value()
          bytes = this.values ? copyOf(raw) : isExpiringKind(kind) ? Buffer.from(raw.subarray(0, EXPIRY_BYTES)) : EMPTY_VALUE
        }
        m.advance()
      }
      const value = kind < 0 || this.rangeDeleted(key, seq) ? undefined : this.valueOf(kind, bytes, true)
      if (value !== undefined) return [key, value]
    }
    return undefined
  }
}

/** A copy the caller keeps (a Buffer from the pool when small), made without Buffer.from's generic path. */
function copyOf(bytes: Uint8Array): Buffer {
  return copyBytes(bytes, 0, bytes.length)
}
