import { corruption, ioError } from '../base/errors.js'
import { framedPayloadsInMemory, scanRecords } from './record-framing.js'
import type { FileSystem } from '../vfs/file-system.js'
import { decodeWalRecord, forEachWalEntry, walRecordLastSequence, type WalBatch, type WalEntryVisitor } from './wal-record.js'

/** What replaying one WAL file found. */
export interface WalContents {
  batches: WalBatch[]
  /** Bytes of intact records; anything after them was a torn or garbage tail. */
  validBytes: number
  tornTail: boolean
}

/**
 * Reads a whole WAL file. A torn or garbage tail ends the log cleanly; a damaged
 * record followed by intact ones, or an intact record that does not decode,
 * throws STRATA_CORRUPTION.
 */
export function readWal(fs: FileSystem, path: string): WalContents {
  const scan = scanRecords(readWalFile(fs, path), path)
  const batches = scan.payloads.map((p) => decodeWalRecord(p, path))
  return { batches, validBytes: scan.validBytes, tornTail: scan.tornTail }
}

/** What visiting a WAL file found. */
export interface WalVisit {
  entries: number
  records: number
  /** Bytes after the last intact record (a torn or damaged tail, dropped). */
  droppedBytes: number
  /** Records in that tail (see RecordScan.tailRecords). */
  droppedRecords: number
  /** Sequence of the last entry of the intact records, NOOPs included (0 when there are none). */
  lastSequence: number
}

/**
 * Visits every entry of a WAL file without making objects per entry (replay
 * and flush read whole memtables this way).
 */
export function visitWal(fs: FileSystem, path: string, visit: WalEntryVisitor): WalVisit {
  const buf = readWalFile(fs, path)
  const scan = scanRecords(buf, path)
  const entries = visitPayloads(scan.payloads, path, visit)
  let lastSequence = 0
  for (const p of scan.payloads) lastSequence = Math.max(lastSequence, walRecordLastSequence(p))
  return { entries, records: scan.payloads.length, droppedBytes: buf.length - scan.validBytes, droppedRecords: scan.tailRecords, lastSequence }
}

/**
 * Visits every entry of the records this process framed in `buf` (a frozen
 * memtable's record arena): headers are checked, payload checksums are not
 * computed again (framedPayloadsInMemory).
 */
export function visitRecordsInMemory(buf: Buffer, name: string, visit: WalEntryVisitor): number {
  return visitPayloads(framedPayloadsInMemory(buf, name), name, visit)
}

function visitPayloads(payloads: readonly Buffer[], name: string, visit: WalEntryVisitor): number {
  let n = 0
  let lastSequence = 0
  for (const payload of payloads) {
    n += forEachWalEntry(payload, name, (p, seq, ks, ke, vs, ve, end, kind) => {
      if (seq <= lastSequence) throw corruption(`WAL sequence ${seq} does not follow ${lastSequence}`, name)
      lastSequence = seq
      visit(p, seq, ks, ke, vs, ve, end, kind)
    })
  }
  return n
}

function readWalFile(fs: FileSystem, path: string): Buffer {
  try {
    return fs.readFile(path)
  } catch (err) {
    throw ioError(`cannot read WAL ${path}`, err)
  }
}
