import * as fs from 'node:fs'
import { corruption, ioError } from '../base/errors.js'
import { scanRecords } from './record-format.js'
import { decodeWalRecord, forEachWalEntry, type WalBatch, type WalEntryVisitor } from './wal-record.js'

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
export function readWal(path: string): WalContents {
  const scan = scanRecords(readWalFile(path), path)
  const batches = scan.payloads.map((p) => decodeWalRecord(p, path))
  return { batches, validBytes: scan.validBytes, tornTail: scan.tornTail }
}

/**
 * Visits every entry of a WAL file without making objects per entry (replay
 * and flush read whole memtables this way); returns the entry count.
 */
export function visitWal(path: string, visit: WalEntryVisitor): number {
  return visitRecords(readWalFile(path), path, visit)
}

/** Visits every entry of the framed records in `buf` (a WAL file's bytes, or a memtable's record arena). */
export function visitRecords(buf: Buffer, name: string, visit: WalEntryVisitor): number {
  let n = 0
  let lastSequence = 0
  for (const payload of scanRecords(buf, name).payloads) {
    n += forEachWalEntry(payload, name, (p, seq, ks, ke, vs, ve) => {
      if (seq <= lastSequence) throw corruption(`WAL sequence ${seq} does not follow ${lastSequence}`, name)
      lastSequence = seq
      visit(p, seq, ks, ke, vs, ve)
    })
  }
  return n
}

function readWalFile(path: string): Buffer {
  try {
    return fs.readFileSync(path)
  } catch (err) {
    throw ioError(`cannot read WAL ${path}`, err)
  }
}
