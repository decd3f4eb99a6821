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
 *  - blob values: every blob file is read whole first. A reference (an entry
 *    of kind 3) into an intact blob file must name one of its records; one
 *    into a damaged blob file is read and checked as the engine reads it, and
 *    a value that verifies is copied into a new blob file. An entry whose
 *    value cannot be read (a missing or damaged blob file, a malformed
 *    reference) is unreadable data, as an entry of a damaged block is: it is
 *    dropped, and the table holding it is rewritten without it (a table whose
 *    references all read stays as it is);
 *  - a fresh manifest names exactly the tables kept and written, and the blob
 *    files they reference (value counts from the files' footers, garbage: the
 *    values no kept table references), with the highest sequence seen, and
 *    CURRENT is switched to it; a blob file no kept table references is moved
 *    aside;
 *  - every file replaced or left out is moved into `<dir>/lost/`: linked
 *    there before the switch, unlinked from the directory after it, so that
 *    a crash at any point loses nothing.
 * Then the database is opened with `open()` and every key and value read once.
 */
import { randomUUID } from 'node:crypto'
import * as path from 'node:path'
import { initChecksum } from '../../base/checksum.js'
import { KIND_BLOB } from '../../base/entry.js'
import { StrataError } from '../../base/errors.js'
import { CURRENT_FILE, MARKER_FILE, MARKER_TEMP_FILE, blobFileName, manifestFileName, parseFileName, tableFileName, walFileName } from '../../base/file-names.js'
import { BlobFileWriter } from '../../blob/blob-file-writer.js'
import { blobValueChecksum } from '../../blob/blob-format.js'
import { decodeBlobReference, type BlobReference } from '../../blob/blob-reference.js'
import type { BlobFileMeta } from '../../manifest/blob-file-meta.js'
import { acquireLock } from '../../base/lock-file.js'
import { DIRECTORY_FORMAT_VERSION, decodeMarker, encodeMarker } from '../../engine/directory-identity.js'
import type { TableMeta } from '../../manifest/table-meta.js'
import { NUM_LEVELS, emptyEdit } from '../../manifest/table-version-edit.js'
import { TableVersion } from '../../manifest/table-version.js'
import { TableVersionSet, type RecoveredState } from '../../manifest/table-version-set.js'
import { DEFAULT_OPTIONS } from '../../options.js'
import { readExactly, syncDirectory, writeFully, type File, type FileSystem } from '../../vfs/file-system.js'
import { nodeFileSystem } from '../../vfs/node-file-system.js'
import { RECORD_HEADER_BYTES } from '../../wal/record-framing.js'
import { BlobRecordIndex, compareInternalKeys, inspectBlobFile, isIntactBlob, listDirectory, requireDirectory, replayManifest, type BlobFileInspection, type DirectoryListing } from './file-inspector.js'
import { bytes, count, jsonBytes, plural, showBytes, showFinding, type Finding, type JsonBytes, type Out } from './output.js'
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
  /** A table: entries dropped because their blob value could not be read. A blob file: referenced values that could not be read. */
  blobValuesLost?: number
  /** A blob file kept: the values kept tables reference in it, and those they do not (garbage). */
  valuesReferenced?: number
  valuesGarbage?: number
  /** A damaged blob file: the new blob file its readable referenced values were copied into. */
  newBlobFile?: string
  problems: Finding[]
}

export interface RepairReport {
  dir: string
  mode: 'manifest' | 'rebuild'
  /** Why the database was rebuilt rather than repaired in place. */
  reason?: string
  files: FileOutcome[]
  lost: { blocks: number; records: number; blobValues: number; entries: number; entriesUnknown: boolean; bytes: number }
  result: {
    manifest: string
    logNumber: number
    nextFileNumber: number
    lastSequence: number
    tables: Array<{ file: string; level: number; entries: number; bytes: number }>
    blobFiles: Array<{ file: string; fileBytes: number; valueCount: number; valueBytes: number; garbageCount: number; garbageBytes: number }>
  }
  /** Whether open() succeeded afterwards and every key and value could be read. */
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
      // Values too: every blob reference is resolved, so a blob file the manifest lacks cannot go unnoticed.
      let n = 0
      for await (const _ of db.iterator()) n++
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
  /** The table it reads (undefined: a WAL). */
  table?: number
}

/** What became of the blob entries of one table that was copied. */
interface BlobEffects {
  /** Entries dropped: their value could not be read. */
  lost: number
  lostBytes: number
  /** Values copied out of damaged blob files. */
  copied: number
  /** Why values could not be read (the first few). */
  problems: Finding[]
}

const newBlobEffects = (): BlobEffects => ({ lost: 0, lostBytes: 0, copied: 0, problems: [] })

/** Problems listed per table for blob values that could not be read; the rest are counted. */
const MAX_BLOB_PROBLEMS = 5

/** A blob file of the directory as the repair found it, and what the kept tables take from it. */
interface BlobFileState {
  number: number
  name: string
  inspection: BlobFileInspection
  /** Entries whose value in it could not be read, and their value bytes. */
  valuesLost: number
  bytesLost: number
  /** A damaged file: references to its values copied into the salvage blob file, by old value offset. */
  copied: Map<number, Buffer>
}

/**
 * The blob files of the directory and the blob values of the entries the
 * repair keeps: whether a reference reads, the values of damaged blob files
 * copied into one new blob file, and the distinct values each blob file has
 * referenced by a kept entry (so that its garbage is known).
 */
class BlobValues {
  readonly files = new Map<number, BlobFileState>()
  /** Distinct values referenced by kept entries: blob file → value offset → value length. */
  private readonly referenced = new Map<number, Map<number, number>>()
  private writer: BlobFileWriter | undefined
  private readonly handles = new Map<number, File>()
  private readonly ref: BlobReference = { fileNumber: 0, valueOffset: 0, valueLength: 0, checksum: 0 }

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    private readonly allocate: () => number,
  ) {}

  /** Reads every blob file of the directory whole (`scanBlobFile`). */
  load(numbers: readonly number[]): void {
    for (const number of numbers) this.files.set(number, this.newState(number, inspectBlobFile(this.fs, this.dir, number)))
  }

  private newState(number: number, inspection: BlobFileInspection): BlobFileState {
    return { number, name: blobFileName(number), inspection, valuesLost: 0, bytesLost: 0, copied: new Map() }
  }

  /** The blob file a reference names, when it decodes (into this.ref). */
  private decode(reference: Uint8Array): BlobReference | undefined {
    try {
      return decodeBlobReference(reference, '', this.ref)
    } catch {
      return undefined
    }
  }

  /**
   * Whether a reference reads as it is: it names a record of an intact blob
   * file, with the record's length and checksum. Returns the problem if not.
   */
  checkAsIs(reference: Uint8Array): string | undefined {
    const r = this.decode(reference)
    if (r === undefined) return 'malformed blob reference'
    const f = this.files.get(r.fileNumber)
    const what = `value at offset ${r.valueOffset} of ${blobFileName(r.fileNumber)}`
    if (f === undefined || f.inspection.missing) return `${what}: the blob file is missing`
    if (!isIntactBlob(f.inspection)) return `${what}: the blob file is damaged (${f.inspection.problems[0].message})`
    const i = f.inspection.records.find(r.valueOffset)
    if (i < 0 || f.inspection.records.valueLength(i) !== r.valueLength || f.inspection.records.checksum(i) !== r.checksum) {
      return `${what}: no record of the blob file holds a value there with the reference's length and checksum`
    }
    return undefined
  }

  /**
   * The reference to write for a kept entry: the same one when it reads as it
   * is; a new one when its value, in a damaged blob file, reads and verifies
   * (the value is copied into the salvage blob file); else the problem (the
   * entry cannot be kept) with the value bytes lost.
   */
  async resolve(key: Uint8Array, reference: Uint8Array): Promise<{ reference: Uint8Array; copied: boolean } | { problem: string; bytes: number }> {
    const problem = this.checkAsIs(reference)
    if (problem === undefined) return { reference, copied: false }
    const r = this.decode(reference)
    if (r === undefined) return { problem, bytes: 0 }
    let f = this.files.get(r.fileNumber)
    if (f === undefined) {
      // Referenced, but not in the directory: reported as missing.
      f = this.newState(r.fileNumber, { name: blobFileName(r.fileNumber), number: r.fileNumber, missing: true, fileBytes: 0, problems: [], records: new BlobRecordIndex(), verifiedEnd: 0 })
      this.files.set(r.fileNumber, f)
    }
    const lose = (why: string): { problem: string; bytes: number } => {
      f.valuesLost++
      f.bytesLost += r.valueLength
      return { problem: why, bytes: r.valueLength }
    }
    if (f.inspection.missing || isIntactBlob(f.inspection)) return lose(problem)
    // A damaged blob file: read the value as the engine would, and copy it when it verifies.
    const copied = f.copied.get(r.valueOffset)
    if (copied !== undefined) return { reference: copied, copied: true }
    const { valueOffset, valueLength, checksum } = r
    let value: Buffer
    try {
      let handle = this.handles.get(f.number)
      if (handle === undefined) {
        handle = this.fs.open(path.join(this.dir, f.name), 'r')
        this.handles.set(f.number, handle)
      }
      value = readExactly(handle, valueLength, valueOffset)
    } catch (err) {
      return lose(`value at offset ${valueOffset} of ${f.name}: cannot read: ${(err as Error).message}`)
    }
    if (value.length !== valueLength) return lose(`value at offset ${valueOffset} of ${f.name} (${valueLength} bytes) runs past the end of the file`)
    if (blobValueChecksum(value) !== checksum) return lose(`value at offset ${valueOffset} of ${f.name}: blob value checksum mismatch`)
    this.writer ??= new BlobFileWriter(this.fs, this.dir, this.allocate())
    const written = this.writer.add(key, value)
    if (written.due !== undefined) await written.due
    f.copied.set(valueOffset, written.reference)
    return { reference: written.reference, copied: true }
  }

  /** Counts the value a kept entry references. */
  count(reference: Uint8Array): void {
    const r = this.decode(reference)
    if (r === undefined) return
    let values = this.referenced.get(r.fileNumber)
    if (values === undefined) this.referenced.set(r.fileNumber, (values = new Map()))
    values.set(r.valueOffset, r.valueLength)
  }

  /** The blob files references name, ascending and unique (a table's `blobFiles`). */
  filesOf(references: readonly Uint8Array[]): number[] {
    const files = new Set<number>()
    for (const reference of references) {
      const r = this.decode(reference)
      if (r !== undefined) files.add(r.fileNumber)
    }
    return [...files].sort((a, b) => a - b)
  }

  /** Distinct values kept entries reference in blob file `number`, and their bytes. */
  referencedIn(number: number): { count: number; bytes: number } {
    const values = this.referenced.get(number)
    let bytes = 0
    for (const n of values?.values() ?? []) bytes += n
    return { count: values?.size ?? 0, bytes }
  }

  /** Finishes the salvage blob file, if values were copied (durable, with its directory entry). */
  async finish(): Promise<{ number: number; fileBytes: number; valueCount: number; valueBytes: number } | undefined> {
    for (const h of this.handles.values()) h.close()
    this.handles.clear()
    const w = this.writer
    this.writer = undefined
    if (w === undefined) return undefined
    const written = await w.finish()
    syncDirectory(this.fs, this.dir)
    return written
  }

  /** Closes everything after a failure (a salvage blob file being written stays, unreferenced). */
  abandon(): void {
    for (const h of this.handles.values()) h.close()
    this.handles.clear()
    this.writer?.abandon()
    this.writer = undefined
  }
}

class Repairer {
  private readonly files: FileOutcome[] = []
  private readonly moves: Move[] = []
  private readonly lostNames = new Set<string>()
  private nextNumber = 1
  private lastSequence = 0
  private readonly lost = { blocks: 0, records: 0, blobValues: 0, entries: 0, entriesUnknown: false, bytes: 0 }
  private readonly blobs: BlobValues

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
  ) {
    this.blobs = new BlobValues(fs, dir, () => this.allocate())
  }

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
    let blobFiles: BlobFileMeta[]
    try {
      this.blobs.load(listing.blobs)
      if (state !== undefined) await this.repairInPlace(listing, state, levels)
      else await this.rebuild(listing, levels)
      blobFiles = await this.settleBlobFiles(state)
    } catch (err) {
      this.blobs.abandon()
      throw err
    }

    // Every manifest is replaced by the new one; the old CURRENT text is kept when it was not usable.
    for (const m of listing.manifests) this.moveAside(manifestFileName(m), { action: 'replaced', reason: 'replaced by the new manifest' })
    if (state === undefined && listing.hasCurrent) this.moveAside(CURRENT_FILE, { action: 'replaced', reason: 'replaced by a CURRENT naming the new manifest' }, true)

    // Link everything to move into lost/, then switch the manifest, then drop the old names.
    this.linkMoves()
    const edit = emptyEdit()
    levels.forEach((tables, level) => tables.forEach((table) => edit.added.push({ level, table })))
    edit.blobsAdded = blobFiles.map((b) => ({ ...b, garbageCount: 0, garbageBytes: 0 }))
    edit.blobGarbage = blobFiles.filter((b) => b.garbageCount > 0).map((b) => ({ number: b.number, count: b.garbageCount, bytes: b.garbageBytes }))
    const tableVersion = TableVersion.empty().apply(edit)
    const logNumber = this.allocate()
    const set = new TableVersionSet(this.fs, this.dir, { tableVersion, logNumber, nextFileNumber: this.nextNumber, lastSequence: this.lastSequence }, DEFAULT_OPTIONS.maxManifestBytes)
    try {
      set.writeSnapshotManifest(tableVersion, logNumber, this.lastSequence)
    } finally {
      set.close()
    }
    const manifest = manifestFileName(set.manifestFileNumber)
    const blobsNamed = blobFiles.length > 0 ? ` and ${plural(blobFiles.length, 'blob file')}` : ''
    this.files.push({ file: manifest, action: 'written', reason: `names ${plural(levels.reduce((n, l) => n + l.length, 0), 'table')}${blobsNamed}`, problems: [] })
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
        blobFiles: blobFiles.map((b) => ({
          file: blobFileName(b.number),
          fileBytes: b.fileBytes,
          valueCount: b.valueCount,
          valueBytes: b.valueBytes,
          garbageCount: b.garbageCount,
          garbageBytes: b.garbageBytes,
        })),
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
        // Read whole; the blob references are kept to see whether each one reads as it is.
        const insp = newInspection(meta.number)
        const references: Buffer[] = []
        for (const e of tableEntries(this.fs, this.dir, insp, { meta, lastSequence: Infinity, ignoreBlobFiles: true })) {
          if (e.kind === KIND_BLOB) references.push(Buffer.from(e.value))
        }
        if (insp.missing) {
          this.files.push({ file: insp.name, action: 'missing', level, reason: 'named by the manifest, but the file does not exist', entriesLost: meta.entryCount, problems: [] })
          this.lost.entries += meta.entryCount
          continue
        }
        this.lastSequence = Math.max(this.lastSequence, insp.maxSequence)
        if (isIntact(insp) && references.every((r) => this.blobs.checkAsIs(r) === undefined)) {
          for (const r of references) this.blobs.count(r)
          // The manifest's record of the table's blob files is written anew from its references.
          const blobFiles = this.blobs.filesOf(references)
          const { blobFiles: _, ...rest } = meta
          levels[level].push(blobFiles.length > 0 ? { ...rest, blobFiles } : rest)
          this.files.push({ file: insp.name, action: 'kept', level, entriesKept: insp.entries, problems: [] })
          continue
        }
        const written = await this.salvageTable(meta.number)
        levels[level].push(...written.tables)
        this.recordDamagedTable(written.inspection, level, written.tables, meta.entryCount, level, written.blobs)
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
      const sink = this.newSink()
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
        table: n,
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
    const sink = this.newSink(DEFAULT_OPTIONS.targetTableBytes)
    const effects = new Map<number, BlobEffects>()
    const blobValue = async (e: EntryView, source: Source): Promise<Uint8Array | undefined> => {
      let fx = effects.get(source.table!)
      if (fx === undefined) effects.set(source.table!, (fx = newBlobEffects()))
      return this.blobValue(e, fx, tableFileName(source.table!))
    }
    try {
      await mergeInto(sink, all, blobValue)
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
      const fx = effects.get(insp.number)
      if (isIntact(before) && (fx === undefined || (fx.lost === 0 && fx.copied === 0))) {
        this.moveAside(insp.name, { action: 'rewritten', reason: `intact; merged into the new tables at level ${level}`, newTables: names, entriesKept: insp.entries })
      } else {
        this.recordDamagedTable(insp, undefined, tables, before.footer?.entryCount, level, fx)
      }
    }
    for (const w of wals) this.recordWal(w.outcome, tables, level)
  }

  // ---- tables ------------------------------------------------------------------------

  /** Copies the verified entries of table `number` into a new table (none when nothing verifies). */
  private async salvageTable(number: number): Promise<{ tables: TableMeta[]; inspection: TableInspection; blobs: BlobEffects }> {
    const sink = this.newSink()
    const inspection = newInspection(number)
    const blobs = newBlobEffects()
    try {
      for (const e of tableEntries(this.fs, this.dir, inspection)) {
        const value = e.kind === KIND_BLOB ? await this.blobValue(e, blobs, inspection.name) : e.value
        if (value === undefined) continue
        const due = sink.add(e.key, e.sequence, e.kind, value)
        if (due !== undefined) await due
      }
    } catch (err) {
      await sink.abandon()
      throw err
    }
    return { tables: await sink.finish(), inspection, blobs }
  }

  /** A sink for new tables whose blob references are counted (each table's blob files are recorded by TableFileWriter). */
  private newSink(cutBytes?: number): TableSink {
    const sink = new TableSink(this.fs, this.dir, () => this.allocate(), cutBytes)
    sink.onBlobReference = (reference) => this.blobs.count(reference)
    return sink
  }

  /**
   * The value to write for an entry of kind 3 copied into a new table: its
   * reference, or a new one when the value was copied out of a damaged blob
   * file; undefined when the value cannot be read (the entry is dropped and
   * counted in `fx`).
   */
  private async blobValue(e: EntryView, fx: BlobEffects, table: string): Promise<Uint8Array | undefined> {
    const r = await this.blobs.resolve(e.key, e.value)
    if ('reference' in r) {
      if (r.copied) fx.copied++
      return r.reference
    }
    fx.lost++
    fx.lostBytes += r.bytes
    if (fx.problems.length < MAX_BLOB_PROBLEMS) fx.problems.push({ file: table, message: `${showBytes(e.key, { hex: false })} @${e.sequence}: ${r.problem}: entry dropped` })
    return undefined
  }

  /**
   * Which blob files the new manifest lists: every intact one a kept entry
   * references (counts from its footer, garbage: the values no kept entry
   * references) and the salvage blob file; the others are moved aside.
   */
  private async settleBlobFiles(state: RecoveredState | undefined): Promise<BlobFileMeta[]> {
    const out: BlobFileMeta[] = []
    const salvage = await this.blobs.finish()
    const salvageName = salvage !== undefined ? blobFileName(salvage.number) : undefined
    for (const f of [...this.blobs.files.values()].sort((a, b) => a.number - b.number)) {
      const insp = f.inspection
      const used = this.blobs.referencedIn(f.number)
      const lostNote = f.valuesLost > 0 ? `; ${plural(f.valuesLost, 'entry', 'entries')} referencing values in it could not be kept` : ''
      if (insp.missing) {
        const named = state?.tableVersion.blobs.has(f.number) === true
        if (named || f.valuesLost > 0) {
          this.files.push({ file: f.name, action: 'missing', reason: `${named ? 'named by the manifest' : 'referenced by tables'}, but the file does not exist${lostNote}`, blobValuesLost: f.valuesLost, problems: [] })
        }
        continue
      }
      if (isIntactBlob(insp)) {
        if (used.count === 0) {
          this.moveAside(f.name, { action: 'moved-aside', reason: 'unreferenced: no kept table references a value in it' })
          continue
        }
        const totals = insp.totals!
        const meta: BlobFileMeta = {
          number: f.number,
          fileBytes: insp.fileBytes,
          valueCount: totals.recordCount,
          valueBytes: totals.valueBytes,
          garbageCount: totals.recordCount - used.count,
          garbageBytes: Math.max(0, totals.valueBytes - used.bytes),
        }
        out.push(meta)
        this.files.push({ file: f.name, action: 'kept', valuesReferenced: used.count, valuesGarbage: meta.garbageCount, problems: [] })
        continue
      }
      // Damaged: what could be read was copied into the salvage blob file.
      const copied = f.copied.size > 0 ? `; ${plural(f.copied.size, 'referenced value')} copied into ${salvageName}` : ''
      this.moveAside(f.name, {
        action: f.copied.size > 0 ? 'rewritten' : 'moved-aside',
        reason: `damaged (${insp.problems[0].message})${copied}${lostNote}${f.copied.size === 0 && f.valuesLost === 0 ? '; no kept table references a value in it' : ''}`,
        newBlobFile: f.copied.size > 0 ? salvageName : undefined,
        blobValuesLost: f.valuesLost,
        problems: insp.problems,
      })
    }
    if (salvage !== undefined) {
      const used = this.blobs.referencedIn(salvage.number)
      if (used.count === 0) {
        this.moveAside(salvageName!, { action: 'moved-aside', reason: 'written with values of damaged blob files, but no kept table references them' })
      } else {
        out.push({ ...salvage, garbageCount: salvage.valueCount - used.count, garbageBytes: Math.max(0, salvage.valueBytes - used.bytes) })
        this.files.push({ file: salvageName!, action: 'written', reason: `${plural(salvage.valueCount, 'value')} copied out of damaged blob files`, valuesReferenced: used.count, problems: [] })
      }
    }
    return out
  }

  /** Reports a damaged table whose verified entries went into `tables`, and moves it aside. */
  private recordDamagedTable(insp: TableInspection, level: number | undefined, tables: TableMeta[], expectedEntries: number | undefined, newLevel = level, blobs = newBlobEffects()): void {
    const names = tables.map((t) => tableFileName(t.number))
    const kept = insp.entries - blobs.lost
    const entriesLost = expectedEntries !== undefined && expectedEntries >= kept ? expectedEntries - kept : null
    const dataLost = insp.lostBlocks.length > 0 || insp.outOfOrder > 0 || entriesLost !== 0
    const unit = insp.scanned ? 'unreadable range' : 'damaged data block'
    const losses: string[] = []
    if (insp.lostBlocks.length > 0) losses.push(`${plural(insp.lostBlocks.length, unit)} skipped`)
    if (blobs.lost > 0) losses.push(`${plural(blobs.lost, 'entry', 'entries')} whose blob value cannot be read dropped`)
    if (blobs.copied > 0) losses.push(`${plural(blobs.copied, 'blob value')} copied out of damaged blob files`)
    const what = losses.length > 0 ? losses.join(', ') : dataLost ? 'entries lost' : 'no entry lost'
    this.lost.blocks += insp.lostBlocks.length
    this.lost.bytes += insp.lostBytes + blobs.lostBytes
    this.lost.blobValues += blobs.lost
    if (entriesLost === null) this.lost.entriesUnknown = true
    else this.lost.entries += entriesLost
    const into = tables.length > 0 ? `; ${plural(kept, 'entry', 'entries')} kept in ${names.join(', ')} at level ${newLevel}` : '; nothing could be kept'
    const cause =
      insp.problems.length > 0 || blobs.problems.length === 0
        ? `damaged (${insp.problems.length > 0 ? insp.problems[0].message : blobs.copied > 0 ? 'references values of damaged blob files' : 'unreadable'})`
        : `blob values unreadable (${blobs.problems[0].message})`
    this.moveAside(insp.name, {
      action: 'rewritten',
      level,
      reason: `${cause}: ${what}${into}`,
      newTables: names,
      entriesKept: kept,
      blobValuesLost: blobs.lost,
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
      problems: [...insp.problems, ...blobs.problems, ...(blobs.lost > blobs.problems.length ? [{ file: insp.name, message: `${blobs.lost - blobs.problems.length} more entries dropped for their blob values` }] : [])],
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

/**
 * Merges sources (each in internal-key order) into the sink through a binary
 * heap. `blobValue` gives the value to write for an entry of kind 3 (undefined:
 * drop it); a repeat of the entry written last is not asked about (the sink
 * drops it).
 */
async function mergeInto(sink: TableSink, sources: Source[], blobValue?: (e: EntryView, source: Source) => Promise<Uint8Array | undefined>): Promise<void> {
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
    const value = e.kind === KIND_BLOB && blobValue !== undefined && !sink.isRepeat(e.key, e.sequence) ? await blobValue(e, top) : e.value
    if (value !== undefined) {
      const due = sink.add(e.key, e.sequence, e.kind, value)
      if (due !== undefined) await due
    }
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
  const kept = r.files.filter((f) => f.action === 'kept' && f.file.endsWith('.sst'))
  if (kept.length > 0) await out.line(`  ${plural(kept.length, 'table')} kept unchanged (${count(kept.reduce((n, f) => n + (f.entriesKept ?? 0), 0))} entries)`)
  const keptBlobs = r.files.filter((f) => f.action === 'kept' && f.file.endsWith('.blob'))
  if (keptBlobs.length > 0) {
    const referenced = keptBlobs.reduce((n, f) => n + (f.valuesReferenced ?? 0), 0)
    const garbage = keptBlobs.reduce((n, f) => n + (f.valuesGarbage ?? 0), 0)
    await out.line(`  ${plural(keptBlobs.length, 'blob file')} kept unchanged (${plural(referenced, 'value')} referenced by the tables kept, ${count(garbage)} garbage)`)
  }
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
  await out.line(`lost: ${plural(l.blocks, 'data block')}, ${plural(l.records, 'WAL range')}, ${plural(l.blobValues, 'blob value')}, ${entries}, ${bytes(l.bytes)}`)
  const perLevel = new Map<number, number>()
  for (const t of r.result.tables) perLevel.set(t.level, (perLevel.get(t.level) ?? 0) + 1)
  const levels = [...perLevel.entries()].sort(([a], [b]) => a - b).map(([level, n]) => `L${level}: ${n}`).join(', ')
  await out.line(
    `result: ${r.result.manifest} names ${plural(r.result.tables.length, 'table')}${levels === '' ? '' : ` (${levels})`}${r.result.blobFiles.length > 0 ? ` and ${plural(r.result.blobFiles.length, 'blob file')}` : ''}, last sequence ${r.result.lastSequence}, next file ${r.result.nextFileNumber}`,
  )
  if (r.verified) await out.line(`verify: open() succeeded and read ${plural(r.liveKeys ?? 0, 'live key')} with their values`)
  else await out.line(`verify: FAILED: ${r.verifyError}`)
}
