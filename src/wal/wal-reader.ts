import * as fs from 'node:fs'
import { ioError } from '../base/errors.js'
import { scanRecords } from './record-format.js'
import { decodeWalRecord, type WalBatch } from './wal-record.js'

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
  let buf: Buffer
  try {
    buf = fs.readFileSync(path)
  } catch (err) {
    throw ioError(`cannot read WAL ${path}`, err)
  }
  const scan = scanRecords(buf, path)
  const batches = scan.payloads.map((p) => decodeWalRecord(p, path))
  return { batches, validBytes: scan.validBytes, tornTail: scan.tornTail }
}
