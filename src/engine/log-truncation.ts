import * as path from 'node:path'
import { StrataError, corruption, ioError } from '../base/errors.js'
import { parseFileName, walFileName } from '../base/file-names.js'
import { TableVersionSet } from '../manifest/table-version-set.js'
import { listDirectory, replaceFileAtomically, syncDirectory, type FileSystem } from '../vfs/file-system.js'
import { RECORD_HEADER_BYTES, scanRecords } from '../wal/record-framing.js'
import { walRecordLastSequence } from '../wal/wal-record.js'
import { readU64 } from '../base/coding.js'

/** What a truncation did. */
export interface LogTruncation {
  /** The log's last sequence before. */
  fromSequence: number
  /** Its last sequence now (the requested one). */
  toSequence: number
  /** WAL records cut off. */
  records: number
}

/**
 * Cuts a replicated node's log back to `afterSequence` (docs/replication.md,
 * "Truncation by epoch"): every WAL record past it goes, in a directory
 * whose engine is stopped (the caller holds the lock and reopens after).
 *
 * The cut must fall on a record boundary and only in the WALs not yet in
 * tables (at or above the manifest's log number): a replicated node never
 * flushes an uncommitted entry, and only uncommitted entries are ever cut,
 * so anything else is a broken invariant and throws (nothing changed).
 *
 * Crash safety: later WAL files are deleted newest first, then the file
 * holding the cut is replaced by its prefix (temp file, fdatasync, rename),
 * then the manifest's last sequence is lowered by a fresh manifest. A crash
 * anywhere leaves a log that is a prefix of the old one and at or past the
 * cut, which a retried truncation finishes; the recovery of a plain open
 * replays that prefix. With `dryRun` it only checks (and reads).
 */
export function truncateLog(fs: FileSystem, dir: string, afterSequence: number, dryRun = false): LogTruncation {
  if (!Number.isSafeInteger(afterSequence) || afterSequence < 0) {
    throw new StrataError('STRATA_INVALID_ARGUMENT', `cannot truncate after sequence ${afterSequence}`)
  }
  const state = TableVersionSet.recover(fs, dir)
  if (state === undefined) throw new StrataError('STRATA_NOT_FOUND', `no database in ${dir}`)
  const { wals, maxNumber } = liveWals(fs, dir, state.logNumber)

  // Find the cut: the first record ending past afterSequence must start right after it.
  let cut: { index: number; offset: number; first: number; last: number } | undefined
  let firstLiveSequence: number | undefined
  let lastSequence = state.lastSequence
  let records = 0
  for (let i = 0; i < wals.length; i++) {
    let offset = 0
    for (const payload of wals[i].payloads) {
      const first = readU64(payload, 1)
      const last = walRecordLastSequence(payload)
      firstLiveSequence ??= first
      lastSequence = Math.max(lastSequence, last)
      if (last > afterSequence) {
        cut ??= { index: i, offset, first, last }
        records++
      }
      offset += RECORD_HEADER_BYTES + payload.length
    }
  }
  // Entries in tables came from WALs below the log number: everything before the first live record.
  const inTables = firstLiveSequence === undefined ? state.lastSequence : firstLiveSequence - 1
  if (afterSequence < inTables) {
    throw new StrataError('STRATA_INVALID_ARGUMENT', `cannot truncate after sequence ${afterSequence}: entries up to ${inTables} are in tables`)
  }
  if (afterSequence > lastSequence) {
    throw new StrataError('STRATA_INVALID_ARGUMENT', `cannot truncate after sequence ${afterSequence}: the log ends at ${lastSequence}`)
  }
  if (cut !== undefined && cut.first !== afterSequence + 1) {
    throw new StrataError('STRATA_INVALID_ARGUMENT', `sequence ${afterSequence} is not at a WAL record boundary (record ${cut.first}..${cut.last} in ${wals[cut.index].name})`)
  }
  if (dryRun) return { fromSequence: lastSequence, toSequence: afterSequence, records }
  if (cut !== undefined) {
    for (let i = wals.length - 1; i > cut.index; i--) {
      try {
        fs.unlink(wals[i].file)
      } catch (err) {
        throw ioError(`cannot delete ${wals[i].file}`, err)
      }
    }
    replaceFileAtomically(fs, wals[cut.index].file, `${wals[cut.index].file}.tmp`, wals[cut.index].bytes.subarray(0, cut.offset))
    syncDirectory(fs, dir)
  }
  if (state.lastSequence > afterSequence || cut !== undefined) {
    const versions = new TableVersionSet(fs, dir, { ...state, nextFileNumber: Math.max(state.nextFileNumber, maxNumber + 1) }, Number.MAX_SAFE_INTEGER)
    try {
      versions.writeSnapshotManifest(versions.current, state.logNumber, afterSequence)
    } finally {
      versions.close()
    }
    syncDirectory(fs, dir)
  }
  return { fromSequence: lastSequence, toSequence: afterSequence, records }
}

interface LiveWal {
  name: string
  file: string
  bytes: Buffer
  payloads: Buffer[]
}

/** The WALs recovery would replay, in order, with their intact records; and the highest file number in `dir`. */
function liveWals(fs: FileSystem, dir: string, logNumber: number): { wals: LiveWal[]; maxNumber: number } {
  const names = listDirectory(fs, dir)
  const numbers: number[] = []
  let maxNumber = 0
  for (const name of names) {
    const f = parseFileName(name)
    if (f === undefined) continue
    maxNumber = Math.max(maxNumber, f.number)
    if (f.kind === 'wal' && f.number >= logNumber) numbers.push(f.number)
  }
  numbers.sort((a, b) => a - b)
  const wals = numbers.map((n) => {
    const name = walFileName(n)
    const file = path.join(dir, name)
    let bytes: Buffer
    try {
      bytes = fs.readFile(file)
    } catch (err) {
      throw ioError(`cannot read ${file}`, err)
    }
    const scan = scanRecords(bytes, file)
    for (const p of scan.payloads) if (p.length < 13) throw corruption('WAL record too short', file)
    return { name, file, bytes, payloads: scan.payloads }
  })
  return { wals, maxNumber }
}
