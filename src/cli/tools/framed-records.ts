/**
 * The framed records of a log (a WAL or a manifest) read leniently: every
 * intact record, and every damaged range between them classified as a torn
 * append, a damaged tail or damage followed by intact records, going past
 * damage the way recovery decides about it (src/wal/record-framing.ts).
 */
import { readU32 } from '../../base/coding.js'
import { RECORD_HEADER_BYTES, headerOfTornAppend, intactRecordLength, recordHeaderValid } from '../../wal/record-framing.js'

/** An intact record: [offset, end) in the file, payload = bytes after the 12-byte header. */
export interface FramedRecord {
  offset: number
  end: number
  payload: Buffer
}

/**
 * A range of bytes that is not intact records:
 *  - 'torn': an append cut short at the end of the file (what a crash leaves);
 *  - 'damaged-tail': damage with no intact record after it (garbage or a bad last record);
 *  - 'damaged': damage followed by an intact record at `end`.
 */
export interface DamagedRange {
  offset: number
  end: number
  kind: 'torn' | 'damaged-tail' | 'damaged'
  /** Whether the first bytes are a header whose own checksum matches (a complete record with a bad payload when it fits the file). */
  headerValid: boolean
}

export interface RecordWalk {
  records: FramedRecord[]
  damage: DamagedRange[]
}

/**
 * Splits a log into its intact records and the damaged ranges between them,
 * going past damage the way `scanRecords` decides about it: after a damaged
 * record whose header is valid, the search for the next intact record starts
 * at its claimed end, else at the next byte; an append cut short ends the log.
 */
export function walkRecords(buf: Buffer): RecordWalk {
  const records: FramedRecord[] = []
  const damage: DamagedRange[] = []
  let offset = 0
  while (offset < buf.length) {
    const length = intactRecordLength(buf, offset)
    if (length > 0) {
      records.push({ offset, end: offset + length, payload: buf.subarray(offset + RECORD_HEADER_BYTES, offset + length) })
      offset += length
      continue
    }
    const headerValid = recordHeaderValid(buf, offset)
    if (headerOfTornAppend(buf, offset)) {
      damage.push({ offset, end: buf.length, kind: 'torn', headerValid })
      break
    }
    const from = headerValid ? offset + RECORD_HEADER_BYTES + readU32(buf, offset) : offset + 1
    let next = -1
    for (let p = from; p + RECORD_HEADER_BYTES <= buf.length; p++) {
      if (intactRecordLength(buf, p) > 0) {
        next = p
        break
      }
    }
    if (next < 0) {
      damage.push({ offset, end: buf.length, kind: 'damaged-tail', headerValid })
      break
    }
    damage.push({ offset, end: next, kind: 'damaged', headerValid })
    offset = next
  }
  return { records, damage }
}
