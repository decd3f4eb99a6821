/**
 * Cuts a byte stream (a peer socket) into frame payloads. Frames are the
 * WAL's records (src/wal/record-framing.ts):
 *
 *   u32 payloadLength | u32 xxh32(payload) | u32 xxh32(first 8 header bytes, seed) | payload
 *
 * A stream has no torn tail to forgive: the first frame that is not intact
 * (header checksum, payload checksum, a length over `maxFrameBytes`) is a
 * protocol error and the reader stays failed, since nothing after a bad frame
 * can be trusted to start at a frame boundary. The length is checked against
 * the limit before its payload is waited for, so a garbage length cannot make
 * the reader buffer gigabytes.
 *
 * Linear in the bytes read, however they are chunked: chunks are only
 * collected in a list until the bytes the next step needs (a header, then a
 * whole frame) have arrived, and then concatenated once. Payloads returned
 * are views of those bytes (no copy per frame).
 *
 * Needs `await initChecksum()` (src/base/checksum.ts) before the first push.
 */
import { checksum32 } from '../../base/checksum.js'
import { readU32 } from '../../base/coding.js'
import { RECORD_HEADER_BYTES, RECORD_PAYLOAD_MAX_BYTES, recordHeaderValid } from '../../wal/record-framing.js'
import { PeerError } from './peer-error.js'

/** The default frame limit of the peer server and client: a checkpoint chunk or a batch of appends stays far below it. */
export const DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024

export class FrameReader {
  /** Chunks not yet consumed, in arrival order. */
  private chunks: Buffer[] = []
  private bufferedBytes = 0
  /** Bytes that must be buffered before parsing can make progress: a header, or the whole frame it announced. */
  private neededBytes = RECORD_HEADER_BYTES
  private failure: PeerError | null = null

  /** @param maxFrameBytes the largest payload accepted (1 .. RECORD_PAYLOAD_MAX_BYTES). */
  constructor(readonly maxFrameBytes: number) {
    if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 1 || maxFrameBytes > RECORD_PAYLOAD_MAX_BYTES) {
      throw new RangeError(`maxFrameBytes must be an integer in 1..${RECORD_PAYLOAD_MAX_BYTES}, got ${maxFrameBytes}`)
    }
  }

  /** Bytes received but not yet returned as payloads. */
  get pendingBytes(): number {
    return this.bufferedBytes
  }

  /**
   * Adds `chunk` (not copied: do not modify it afterwards) and returns the
   * payloads of the frames it completes, verified, in order. Throws
   * PeerError('protocol') on a damaged or oversized frame, and again on every
   * later push.
   */
  push(chunk: Buffer): Buffer[] {
    if (this.failure !== null) throw this.failure
    if (chunk.length === 0) return []
    this.chunks.push(chunk)
    this.bufferedBytes += chunk.length
    if (this.bufferedBytes < this.neededBytes) return []

    const buf = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.bufferedBytes)
    const payloads: Buffer[] = []
    let offset = 0
    this.neededBytes = RECORD_HEADER_BYTES
    while (buf.length - offset >= RECORD_HEADER_BYTES) {
      if (!recordHeaderValid(buf, offset)) throw this.fail(`frame header checksum mismatch at stream byte +${offset}`)
      const payloadBytes = readU32(buf, offset)
      if (payloadBytes > this.maxFrameBytes) throw this.fail(`frame of ${payloadBytes} bytes exceeds maxFrameBytes ${this.maxFrameBytes}`)
      const frameEnd = offset + RECORD_HEADER_BYTES + payloadBytes
      if (frameEnd > buf.length) {
        this.neededBytes = RECORD_HEADER_BYTES + payloadBytes
        break
      }
      const payload = buf.subarray(offset + RECORD_HEADER_BYTES, frameEnd)
      if (checksum32(payload) !== readU32(buf, offset + 4)) throw this.fail(`frame payload checksum mismatch (${payloadBytes} bytes)`)
      payloads.push(payload)
      offset = frameEnd
    }
    const rest = offset === buf.length ? null : buf.subarray(offset)
    this.chunks = rest === null ? [] : [rest]
    this.bufferedBytes = rest === null ? 0 : rest.length
    return payloads
  }

  private fail(what: string): PeerError {
    this.failure = new PeerError('protocol', what)
    this.chunks = []
    this.bufferedBytes = 0
    return this.failure
  }
}
