/**
 * Reading a WAL record by record for the inspection tools: every intact
 * record decoded (through the WAL codec, src/wal/wal-record.ts, so record
 * versions it learns are read here too), every damaged range between them
 * classified the way recovery treats it.
 */
import { KIND_PUT_EXPIRING } from '../../base/entry.js'
import { corruption } from '../../base/errors.js'
import { readU32, readU64 } from '../../base/coding.js'
import { KIND_NOOP, PAYLOAD_PREFIX_BYTES, forEachWalEntry, walRecordEpoch } from '../../wal/wal-record.js'
import { readExpiry } from './entry-kinds.js'
import { walkRecords, type DamagedRange } from './framed-records.js'
import { findingOf, plural, type Finding } from './output.js'

/** One entry of a WAL record: views into the file's bytes. */
export interface WalEntry {
  sequence: number
  /** KIND_PUT, KIND_DELETE, KIND_PUT_EXPIRING, KIND_RANGE_DELETE (key: the range's start, value: its end, empty for none) or KIND_NOOP. */
  kind: number
  key: Buffer
  /** The value bytes as stored (of KIND_PUT_EXPIRING: the expiry time, then the value; of KIND_RANGE_DELETE: the end); null for a delete or a NOOP. */
  value: Buffer | null
  /** The last entry of one write (a put, a delete, a batch): record version 2 marks it; in version 1 the record's last entry. */
  batchEnd: boolean
}

/** One intact record. */
export interface WalRecordInfo {
  offset: number
  bytes: number
  version: number
  firstSequence: number
  count: number
  /** Replication epoch (record version 3; 0 before). */
  epoch: number
  /** Undefined when the record does not decode (see `problem`). */
  entries?: WalEntry[]
  problem?: Finding
}

/** A WAL file read whole. */
export interface WalContents {
  records: WalRecordInfo[]
  damage: DamagedRange[]
}

/** Splits a WAL file's bytes into records (decoded) and damaged ranges. */
export function readWalContents(buf: Buffer, name: string): WalContents {
  const walk = walkRecords(buf)
  const records = walk.records.map((r): WalRecordInfo => {
    const p = r.payload
    const info: WalRecordInfo = {
      offset: r.offset,
      bytes: r.end - r.offset,
      version: p.length > 0 ? p[0] : -1,
      firstSequence: p.length >= PAYLOAD_PREFIX_BYTES ? readU64(p, 1) : 0,
      count: p.length >= PAYLOAD_PREFIX_BYTES ? readU32(p, 9) : 0,
      epoch: p.length >= PAYLOAD_PREFIX_BYTES + 8 ? walRecordEpoch(p) : 0,
    }
    const entries: WalEntry[] = []
    try {
      forEachWalEntry(p, name, (payload, sequence, ks, ke, vs, ve, batchEnd, kind) => {
        // An expiry time recovery could not read fails the record, as it fails recovery.
        if (kind === KIND_PUT_EXPIRING) {
          const x = readExpiry(payload.subarray(vs, ve))
          if ('problem' in x) throw corruption(`${x.problem} (sequence ${sequence})`, name)
        }
        entries.push({ sequence, kind, key: payload.subarray(ks, ke), value: vs < 0 ? null : payload.subarray(vs, ve), batchEnd })
      }, (sequence) => entries.push({ sequence, kind: KIND_NOOP, key: Buffer.alloc(0), value: null, batchEnd: true }))
      info.entries = entries
    } catch (err) {
      info.problem = { ...findingOf(err, name), offset: r.offset }
      info.problem.message = `record does not decode: ${info.problem.message}`
    }
    return info
  })
  return { records, damage: walk.damage }
}

/**
 * How recovery treats a damaged range of a WAL: a tail (torn, or damaged
 * with nothing intact after it) is dropped with a warning, which is what a
 * crash leaves; damage followed by intact records fails the open.
 */
export function walDamageFinding(d: DamagedRange, name: string, isLast: boolean): { severity: 'error' | 'warning'; finding: Finding } {
  const size = plural(d.end - d.offset, 'byte')
  if (d.kind === 'damaged') {
    return {
      severity: 'error',
      finding: { file: name, offset: d.offset, message: `damaged record(s) (${size}, up to offset ${d.end}) followed by intact records: acknowledged writes were lost; open() fails with STRATA_CORRUPTION` },
    }
  }
  const what = d.kind === 'torn' ? `a torn tail (${size}): an append cut short` : `a damaged tail (${size}) with no intact record after it`
  const note = isLast ? 'what a crash leaves; the next open drops it' : 'not the last WAL, so a crash was followed by a reopen; the next open drops it'
  return { severity: 'warning', finding: { file: name, offset: d.offset, message: `${what}: ${note}` } }
}
