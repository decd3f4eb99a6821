/**
 * `strata repair <dir>`: salvages a damaged database, as LevelDB's RepairDB
 * does, without deleting any file (docs/cli.md, "strata repair").
 *
 * With the LOCK held:
 *  - the STRATADB marker is kept (a damaged one is moved aside and a new one
 *    written; a missing one is written);
 *  - when CURRENT and the manifest it names read back whole, their tables keep
 *    their levels: an intact table stays as it is, a damaged one is copied
 *    entry by entry into a new table at its level, keeping every entry of a
 *    block whose checksum verifies (its key range and sequences can only
 *    shrink, so the level's invariants hold), and the WALs at or above the
 *    log number become new L0 tables (their writes are newer than every
 *    table's);
 *  - otherwise the database is rebuilt: every table and WAL that may hold
 *    live data is merged into new, non-overlapping tables at one level
 *    (sequence numbers kept, so newer versions win wherever they came from).
 *    What older manifests still say is used to leave out tables an edit
 *    deleted and WALs below a log number, and a WAL whose writes are all older
 *    than the tables' newest is left out too: those hold old versions that a
 *    compaction may since have dropped with their deletes, and merging them
 *    would bring deleted keys back;
 *  - a fresh manifest names exactly the tables kept and written, with the
 *    highest sequence seen, and CURRENT is switched to it;
 *  - every file replaced or left out is moved into `<dir>/lost/`: linked
 *    there before the switch, unlinked from the directory after it, so that
 *    a crash at any point loses nothing.
 * Then the database is opened with `open()` and every key read once.
 */
import { randomUUID } from 'node:crypto'
import * as path from 'node:path'
import { initChecksum } from '../../base/checksum.js'
import { StrataError } from '../../base/errors.js'
import { CURRENT_FILE, MARKER_FILE, MARKER_TEMP_FILE, manifestFileName, parseFileName, tableFileName, walFileName } from '../../base/file-names.js'
import { acquireLock } from '../../base/lock-file.js'
import { DIRECTORY_FORMAT_VERSION, decodeMarker, encodeMarker } from '../../engine/directory-identity.js'
import type { TableMeta } from '../../manifest/table-meta.js'
import { NUM_LEVELS, emptyEdit } from '../../manifest/table-version-edit.js'
import { TableVersion } from '../../manifest/table-version.js'
import { TableVersionSet, type RecoveredState } from '../../manifest/table-version-set.js'
import { DEFAULT_OPTIONS } from '../../options.js'
import { syncDirectory, writeFully, type File, type FileSystem } from '../../vfs/file-system.js'
import { nodeFileSystem } from '../../vfs/node-file-system.js'
import { RECORD_HEADER_BYTES } from '../../wal/record-framing.js'
import { compareInternalKeys, listDirectory, requireDirectory, replayManifest, type DirectoryListing } from './file-inspector.js'
import { bytes, count, jsonBytes, plural, showFinding, type Finding, type JsonBytes, type Out } from './output.js'
import { inspectTable, isIntact, newInspection, tableEntries, type EntryView, type TableInspection } from './table-inspection.js'
import { TableSink } from './table-sink.js'
import { readWalContents, type WalEntry } from './wal-inspection.js'

/** The folder files are moved into. */
export const LOST_DIR = 'lost'

/** What became of one file. */
export interface FileOutcome {
  file: string
  action: 'kept' | 'rewritten' | 'converted' | 'moved-aside' | 'missing' | 'written' | 'replaced'
  level?: number
  /** Why it was moved aside, rewritten or replaced. */
  reason?: string
  /** Where it went, relative to the database directory. */
  movedTo?: string
  /** Tables written from it. */
  newTables?: string[]
  entriesKept?: number
  /** Data blocks or WAL ranges that could not be read. */
  blocksLost?: number
  recordsLost?: number
  /** Entries lost, where countable (null: some were lost, how many is not known). */
  entriesLost?: number | null
  bytesLost?: number
  /**
   * Key ranges of lost blocks: keys after `after`, up to `upTo` (the block's
   * last key, when the index says it) or before `before` (the first key kept
   * after it); absent: the start or end of the table, or not known.
   */
  lostKeyRanges?: Array<{ after?: JsonBytes; upTo?: JsonBytes; before?: JsonBytes }>
  problems: Finding[]
}

export interface RepairReport {
  dir: string
  mode: 'manifest' | 'rebuild'
  /** Why the database was rebuilt rather than repaired in place. */
  reason?: string
  files: FileOutcome[]
  lost: { blocks: number; records: number; entries: number; entriesUnknown: boolean; bytes: number }
  result: { manifest: string; logNumber: number; nextFileNumber: number; lastSequence: number; tables: Array<{ file: string; level: number; entries: number; bytes: number }> }
  /** Whether open() succeeded afterwards and every key could be read. */
  verified: boolean
  liveKeys?: number
  verifyError?: string
}

/** Runs the repair; throws UsageError when `dir` is not an existing directory, other errors when it cannot be repaired. */
export async function runRepair(dir: string, fs: FileSystem = nodeFileSystem): Promise<RepairReport> {
  requireDirectory(fs, dir)
  await initChecksum()
  refuseForeign(fs, dir, listDirectory(fs, dir))
  const release = acquireLock(fs, dir)
  let report: RepairReport
  try {
    report = await new Repairer(fs, dir).run()
  } finally {
    release()
  }
  try {
    // Loaded only now: nothing before needs the engine.
    const { open } = await import('../../index.js')
    const db = await open(dir, fs === nodeFileSystem ? { autoCompaction: false } : { autoCompaction: false, fileSystem: fs })
    try {
      let n = 0
      for await (const _ of db.iterator({ values: false })) n++
      report.liveKeys = n
      report.verified = true
    } finally {
      await db.close()
    }
  } catch (err) {
    report.verified = false
    report.verifyError = err instanceof Error ? err.message : String(err)
  }
  return report
}

/** Refuses directories that are not stratadb databases (nothing is changed in them). */
function refuseForeign(fs: FileSystem, dir: string, listing: DirectoryListing): void {
  if (listing.names.includes('LOG') || listing.names.includes('LOG.old') || listing.names.some((n) => n.endsWith('.ldb'))) {
    throw new StrataError('STRATA_NOT_A_DATABASE', `${dir} is a LevelDB/classic-level database, not a stratadb one; nothing was changed`)
  }
  if (listing.hasMarker) {
    try {
      decodeMarker(fs.readFile(path.join(dir, MARKER_FILE)), MARKER_FILE, dir)
    } catch (err) {
      // A newer stratadb's database: not ours to rewrite. A damaged marker is replaced.
      if (err instanceof StrataError && err.code === 'STRATA_NOT_A_DATABASE') throw err
    }
    return
  }
  const ours = listing.hasCurrent || listing.manifests.length > 0 || listing.tables.length > 0 || listing.wals.length > 0
  if (!ours) throw new StrataError('STRATA_NOT_A_DATABASE', `${dir} holds no stratadb database (no ${MARKER_FILE} marker, no tables, WALs or manifest); nothing was changed`)
}

/** A file to move into lost/: linked there first, unlinked after the new manifest is in place. */
interface Move {
  name: string
  target: string
  /** Keep the original name (CURRENT: replaced by the switch, its old text kept in lost/). */
  copyOnly: boolean
  linked: boolean
}

/** An entry source of the rebuild's merge. */
interface Source {
  entry: EntryView
  /** Moves to the next entry; false at the end. */
  advance(): boolean
}

class Repairer {
  private readonly files: FileOutcome[] = []
  private readonly moves: Move[] = []
  private readonly lostNames = new Set<string>()
  private nextNumber = 1
  private lastSequence = 0
  private readonly lost = { blocks: 0, records: 0, entries: 0, entriesUnknown: false, bytes: 0 }

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
  ) {}

  async run(): Promise<RepairReport> {
    const listing = listDirectory(this.fs, this.dir)
    this.readLostDir()
    let maxNumber = 0
    for (const name of [...listing.names, ...this.lostNames]) {
      const f = parseFileName(name.replace(/\.\d+$/, ''))
      if (f !== undefined) maxNumber = Math.max(maxNumber, f.number)
    }
    this.fixMarker(listing)

    let state: RecoveredState | undefined
    let reason: string | undefined
    try {
      state = TableVersionSet.recover(this.fs, this.dir)
      if (state === undefined) reason = 'there is no CURRENT'
    } catch (err) {
      reason = `CURRENT and the manifest cannot be used (${(err instanceof Error ? err.message : String(err)).replace(/^corruption: /, '')})`
    }
    this.nextNumber = Math.max(state?.nextFileNumber ?? 0, maxNumber + 1)
    this.lastSequence = state?.lastSequence ?? 0

    const levels: TableMeta[][] = Array.from({ length: NUM_LEVELS }, () => [])
    if (state !== undefined) await this.repairInPlace(listing, state, levels)
    else await this.rebuild(listing, levels)

    // Every manifest is replaced by the new one; the old CURRENT text is kept when it was not usable.
    for (const m of listing.manifests) this.moveAside(manifestFileName(m), { action: 'replaced', reason: 'replaced by the new manifest' })
    if (state === undefined && listing.hasCurrent) this.moveAside(CURRENT_FILE, { action: 'replaced', reason: 'replaced by a CURRENT naming the new manifest' }, true)

    // Link everything to move into lost/, then switch the manifest, then drop the old names.
    this.linkMoves()
    const edit = emptyEdit()
    levels.forEach((tables, level) => tables.forEach((table) => edit.added.push({ level, table })))
    const tableVersion = TableVersion.empty().apply(edit)
    const logNumber = this.allocate()
    const set = new TableVersionSet(this.fs, this.dir, { tableVersion, logNumber, nextFileNumber: this.nextNumber, lastSequence: this.lastSequence }, DEFAULT_OPTIONS.maxManifestBytes)
    try {
      set.writeSnapshotManifest(tableVersion, logNumber, this.lastSequence)
    } finally {
      set.close()
    }
    const manifest = manifestFileName(set.manifestFileNumber)
    this.files.push({ file: manifest, action: 'written', reason: `names ${plural(levels.reduce((n, l) => n + l.length, 0), 'table')}`, problems: [] })
    this.finishMoves()

    return {
      dir: this.dir,
      mode: state !== undefined ? 'manifest' : 'rebuild',
      reason,
      files: this.files,
      lost: this.lost,
      result: {
        manifest,
        logNumber,
        nextFileNumber: set.nextFileNumber,
        lastSequence: this.lastSequence,
        tables: levels.flatMap((tables, level) => tables.map((t) => ({ file: tableFileName(t.number), level, entries: t.entryCount, bytes: t.fileBytes }))),
      },
      verified: false,
    }
  }

  private allocate(): number {
    return this.nextNumber++
  }

  // ---- the two ways ---------------------------------------------------------------

  /** The manifest is readable: keep its levels, rewrite damaged tables, turn live WALs into L0 tables. */
  private async repairInPlace(listing: DirectoryListing, state: RecoveredState, levels: TableMeta[][]): Promise<void> {
    const named = new Set<number>()
    for (let level = 0; level < NUM_LEVELS; level++) {
      for (const meta of state.tableVersion.levels[level]) {
        named.add(meta.number)
        const insp = inspectTable(this.fs, this.dir, meta.number, { meta, lastSequence: Infinity })
        if (insp.missing) {
          this.files.push({ file: insp.name, action: 'missing', level, reason: 'named by the manifest, but the file does not exist', entriesLost: meta.entryCount, problems: [] })
          this.lost.entries += meta.entryCount
          continue
        }
        this.lastSequence = Math.max(this.lastSequence, insp.maxSequence)
        if (isIntact(insp)) {
          levels[level].push(meta)
          this.files.push({ file: insp.name, action: 'kept', level, entriesKept: insp.entries, problems: [] })
          continue
        }
        const written = await this.salvageTable(meta.number)
        levels[level].push(...written.tables)
        this.recordDamagedTable(written.inspection, level, written.tables, meta.entryCount)
      }
    }
    for (const n of listing.tables) {
      if (!named.has(n)) this.moveAside(tableFileName(n), { action: 'moved-aside', reason: 'not named by the manifest (a leftover of a flush or compaction)' })
    }
    for (const n of listing.wals) {
      if (n < state.logNumber) {
        this.moveAside(walFileName(n), { action: 'moved-aside', reason: `below the log number ${state.logNumber}: its writes are in tables` })
        continue
      }
      const wal = this.readWal(n)
      if (wal === undefined) continue
      this.lastSequence = Math.max(this.lastSequence, wal.newest)
      const sink = new TableSink(this.fs, this.dir, () => this.allocate())
      await writeSorted(sink, wal.entries)
      const tables = await sink.finish()
      levels[0].push(...tables)
      this.recordWal(wal.outcome, tables, 0)
    }
  }

  /**
   * No usable manifest: merge every table and WAL that may hold live data
   * into new non-overlapping tables at one level.
   */
  private async rebuild(listing: DirectoryListing, levels: TableMeta[][]): Promise<void> {
    // What the manifests present still say, even damaged: tables deleted by an edit, the highest log number.
    const deleted = new Set<number>()
    let logNumber = 0
    for (const m of listing.manifests) {
      let buf: Buffer
      try {
        buf = this.fs.readFile(path.join(this.dir, manifestFileName(m)))
      } catch {
        continue
      }
      const replay = replayManifest(buf, manifestFileName(m))
      for (const n of replay.deleted) deleted.add(n)
      logNumber = Math.max(logNumber, replay.logNumber)
    }
    const sources: number[] = []
    for (const n of listing.tables) {
      if (deleted.has(n)) this.moveAside(tableFileName(n), { action: 'moved-aside', reason: 'a manifest edit deleted it (a leftover of a compaction): its data is in newer tables' })
      else sources.push(n)
    }
    // The newest write any table holds: a WAL holding nothing newer was flushed already.
    let tableMaxSequence = 0
    const inspections = new Map<number, TableInspection>()
    for (const n of sources) {
      const insp = inspectTable(this.fs, this.dir, n)
      inspections.set(n, insp)
      tableMaxSequence = Math.max(tableMaxSequence, insp.maxSequence)
    }
    const wals: Array<{ entries: WalEntry[]; newest: number; outcome: FileOutcome }> = []
    for (const n of listing.wals) {
      if (n < logNumber) {
        this.moveAside(walFileName(n), { action: 'moved-aside', reason: `below the log number ${logNumber} a manifest records: its writes are in tables` })
        continue
      }
      const wal = this.readWal(n)
      if (wal === undefined) continue
      const newest = wal.newest
      if (newest <= tableMaxSequence) {
        this.moveAside(walFileName(n), {
          action: 'moved-aside',
          reason: newest === 0 ? 'holds no intact write' : `its newest write (sequence ${newest}) is not newer than the tables' (${tableMaxSequence}): already flushed`,
        })
        continue
      }
      wals.push(wal)
    }
    // The merge: one source per table (verified blocks only) and per WAL (sorted).
    const outs: TableInspection[] = []
    const generators: Array<Generator<EntryView, void, undefined>> = []
    const all: Source[] = []
    for (const n of sources) {
      const insp = newInspection(n)
      outs.push(insp)
      const g = tableEntries(this.fs, this.dir, insp)
      generators.push(g)
      const source: Source = {
        entry: undefined as unknown as EntryView,
        advance(): boolean {
          const r = g.next()
          if (r.done) return false
          source.entry = r.value
          return true
        },
      }
      all.push(source)
    }
    for (const w of wals) {
      const entries = sortedWalEntries(w.entries)
      let i = -1
      const view: EntryView = { key: Buffer.alloc(0), sequence: 0, kind: 0, value: Buffer.alloc(0) }
      all.push({
        entry: view,
        advance(): boolean {
          if (++i >= entries.length) return false
          const e = entries[i]
          view.key = e.key
          view.sequence = e.sequence
          view.kind = e.kind
          view.value = e.value ?? EMPTY
          return true
        },
      })
    }
    const sink = new TableSink(this.fs, this.dir, () => this.allocate(), DEFAULT_OPTIONS.targetTableBytes)
    try {
      await mergeInto(sink, all)
    } catch (err) {
      await sink.abandon()
      throw err
    } finally {
      for (const g of generators) g.return()
    }
    const tables = await sink.finish()
    const level = levelFor(tables.reduce((n, t) => n + t.fileBytes, 0))
    levels[level].push(...tables)
    for (const t of tables) this.lastSequence = Math.max(this.lastSequence, t.smallestSeq, t.largestSeq)
    for (const insp of outs) this.lastSequence = Math.max(this.lastSequence, insp.maxSequence)
    for (const w of wals) this.lastSequence = Math.max(this.lastSequence, w.newest)
    const names = tables.map((t) => tableFileName(t.number))
    for (const insp of outs) {
      const before = inspections.get(insp.number)!
      if (isIntact(before)) {
        this.moveAside(insp.name, { action: 'rewritten', reason: `intact; merged into the new tables at level ${level}`, newTables: names, entriesKept: insp.entries })
      } else {
        this.recordDamagedTable(insp, undefined, tables, before.footer?.entryCount, level)
      }
    }
    for (const w of wals) this.recordWal(w.outcome, tables, level)
  }

  // ---- tables ------------------------------------------------------------------------

  /** Copies the verified entries of table `number` into a new table (none when nothing verifies). */
  private async salvageTable(number: number): Promise<{ tables: TableMeta[]; inspection: TableInspection }> {
    const sink = new TableSink(this.fs, this.dir, () => this.allocate())
    const inspection = newInspection(number)
    try {
      for (const e of tableEntries(this.fs, this.dir, inspection)) {
        const due = sink.add(e.key, e.sequence, e.kind, e.value)
        if (due !== undefined) await due
      }
    } catch (err) {
      await sink.abandon()
      throw err
    }
    return { tables: await sink.finish(), inspection }
  }

  /** Reports a damaged table whose verified entries went into `tables`, and moves it aside. */
  private recordDamagedTable(insp: TableInspection, level: number | undefined, tables: TableMeta[], expectedEntries: number | undefined, newLevel = level): void {
    const names = tables.map((t) => tableFileName(t.number))
    const entriesLost = expectedEntries !== undefined && expectedEntries >= insp.entries ? expectedEntries - insp.entries : null
    const dataLost = insp.lostBlocks.length > 0 || insp.outOfOrder > 0 || entriesLost !== 0
    const unit = insp.scanned ? 'unreadable range' : 'damaged data block'
    const what = insp.lostBlocks.length > 0 ? `${plural(insp.lostBlocks.length, unit)} skipped` : dataLost ? 'entries lost' : 'no entry lost'
    this.lost.blocks += insp.lostBlocks.length
    this.lost.bytes += insp.lostBytes
    if (entriesLost === null) this.lost.entriesUnknown = true
    else this.lost.entries += entriesLost
    const into = tables.length > 0 ? `; ${plural(insp.entries, 'entry', 'entries')} kept in ${names.join(', ')} at level ${newLevel}` : '; nothing could be kept'
    this.moveAside(insp.name, {
      action: 'rewritten',
      level,
      reason: `damaged (${insp.problems.length > 0 ? insp.problems[0].message : 'unreadable'}): ${what}${into}`,
      newTables: names,
      entriesKept: insp.entries,
      blocksLost: insp.lostBlocks.length,
      entriesLost,
      bytesLost: insp.lostBytes,
      lostKeyRanges: insp.lostBlocks.map((b) => {
        const range: { after?: JsonBytes; upTo?: JsonBytes; before?: JsonBytes } = {}
        if (b.after !== undefined) range.after = jsonBytes(b.after, { hex: false })
        if (b.upTo !== undefined) range.upTo = jsonBytes(b.upTo, { hex: false })
        if (b.before !== undefined) range.before = jsonBytes(b.before, { hex: false })
        return range
      }),
      problems: insp.problems,
    })
  }

  // ---- WALs -------------------------------------------------------------------------

  /** Reads a WAL's intact records (damaged ranges and records that do not decode are skipped and counted). */
  private readWal(number: number): { entries: WalEntry[]; newest: number; outcome: FileOutcome } | undefined {
    const name = walFileName(number)
    let buf: Buffer
    try {
      buf = this.fs.readFile(path.join(this.dir, name))
    } catch (err) {
      this.files.push({ file: name, action: 'missing', reason: `cannot read: ${(err as Error).message}`, problems: [] })
      return undefined
    }
    const contents = readWalContents(buf, name)
    const entries: WalEntry[] = []
    const problems: Finding[] = []
    let recordsLost = 0
    let bytesLost = 0
    let entriesLost: number | null = 0
    for (const r of contents.records) {
      if (r.entries !== undefined) entries.push(...r.entries)
      else {
        problems.push(r.problem!)
        recordsLost++
        bytesLost += r.bytes
        if (entriesLost !== null) entriesLost += r.count
      }
    }
    for (const d of contents.damage) {
      // A torn tail, or garbage at the end that is not a complete record, is an append a crash cut
      // short: never acknowledged, dropped by every open too. A complete record that went bad is a loss.
      const complete = d.headerValid && d.offset + RECORD_HEADER_BYTES + buf.readUInt32LE(d.offset) <= buf.length
      if (d.kind === 'torn' || (d.kind === 'damaged-tail' && !complete)) {
        problems.push({ file: name, offset: d.offset, message: `a tail of ${plural(d.end - d.offset, 'byte')} that a crash cut short was dropped (never acknowledged)` })
        continue
      }
      problems.push({ file: name, offset: d.offset, message: `${d.kind === 'damaged' ? 'damaged record(s) followed by intact records' : 'damaged tail'}: bytes ${d.offset}..${d.end} skipped` })
      recordsLost++
      bytesLost += d.end - d.offset
      entriesLost = null
    }
    const outcome: FileOutcome = { file: name, action: 'converted', entriesKept: entries.length, recordsLost, entriesLost, bytesLost, problems }
    return { entries, newest: entries.reduce((m, e) => Math.max(m, e.sequence), 0), outcome }
  }

  private countWalLoss(records: number, bytesLost: number, entriesLost: number | null): void {
    this.lost.records += records
    this.lost.bytes += bytesLost
    if (entriesLost === null) this.lost.entriesUnknown = true
    else this.lost.entries += entriesLost
  }

  /** Reports a WAL whose intact entries went into `tables` (counting what it lost), and moves it aside. */
  private recordWal(o: FileOutcome, tables: TableMeta[], level: number): void {
    this.countWalLoss(o.recordsLost ?? 0, o.bytesLost ?? 0, o.entriesLost === undefined ? 0 : o.entriesLost)
    const names = tables.map((t) => tableFileName(t.number))
    const lossNote = (o.recordsLost ?? 0) > 0 ? `; ${plural(o.recordsLost!, 'damaged range')} skipped (${plural(o.bytesLost ?? 0, 'byte')}, ${o.entriesLost === null ? 'entries unknown' : plural(o.entriesLost ?? 0, 'entry', 'entries')})` : ''
    this.moveAside(o.file, {
      ...o,
      action: 'converted',
      newTables: names,
      reason: `${plural(o.entriesKept ?? 0, 'entry', 'entries')} from intact records written to ${names.length > 0 ? names.join(', ') : 'no table'} at level ${level}${lossNote}`,
    })
  }

  // ---- the marker -------------------------------------------------------------------

  private fixMarker(listing: DirectoryListing): void {
    if (listing.hasMarker) {
      try {
        decodeMarker(this.fs.readFile(path.join(this.dir, MARKER_FILE)), MARKER_FILE, this.dir)
        return
      } catch (err) {
        // Damaged: kept in lost/, replaced below.
        const target = this.lostTarget(MARKER_FILE)
        this.ensureLostDir()
        this.fs.rename(path.join(this.dir, MARKER_FILE), path.join(this.dir, target))
        this.files.push({ file: MARKER_FILE, action: 'replaced', reason: `damaged (${(err as Error).message}); a new marker was written`, movedTo: target, problems: [] })
      }
    } else {
      this.files.push({ file: MARKER_FILE, action: 'written', reason: 'was missing', problems: [] })
    }
    const tmp = path.join(this.dir, MARKER_TEMP_FILE)
    let file: File | undefined
    try {
      file = this.fs.open(tmp, 'w')
      writeFully(file, encodeMarker({ version: DIRECTORY_FORMAT_VERSION, id: randomUUID() }), 0)
      file.datasyncSync()
    } finally {
      file?.close()
    }
    this.fs.rename(tmp, path.join(this.dir, MARKER_FILE))
    syncDirectory(this.fs, this.dir)
  }

  // ---- lost/ ---------------------------------------------------------------------------

  private readLostDir(): void {
    try {
      for (const n of this.fs.readdir(path.join(this.dir, LOST_DIR))) this.lostNames.add(n)
    } catch {
      // None yet.
    }
  }

  private ensureLostDir(): void {
    this.fs.mkdir(path.join(this.dir, LOST_DIR))
  }

  /** A free name in lost/ for `name` (`name.1`, `name.2`... when taken by an earlier repair). */
  private lostTarget(name: string): string {
    let candidate = name
    for (let i = 1; this.lostNames.has(candidate); i++) candidate = `${name}.${i}`
    this.lostNames.add(candidate)
    return path.join(LOST_DIR, candidate)
  }

  /** Plans moving `name` into lost/ and records the outcome. */
  private moveAside(name: string, outcome: Omit<FileOutcome, 'file' | 'problems'> & { problems?: Finding[] }, copyOnly = false): void {
    const target = this.lostTarget(name)
    this.moves.push({ name, target, copyOnly, linked: false })
    this.files.push({ file: name, problems: [], ...outcome, movedTo: target })
  }

  private linkMoves(): void {
    if (this.moves.length === 0) return
    this.ensureLostDir()
    for (const m of this.moves) {
      try {
        this.fs.link(path.join(this.dir, m.name), path.join(this.dir, m.target))
        m.linked = true
      } catch {
        // No hard links here: the file is renamed after the switch instead (copied, when it keeps its name).
        if (m.copyOnly) this.copyFile(m.name, m.target)
      }
    }
    syncDirectory(this.fs, path.join(this.dir, LOST_DIR))
  }

  private copyFile(name: string, target: string): void {
    const bytes = this.fs.readFile(path.join(this.dir, name))
    const file = this.fs.open(path.join(this.dir, target), 'wx')
    try {
      writeFully(file, bytes, 0)
      file.datasyncSync()
    } finally {
      file.close()
    }
  }

  private finishMoves(): void {
    for (const m of this.moves) {
      if (m.copyOnly) continue
      const from = path.join(this.dir, m.name)
      if (m.linked) this.fs.unlink(from)
      else this.fs.rename(from, path.join(this.dir, m.target))
    }
    if (this.moves.length > 0) {
      syncDirectory(this.fs, this.dir)
      syncDirectory(this.fs, path.join(this.dir, LOST_DIR))
    }
  }
}

const EMPTY = Buffer.alloc(0)

/** A WAL's entries in internal-key order. */
function sortedWalEntries(entries: WalEntry[]): WalEntry[] {
  return [...entries].sort((a, b) => compareInternalKeys(a.key, a.sequence, b.key, b.sequence))
}

async function writeSorted(sink: TableSink, entries: WalEntry[]): Promise<void> {
  for (const e of sortedWalEntries(entries)) {
    const due = sink.add(e.key, e.sequence, e.kind, e.value ?? EMPTY)
    if (due !== undefined) await due
  }
}

/** Merges sources (each in internal-key order) into the sink through a binary heap. */
async function mergeInto(sink: TableSink, sources: Source[]): Promise<void> {
  const heap: Source[] = []
  const less = (a: Source, b: Source): boolean => compareInternalKeys(a.entry.key, a.entry.sequence, b.entry.key, b.entry.sequence) < 0
  const up = (i: number): void => {
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!less(heap[i], heap[p])) break
      ;[heap[i], heap[p]] = [heap[p], heap[i]]
      i = p
    }
  }
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < heap.length && less(heap[l], heap[m])) m = l
      if (r < heap.length && less(heap[r], heap[m])) m = r
      if (m === i) return
      ;[heap[i], heap[m]] = [heap[m], heap[i]]
      i = m
    }
  }
  for (const s of sources) {
    if (s.advance()) {
      heap.push(s)
      up(heap.length - 1)
    }
  }
  while (heap.length > 0) {
    const top = heap[0]
    const e = top.entry
    const due = sink.add(e.key, e.sequence, e.kind, e.value)
    if (due !== undefined) await due
    if (top.advance()) down(0)
    else {
      const last = heap.pop()!
      if (heap.length > 0) {
        heap[0] = last
        down(0)
      }
    }
  }
}

/** The shallowest level of 1..6 whose target size (open()'s defaults) holds `total` bytes. */
function levelFor(total: number): number {
  let level = 1
  let target = DEFAULT_OPTIONS.levelBaseBytes
  while (total > target && level < NUM_LEVELS - 1) {
    level++
    target *= DEFAULT_OPTIONS.levelSizeMultiplier
  }
  return level
}

// ---- output ------------------------------------------------------------------------------

export async function printRepair(r: RepairReport, out: Out): Promise<void> {
  await out.line(`strata repair ${r.dir}`)
  if (r.mode === 'manifest') await out.line('mode: CURRENT and its manifest are readable: tables keep their levels, damaged ones are rewritten, WALs become L0 tables')
  else await out.line(`mode: rebuilt from the tables and WALs: ${r.reason}`)
  const kept = r.files.filter((f) => f.action === 'kept')
  if (kept.length > 0) await out.line(`  ${plural(kept.length, 'table')} kept unchanged (${count(kept.reduce((n, f) => n + (f.entriesKept ?? 0), 0))} entries)`)
  for (const f of r.files) {
    if (f.action === 'kept') continue
    const level = f.level !== undefined ? ` (L${f.level})` : ''
    const moved = f.movedTo !== undefined ? `; moved to ${f.movedTo}` : ''
    await out.line(`  ${f.file}${level}: ${f.action}${f.reason !== undefined ? `: ${f.reason}` : ''}${moved}`)
    for (const range of f.lostKeyRanges ?? []) {
      const show = (b: JsonBytes): string => (b.encoding === 'hex' ? `0x${b.text}` : JSON.stringify(b.text))
      const from = range.after !== undefined ? `after ${show(range.after)}` : 'from the start of the table'
      const to = range.upTo !== undefined ? `up to ${show(range.upTo)}` : range.before !== undefined ? `before ${show(range.before)}` : 'to the end of the table'
      await out.line(`      lost keys ${from}, ${to}`)
    }
    for (const p of f.problems.slice(1)) await out.line(`      ${showFinding(p)}`)
  }
  const l = r.lost
  const entries = l.entriesUnknown ? `${count(l.entries)}+ entries (some not countable)` : plural(l.entries, 'entry', 'entries')
  await out.line(`lost: ${plural(l.blocks, 'data block')}, ${plural(l.records, 'WAL range')}, ${entries}, ${bytes(l.bytes)}`)
  const perLevel = new Map<number, number>()
  for (const t of r.result.tables) perLevel.set(t.level, (perLevel.get(t.level) ?? 0) + 1)
  const levels = [...perLevel.entries()].sort(([a], [b]) => a - b).map(([level, n]) => `L${level}: ${n}`).join(', ')
  await out.line(
    `result: ${r.result.manifest} names ${plural(r.result.tables.length, 'table')}${levels === '' ? '' : ` (${levels})`}, last sequence ${r.result.lastSequence}, next file ${r.result.nextFileNumber}`,
  )
  if (r.verified) await out.line(`verify: open() succeeded and read ${plural(r.liveKeys ?? 0, 'live key')}`)
  else await out.line(`verify: FAILED: ${r.verifyError}`)
}
