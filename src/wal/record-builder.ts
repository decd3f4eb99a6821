import { assert } from '../base/assert.js'
import { copyRange, writeU32, writeU64, writeVarint } from '../base/coding.js'
import { RecordArena } from './record-arena.js'
import { RECORD_HEADER_BYTES, frameRecordInPlace } from './record-framing.js'
import { EXPIRY_BYTES, KIND_DELETE, KIND_PUT, KIND_PUT_EXPIRING, KIND_RANGE_DELETE, type WriteOp } from '../base/entry.js'
import { BATCH_END, KIND_NOOP, PAYLOAD_HEADER_BYTES, PAYLOAD_PREFIX_BYTES, WAL_FORMAT_VERSION } from './wal-record.js'

/**
 * Builds WAL records in place in a memtable's record arena, one write at a
 * time: each write's key and value bytes are copied into the open record when
 * the write is applied (so the caller may reuse its buffers at once), and the
 * record is framed (count, checksums) when the group is written. The layout is
 * docs/format.md's "WAL record payload": a group of writes
 * is one record, applied whole or not at all after a crash.
 *
 * A record never spans arena chunks and stays under `maxRecordBytes`: a
 * write that does not fit closes the open record and starts the next one.
 */
export class WalRecordBuilder {
  /** The arena's free tail from the open record's first byte; undefined when no record is open. */
  private buf: Buffer | undefined
  private used = 0
  private count = 0
  private readonly closed: Buffer[] = []

  constructor(
    private readonly arena: RecordArena,
    private readonly maxRecordBytes: number,
    /** The replication epoch written into every record (0 on a single node). */
    private epoch = 0,
  ) {}

  /** Records from now on carry `epoch`; the open record is closed first, so no record mixes epochs. */
  setEpoch(epoch: number): void {
    if (epoch === this.epoch) return
    this.close()
    this.epoch = epoch
  }

  /** Appends a record holding one NOOP entry with `sequence` (a write of its own: docs/format.md). */
  appendNoop(sequence: number): void {
    const payload = Buffer.alloc(PAYLOAD_HEADER_BYTES + 1)
    payload[0] = WAL_FORMAT_VERSION
    writeU64(payload, 1, sequence)
    writeU32(payload, 9, 1)
    writeU64(payload, PAYLOAD_PREFIX_BYTES, this.epoch)
    payload[PAYLOAD_HEADER_BYTES] = KIND_NOOP | BATCH_END
    this.appendPayload(payload)
  }

  /** True when no write is waiting to be written. */
  get isEmpty(): boolean {
    return this.buf === undefined && this.closed.length === 0
  }

  /**
   * Appends one write's `ops` (the first gets `firstSequence`, the rest
   * follow; the last is marked as the write's end) and
   * returns the buffer they now lie in; `offsets` receives two numbers per op,
   * relative to that buffer: its key and its value (-1 for a delete).
   * `opBytes` is the ops' encodedOpBytes sum.
   */
  append(ops: readonly WriteOp[], opBytes: number, firstSequence: number, offsets: number[]): Buffer {
    if (this.buf !== undefined && (this.used + opBytes > this.buf.length || this.used + opBytes > this.maxRecordBytes)) this.close()
    let buf = this.buf
    if (buf === undefined) {
      buf = this.buf = this.arena.tail(RECORD_HEADER_BYTES + PAYLOAD_HEADER_BYTES + opBytes)
      let o = RECORD_HEADER_BYTES
      buf[o++] = WAL_FORMAT_VERSION
      writeU64(buf, o, firstSequence)
      writeU64(buf, RECORD_HEADER_BYTES + PAYLOAD_PREFIX_BYTES, this.epoch)
      this.used = RECORD_HEADER_BYTES + PAYLOAD_HEADER_BYTES
      this.count = 0
    }
    let o = this.used
    const last = ops.length - 1
    for (let i = 0; i < ops.length; i++) {
      const { key, value, expiresAt } = ops[i]
      const expiring = value !== null && expiresAt !== undefined
      const kind = value === null ? KIND_DELETE : expiring ? KIND_PUT_EXPIRING : ops[i].rangeDelete === true ? KIND_RANGE_DELETE : KIND_PUT
      buf[o++] = kind | (i === last ? BATCH_END : 0)
      o = writeVarint(buf, o, key.length)
      offsets.push(o)
      o = copyRange(buf, o, key, 0, key.length)
      if (value !== null) {
        if (expiring) {
          // The value span (what the memtable indexes) starts at the expiry time.
          o = writeVarint(buf, o, value.length + EXPIRY_BYTES)
          offsets.push(o)
          writeU64(buf, o, expiresAt)
          o = copyRange(buf, o + EXPIRY_BYTES, value, 0, value.length)
        } else {
          o = writeVarint(buf, o, value.length)
          offsets.push(o)
          o = copyRange(buf, o, value, 0, value.length)
        }
      } else {
        offsets.push(-1)
      }
    }
    assert(o - this.used === opBytes, 'WAL record size mismatch')
    this.used = o
    this.count += ops.length
    return buf
  }

  /**
   * Appends a whole record payload written elsewhere (replication) as a
   * record of its own, verbatim: closes the open record first. Returns the
   * buffer the payload now lies in and where it starts.
   */
  appendPayload(payload: Buffer): { buf: Buffer; start: number } {
    this.close()
    const bytes = RECORD_HEADER_BYTES + payload.length
    const buf = this.arena.tail(bytes)
    buf.set(payload, RECORD_HEADER_BYTES)
    const record = buf.subarray(0, bytes)
    frameRecordInPlace(record)
    this.arena.commit(bytes)
    this.closed.push(record)
    return { buf: record, start: RECORD_HEADER_BYTES }
  }

  /** Frames the open record and every closed one, and hands them out in order. */
  take(): Buffer[] {
    this.close()
    return this.closed.splice(0)
  }

  private close(): void {
    const buf = this.buf
    if (buf === undefined) return
    this.buf = undefined
    writeU32(buf, RECORD_HEADER_BYTES + 9, this.count)
    const record = buf.subarray(0, this.used)
    frameRecordInPlace(record)
    this.arena.commit(this.used)
    this.closed.push(record)
  }
}

/**
 * One framed record holding `ops` (the first taking `firstSequence`), in a
 * buffer of its own: what the WAL tests write by hand. `opBytes` is the ops'
 * encodedOpBytes sum.
 */
export function encodeWalRecord(firstSequence: number, ops: readonly WriteOp[], opBytes: number): Buffer {
  const builder = new WalRecordBuilder(new RecordArena(), Infinity)
  builder.append(ops, opBytes, firstSequence, [])
  const [record] = builder.take()
  return Buffer.from(record) // a copy: the arena's chunk is shared memory
}
