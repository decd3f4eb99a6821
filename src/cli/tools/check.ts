/**
 * `strata check <dir>`: verifies a database directory without writing
 * anything (no LOCK, no file created, every file opened read-only), so it
 * also runs while another process has the database open for writing. It
 * checks the manifest (its range tombstones too), every table and blob file
 * it names, every blob reference against the blob file's records, and the
 * WALs (check-wals.ts); it reports every problem it finds, with file and
 * offset, then a summary (check-report.ts; docs/cli.md, "strata check").
 */
import * as path from 'node:path'
import { initChecksum } from '../../base/checksum.js'
import { LOCK_FILE, MARKER_FILE, blobFileName, manifestFileName, tableFileName, walFileName } from '../../base/file-names.js'
import { parseLockRecord } from '../../base/lock-file.js'
import { RangeTombstoneIndex } from '../../base/range-tombstones.js'
import { decodeMarker, inspectDirectory } from '../../engine/directory-identity.js'
import { NUM_LEVELS } from '../../manifest/table-version-edit.js'
import { RECORD_HEADER_BYTES } from '../../wal/record-framing.js'
import type { FileSystem } from '../../vfs/file-system.js'
import { nodeFileSystem } from '../../vfs/node-file-system.js'
import { PinnedTableFiles } from '../../engine/pinned-table-files.js'
import { inspectBlobFile, type BlobCatalog, type BlobFileInspection } from './blob-inspection.js'
import { isMissing, listDirectory, readCurrent, requireDirectory, type DirectoryListing } from './database-directory.js'
import { replayManifest, type ManifestReplay, type Placement } from './manifest-replay.js'
import { checkedTable, dataBlockTotals, type CheckReport } from './check-report.js'
import { checkWals } from './check-wals.js'
import { findingOf, plural, showBytes, type Finding } from './output.js'
import { bySequence, rangeJson } from './range-deletes.js'
import { inspectTable, type TableInspection } from './table-inspection.js'

export { printCheck, type CheckReport } from './check-report.js'

/** How many times CURRENT and the manifest are read again when tables they name vanished (a concurrent writer). */
const MANIFEST_REREADS = 3

/** The manifest state the check works from. */
interface ManifestState {
  manifestNumber: number
  buf: Buffer
  replay: ManifestReplay
}

class Checker {
  readonly report: CheckReport

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
  ) {
    this.report = { dir, ok: true, problems: [], warnings: [], notes: [], levels: [], tables: [], blocks: dataBlockTotals([]), blobFiles: [], wals: [], rangeTombstones: [] }
  }

  problem(f: Finding): void {
    this.report.problems.push(f)
  }

  warning(f: Finding): void {
    this.report.warnings.push(f)
  }

  run(): CheckReport {
    const listing = listDirectory(this.fs, this.dir)
    if (this.checkIdentity(listing)) {
      this.readLock(listing)
      const state = this.checkManifestAndTables(listing)
      // Listed again: WALs come and go while a writer runs.
      checkWals(this.fs, this.dir, listDirectory(this.fs, this.dir), state?.replay.logNumber ?? 0, this.report)
    }
    this.report.blocks = dataBlockTotals(this.report.tables)
    this.report.ok = this.report.problems.length === 0
    return this.report
  }

  /** The STRATADB marker; false when the directory is not a database at all (nothing more to check). */
  private checkIdentity(listing: DirectoryListing): boolean {
    if (listing.hasMarker) {
      try {
        const identity = decodeMarker(this.fs.readFile(path.join(this.dir, MARKER_FILE)), MARKER_FILE, this.dir)
        this.report.marker = identity
      } catch (err) {
        this.problem(findingOf(err, MARKER_FILE, 0))
      }
      return true
    }
    if (listing.names.includes('LOG') || listing.names.includes('LOG.old') || listing.names.some((n) => n.endsWith('.ldb'))) {
      this.problem({ message: `${this.dir} is a LevelDB/classic-level database, not a stratadb one` })
      return false
    }
    const ours = listing.hasCurrent || listing.manifests.length > 0 || listing.tables.length > 0 || listing.blobs.length > 0 || listing.wals.length > 0
    if (!ours) {
      this.problem({ message: listing.names.length === 0 ? `${this.dir} is empty: no database here` : `${this.dir} is not a stratadb database (no ${MARKER_FILE} marker, no database files)` })
      return false
    }
    let previousFormat = false
    try {
      previousFormat = inspectDirectory(this.fs, this.dir).kind === 'previous-format'
    } catch {
      // Damaged CURRENT or manifest: reported below.
    }
    if (previousFormat) this.warning({ file: MARKER_FILE, message: 'missing: a database of the previous directory format (the next open writes the marker)' })
    else this.problem({ file: MARKER_FILE, message: 'missing, and CURRENT does not name a readable manifest: open() refuses the directory as not a database' })
    return true
  }

  private readLock(listing: DirectoryListing): void {
    if (!listing.names.includes(LOCK_FILE)) return
    try {
      const owner = parseLockRecord(this.fs.readFile(path.join(this.dir, LOCK_FILE)))
      if (owner !== undefined) {
        this.report.lock = { pid: owner.pid, host: owner.host }
        this.report.notes.push(`LOCK names process ${owner.pid}${owner.host !== undefined ? ` on host ${owner.host}` : ''}: the database may be open (check only reads)`)
      }
    } catch {
      // Released meanwhile.
    }
  }

  /** CURRENT, the manifest and the tables it names; returns the state WALs are checked against. */
  private checkManifestAndTables(listing: DirectoryListing): ManifestState | undefined {
    let state = this.loadManifest(listing, true)
    if (state === undefined) {
      // No usable manifest: every table and blob file present is checked on its own.
      if (listing.tables.length + listing.blobs.length > 0) this.report.notes.push('no usable manifest: every table and blob file present was checked without the manifest\'s metadata')
      const blobs = new Map<number, BlobFileInspection>()
      for (const number of listing.blobs) {
        const b = inspectBlobFile(this.fs, this.dir, number)
        if (!b.missing) blobs.set(number, b)
      }
      const tables: TableInspection[] = []
      for (const number of listing.tables) {
        const t = inspectTable(this.fs, this.dir, number, undefined, { files: blobs, fromManifest: false })
        if (t.missing) continue
        tables.push(t)
        for (const f of t.problems) this.problem(f)
        this.report.tables.push(checkedTable(t, -1))
      }
      for (const b of blobs.values()) {
        for (const f of b.problems) this.problem(f)
        this.report.blobFiles.push({
          file: b.name,
          bytes: b.fileBytes,
          valueCount: b.totals?.recordCount ?? b.records.count,
          valueBytes: b.totals?.valueBytes ?? 0,
          garbageCount: null,
          garbageBytes: null,
          references: referencesTo(b.number, tables),
          ok: b.problems.length === 0,
        })
      }
      return undefined
    }
    const results = new Map<number, TableInspection>()
    const blobResults = new Map<number, BlobFileInspection>()
    // Every table and blob file a manifest names is opened right after that manifest was read, before
    // any is checked (as a read-only view does: engine/pinned-table-files.ts): a concurrent compaction
    // that deletes one during the (long) check no longer makes it look missing.
    const pins: PinnedTableFiles[] = []
    const checkTables = (s: ManifestState): void => {
      const pinned = new PinnedTableFiles(this.fs)
      pins.push(pinned)
      const names = [...[...s.replay.tables.keys()].map(tableFileName), ...[...s.replay.blobs.keys()].map(blobFileName)]
      for (const name of names) {
        try {
          pinned.pin(path.join(this.dir, name))
        } catch {
          // Gone already (or unreadable): inspectTable and inspectBlobFile report it.
        }
      }
      // Blob files first: the tables' references are checked against their records.
      const files = new Map<number, BlobFileInspection>()
      for (const [number, meta] of s.replay.blobs) {
        const known = blobResults.get(number)
        const b = known !== undefined && !known.missing ? known : inspectBlobFile(pinned, this.dir, number, meta)
        blobResults.set(number, b)
        files.set(number, b)
      }
      const catalog: BlobCatalog = { files, fromManifest: true }
      // Each table's range-delete floor (tag 11) is checked against the live range tombstones.
      const rangeTombstones = new RangeTombstoneIndex([...s.replay.rangeTombstones.values()])
      for (const [number, placement] of s.replay.tables) {
        const known = results.get(number)
        if (known !== undefined && !known.missing && known.blobFilesMissing.size === 0) continue
        results.set(number, inspectTable(pinned, this.dir, number, { meta: placement.meta, lastSequence: s.replay.lastSequence, rangeTombstones }, catalog))
      }
    }
    try {
      return this.checkTablesOf(state, results, blobResults, checkTables)
    } finally {
      for (const p of pins) p.releaseAll()
    }
  }

  private checkTablesOf(state: ManifestState, results: Map<number, TableInspection>, blobResults: Map<number, BlobFileInspection>, checkTables: (s: ManifestState) => void): ManifestState {
    checkTables(state)
    // A concurrent writer may have changed the manifest and deleted tables or blob files it named:
    // read CURRENT and the manifest again (a few times at most, while they keep changing).
    for (let attempt = 0; attempt < MANIFEST_REREADS; attempt++) {
      const vanished = [...state.replay.tables.keys()].map((n) => results.get(n)!).filter((t) => t.missing)
      const vanishedBlobs = [...state.replay.blobs.keys()].map((n) => blobResults.get(n)!).filter((b) => b.missing)
      if (vanished.length === 0 && vanishedBlobs.length === 0) break
      const again = this.loadManifest(listDirectory(this.fs, this.dir), false)
      if (again === undefined || again.buf.equals(state.buf)) break
      for (const t of vanished) {
        if (!again.replay.tables.has(t.number)) this.report.notes.push(`${t.name} was deleted after CURRENT was read; the manifest read again no longer names it (a concurrent compaction)`)
      }
      for (const b of vanishedBlobs) {
        if (!again.replay.blobs.has(b.number)) this.report.notes.push(`${b.name} was deleted after CURRENT was read; the manifest read again no longer names it (a concurrent compaction)`)
      }
      state = again
      checkTables(state)
    }
    this.reportManifest(state)
    // Tables in the final state only.
    const placements = [...state.replay.tables.entries()].sort(([a, pa], [b, pb]) => pa.level - pb.level || a - b)
    for (const [number, placement] of placements) {
      const t = results.get(number)!
      if (t.missing) {
        this.problem({ file: t.name, message: `missing: the manifest names it (level ${placement.level}, ${placement.meta.fileBytes} bytes)` })
      }
      for (const f of t.problems) this.problem(f)
      this.report.tables.push(checkedTable(t, placement.level))
    }
    this.checkLevels(state.replay.tables)
    this.reportBlobFiles(state, placements.map(([n]) => results.get(n)!), blobResults)
    const named = new Set(state.replay.tables.keys())
    const now = listDirectory(this.fs, this.dir)
    const leftover = 'not named by the manifest: a leftover the next open deletes, or the output of a flush or compaction in progress (not checked)'
    for (const n of now.tables) {
      if (!named.has(n)) this.warning({ file: tableFileName(n), message: leftover })
    }
    for (const n of now.blobs) {
      if (!state.replay.blobs.has(n)) this.warning({ file: blobFileName(n), message: leftover })
    }
    const stale = now.manifests.filter((m) => m !== state.manifestNumber)
    if (stale.length > 0) this.report.notes.push(`${plural(stale.length, 'manifest')} not named by CURRENT (${stale.map(manifestFileName).join(', ')}): left for deletion, not checked`)
    return state
  }

  /**
   * The blob files the final manifest state lists: missing, damaged, and
   * (when every table was read whole) whether the references the tables hold
   * match the values the manifest counts as live.
   */
  private reportBlobFiles(state: ManifestState, tables: TableInspection[], blobResults: Map<number, BlobFileInspection>): void {
    const allRead = tables.every((t) => !t.missing && t.lostBlocks.length === 0 && t.outOfOrder === 0)
    for (const [number, meta] of [...state.replay.blobs.entries()].sort(([a], [b]) => a - b)) {
      const b = blobResults.get(number)!
      if (b.missing) this.problem({ file: b.name, message: `missing: the manifest names it (${meta.fileBytes} bytes, ${plural(meta.valueCount - meta.garbageCount, 'live value')})` })
      for (const f of b.problems) this.problem(f)
      const references = referencesTo(number, tables)
      const live = meta.valueCount - meta.garbageCount
      if (allRead && !b.missing) {
        if (references > live) {
          this.problem({
            file: b.name,
            message: `the tables hold ${plural(references, 'reference')} into it, the manifest counts ${plural(live, 'live value')}: its garbage count could reach its value count while values are referenced`,
          })
        } else if (references < live) {
          this.warning({
            file: b.name,
            message: `the tables hold ${plural(references, 'reference')} into it, the manifest counts ${plural(live, 'live value')}: values no table references are not counted as garbage (the file is kept longer than needed)`,
          })
        }
      }
      this.report.blobFiles.push({
        file: b.name,
        bytes: meta.fileBytes,
        valueCount: meta.valueCount,
        valueBytes: meta.valueBytes,
        garbageCount: meta.garbageCount,
        garbageBytes: meta.garbageBytes,
        references,
        ok: !b.missing && b.problems.length === 0,
      })
    }
  }

  /**
   * Reads CURRENT and the manifest it names. When the manifest is gone (a
   * writer switched to a new one and deleted it), CURRENT is read once more.
   * `report`: whether problems found are reported (the first attempt only).
   */
  private loadManifest(listing: DirectoryListing, report: boolean, retried = false): ManifestState | undefined {
    const cur = readCurrent(this.fs, this.dir)
    if ('missing' in cur) {
      if (!report) return undefined
      // A create that crashed before CURRENT leaves at most an empty WAL or a manifest no CURRENT names.
      const hasData = listing.tables.length > 0 || listing.wals.some((n) => this.sizeOf(walFileName(n)) > 0)
      if (hasData) this.problem({ file: 'CURRENT', message: 'missing: the database has files but no CURRENT naming its manifest' })
      else this.warning({ file: 'CURRENT', message: 'missing: an unfinished create (no data; the next open finishes it)' })
      return undefined
    }
    if ('problem' in cur) {
      if (report) this.problem(cur.problem)
      return undefined
    }
    const name = manifestFileName(cur.manifestNumber)
    let buf: Buffer
    try {
      buf = this.fs.readFile(path.join(this.dir, name))
    } catch (err) {
      if (isMissing(err) && !retried) return this.loadManifest(listing, report, true)
      if (report) this.problem({ file: 'CURRENT', message: isMissing(err) ? `names ${name}, which does not exist` : `cannot read ${name}: ${(err as Error).message}` })
      return undefined
    }
    return { manifestNumber: cur.manifestNumber, buf, replay: replayManifest(buf, name) }
  }

  private sizeOf(name: string): number {
    try {
      return this.fs.stat(path.join(this.dir, name)).size
    } catch {
      return 0
    }
  }

  private reportManifest(state: ManifestState): void {
    const name = manifestFileName(state.manifestNumber)
    const r = state.replay
    if (r.walk.records.length === 0) this.problem({ file: name, offset: 0, message: 'holds no complete record' })
    for (const d of r.walk.damage) {
      const size = plural(d.end - d.offset, 'byte')
      const complete = d.headerValid && d.offset + RECORD_HEADER_BYTES + state.buf.readUInt32LE(d.offset) <= state.buf.length
      if (d.kind === 'damaged') {
        this.problem({ file: name, offset: d.offset, message: `damaged record(s) (${size}, up to offset ${d.end}) followed by intact records: open() fails with STRATA_CORRUPTION` })
      } else if (d.kind === 'damaged-tail' && complete) {
        this.problem({ file: name, offset: d.offset, message: `the last record is complete but its checksum does not match (${size}): open() fails with STRATA_CORRUPTION` })
      } else {
        this.warning({ file: name, offset: d.offset, message: `a torn last record (${size}): an edit whose append never completed, ignored by open()` })
      }
    }
    for (const e of r.edits) if (e.problem !== undefined) this.problem(e.problem)
    for (const p of r.problems) this.problem(p)
    let maxTable = 0
    for (const n of r.tables.keys()) maxTable = Math.max(maxTable, n)
    let maxBlob = 0
    for (const n of r.blobs.keys()) maxBlob = Math.max(maxBlob, n)
    if (r.walk.records.length > 0 && r.nextFileNumber <= Math.max(maxTable, maxBlob)) {
      const what = maxBlob > maxTable ? `blob file ${blobFileName(maxBlob)}` : `table ${maxTable}`
      this.problem({ file: name, message: `next file number ${r.nextFileNumber} is not above ${what}, which it names` })
    }
    this.report.manifest = {
      file: name,
      records: r.walk.records.length,
      bytes: state.buf.length,
      logNumber: r.logNumber,
      nextFileNumber: r.nextFileNumber,
      lastSequence: r.lastSequence,
      rangeTombstones: r.rangeTombstones.size,
    }
    this.report.rangeTombstones = bySequence(r.rangeTombstones.values()).map((t) => rangeJson(t, { hex: false }))
  }

  /** Levels 1 and deeper: sorted by smallest key, no two tables overlapping. */
  private checkLevels(tables: Map<number, Placement>): void {
    for (let level = 0; level < NUM_LEVELS; level++) {
      const list = [...tables.values()].filter((p) => p.level === level).map((p) => p.meta)
      if (list.length === 0) continue
      const entries = list.reduce((n, t) => n + t.entryCount, 0)
      const size = list.reduce((n, t) => n + t.fileBytes, 0)
      this.report.levels.push({ level, tables: list.length, entries, bytes: size })
      if (level === 0) continue
      list.sort((a, b) => Buffer.compare(a.smallestKey, b.smallestKey))
      for (let i = 1; i < list.length; i++) {
        const a = list[i - 1]
        const b = list[i]
        if (Buffer.compare(a.largestKey, b.smallestKey) >= 0) {
          this.problem({
            file: tableFileName(b.number),
            message: `overlaps ${tableFileName(a.number)} in level ${level}: ${showBytes(b.smallestKey, { hex: false })} is not above ${showBytes(a.largestKey, { hex: false })}`,
          })
        }
      }
    }
  }
}

/** References the tables hold into blob file `number`. */
function referencesTo(number: number, tables: readonly TableInspection[]): number {
  return tables.reduce((n, t) => n + (t.blobReferences.get(number) ?? 0), 0)
}

/** Runs the check; throws UsageError when `dir` is not an existing directory. */
export async function runCheck(dir: string, fs: FileSystem = nodeFileSystem): Promise<CheckReport> {
  requireDirectory(fs, dir)
  await initChecksum()
  return new Checker(fs, dir).run()
}
