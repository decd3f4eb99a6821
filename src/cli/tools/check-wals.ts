/**
 * The WAL part of `strata check`: every WAL at or above the manifest's log
 * number, record by record: checksums, every intact record decodes (range
 * deletes, kind 6, included: their range must not be empty), sequences
 * increase across records and WALs, and damage classified the way recovery
 * treats it (a tail: a warning; followed by intact records: a problem).
 */
import * as path from 'node:path'
import { walFileName } from '../../base/file-names.js'
import type { FileSystem } from '../../vfs/file-system.js'
import type { CheckReport } from './check-report.js'
import { isMissing, type DirectoryListing } from './database-directory.js'
import { isRangeDeleteKind } from './entry-kinds.js'
import { plural, type Finding } from './output.js'
import { tombstoneOfEntry, tombstoneProblem } from './range-deletes.js'
import { readWalContents, walDamageFinding } from './wal-inspection.js'

/** Checks the WALs of `listing` at or above `logNumber`, adding what it finds to `report`. */
export function checkWals(fs: FileSystem, dir: string, listing: DirectoryListing, logNumber: number, report: CheckReport): void {
  const problem = (f: Finding): void => {
    report.problems.push(f)
  }
  const wals = listing.wals.filter((n) => n >= logNumber)
  const older = listing.wals.length - wals.length
  if (older > 0) report.notes.push(`${plural(older, 'WAL')} below the log number ${logNumber} (writes already in tables) not checked`)
  let lastSequence = 0
  let lastWhere = ''
  wals.forEach((number, i) => {
    const name = walFileName(number)
    let buf: Buffer
    try {
      buf = fs.readFile(path.join(dir, name))
    } catch (err) {
      if (isMissing(err)) report.notes.push(`${name} was deleted while the check ran (its memtable was flushed)`)
      else problem({ file: name, message: `cannot read: ${(err as Error).message}` })
      return
    }
    const contents = readWalContents(buf, name)
    let entries = 0
    let rangeDeletes = 0
    let first: number | undefined
    let ok = true
    for (const r of contents.records) {
      if (r.problem !== undefined) {
        problem(r.problem)
        ok = false
        continue
      }
      for (const e of r.entries!) {
        if (!isRangeDeleteKind(e.kind)) continue
        rangeDeletes++
        const bad = tombstoneProblem(tombstoneOfEntry(e.key, e.value, e.sequence))
        if (bad !== undefined) {
          problem({ file: name, offset: r.offset, message: `range delete: ${bad}` })
          ok = false
        }
      }
      if (r.count === 0) continue
      if (r.firstSequence <= lastSequence) {
        problem({ file: name, offset: r.offset, message: `sequence ${r.firstSequence} does not follow ${lastSequence}${lastWhere}` })
        ok = false
      }
      first ??= r.firstSequence
      lastSequence = r.firstSequence + r.count - 1
      lastWhere = ` (${name} at offset ${r.offset})`
      entries += r.count
    }
    for (const d of contents.damage) {
      const { severity, finding } = walDamageFinding(d, name, i === wals.length - 1)
      if (severity === 'error') {
        problem(finding)
        ok = false
      } else {
        report.warnings.push(finding)
      }
    }
    report.wals.push({ file: name, bytes: buf.length, records: contents.records.length, entries, rangeDeletes, firstSequence: first, lastSequence: first === undefined ? undefined : lastSequence, ok })
  })
}
