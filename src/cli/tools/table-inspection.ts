/**
 * Checking one table file block by block, and reading every entry that can
 * still be verified (`strata check` reads it to the end and reports; `strata
 * repair` copies what it yields into a new table). Unlike the engine's
 * reader, which stops at the first damage, it goes on past a damaged block,
 * and finds the data blocks by scanning when the footer or index cannot say
 * where they are.
 */
import * as path from 'node:path'
import { KIND_DELETE, isExpiringKind } from '../../base/entry.js'
import { blobFileName, tableFileName } from '../../base/file-names.js'
import type { BlobReference } from '../../blob/blob-reference.js'
import type { RangeTombstoneIndex } from '../../base/range-tombstones.js'
import type { TableMeta } from '../../manifest/table-meta.js'
import { BlockIterator } from '../../sstable/block-iterator.js'
import { Filter, filterHash } from '../../sstable/filter-block.js'
import { PointIndex } from '../../sstable/point-index.js'
import { BLOCK_TRAILER_BYTES, COMPRESSION_LZ4, type BlockHandle, type DecodedFooter } from '../../sstable/table-format.js'
import type { FileSystem } from '../../vfs/file-system.js'
import { checkBlobReference, type BlobCatalog } from './blob-inspection.js'
import { lenientDataEnd, scanDataBlocks } from './data-block-scan.js'
import { isBlobKind, payloadOf, readExpiry } from './entry-kinds.js'
import { isMissing } from './database-directory.js'
import { KeyCopy, compareInternalKeys } from './internal-keys.js'
import { findingOf, prefixed, showBytes, type Finding } from './output.js'
import { TableFile, decodeIndex, type DataBlock, type IndexEntry } from './table-file.js'

/** One entry as a table yields it: views valid until the next entry is asked for. */
export interface EntryView {
  key: Buffer
  sequence: number
  kind: number
  value: Buffer
}

/** A data block that could not be read, and what it held where that is known. */
export interface LostBlock {
  /** Block number in the index (undefined when found by scanning). */
  index?: number
  /** First byte and the byte after its trailer. */
  offset: number
  end: number
  /**
   * Its keys lie after `after` (the last key read before it) and up to `upTo`
   * (the block's last key, from the index) or before `before` (the first key
   * read after it). Undefined: the start or end of the table, or not known.
   */
  after?: Buffer
  upTo?: Buffer
  before?: Buffer
}

/** What reading a table found. */
export interface TableInspection {
  name: string
  number: number
  /** The file does not exist. */
  missing: boolean
  fileBytes: number
  formatVersion?: number
  footer?: DecodedFooter
  /** Errors, with offsets where known. */
  problems: Finding[]
  /** Data blocks known (from the index, or found by scanning). */
  dataBlocks: number
  /** Whether the block list came from a scan because the footer or index is unreadable. */
  scanned: boolean
  /** Of the data blocks that read (checksum verified, decompressed): those stored LZ4-compressed, their stored bytes (trailers excluded) and raw bytes. */
  compressedBlocks: number
  storedDataBytes: number
  rawDataBytes: number
  lostBlocks: LostBlock[]
  /** Bytes of the data area that held no verifiable block. */
  lostBytes: number
  /** Entries read from verified blocks (in order; out-of-order ones are not counted). */
  entries: number
  deletes: number
  /** Entries skipped because they broke internal-key order. */
  outOfOrder: number
  smallest?: { key: Buffer; sequence: number }
  largest?: { key: Buffer; sequence: number }
  maxSequence: number
  /** The smallest sequence read (Infinity: none). */
  minSequence: number
  /** Entries of kinds 3 and 5 (KIND_BLOB, KIND_BLOB_EXPIRING: the value is in a blob file) among `entries`. */
  blobEntries: number
  /** References read, per blob file number (with a blob catalog: malformed ones are not counted). */
  blobReferences: Map<number, number>
  /** References into blob files that were missing when the table was read (a concurrent writer may have deleted them), per file. */
  blobFilesMissing: Map<number, number>
}

/** What the manifest says about the table, to compare with. */
export interface TableExpectation {
  meta: TableMeta
  /** The manifest's last sequence: no entry may be newer. */
  lastSequence: number
  /** Do not compare the blob files the table references with `meta.blobFiles` (repair writes them anew). */
  ignoreBlobFiles?: boolean
  /**
   * The manifest's live range tombstones: with a range-delete floor in
   * `meta` (tag 11), no entry may be covered by a tombstone newer than it and
   * not above the floor (the compaction that wrote the table promised so).
   */
  rangeTombstones?: RangeTombstoneIndex
}

/** Most findings of one kind reported per table; the rest are counted. */
const MAX_SAME_FINDINGS = 5

/** An empty inspection of table `number`. */
export function newInspection(number: number): TableInspection {
  return {
    name: tableFileName(number),
    number,
    missing: false,
    fileBytes: 0,
    problems: [],
    dataBlocks: 0,
    scanned: false,
    compressedBlocks: 0,
    storedDataBytes: 0,
    rawDataBytes: 0,
    lostBlocks: [],
    lostBytes: 0,
    entries: 0,
    deletes: 0,
    outOfOrder: 0,
    maxSequence: 0,
    minSequence: Infinity,
    blobEntries: 0,
    blobReferences: new Map(),
    blobFilesMissing: new Map(),
  }
}

/** True when the table read back whole and matched what was expected. */
export function isIntact(t: TableInspection): boolean {
  return !t.missing && t.problems.length === 0
}

/**
 * Yields every entry of table `number` in `dir` that lies in a verified data
 * block, in order, while recording in `out` every problem met: the footer,
 * index, filter and point index (each read and verified), each data block's
 * checksum and decoding, internal-key order inside and across blocks, each
 * block's last key against its index entry, every key against the filter and
 * point index, the footer's entry count, and (with `expect`) the size, entry
 * count, delete count, smallest and largest key the manifest recorded, and
 * the manifest's last sequence and the blob files it records for the table.
 * Every expiring entry (kinds 4 and 5) must start with an expiry time that
 * reads. With `blobs`, every blob reference (an entry of kind 3, or 5 after
 * its expiry time) must decode and name a blob file of the catalog, within
 * its records, where a record's value starts with that length and checksum.
 * A missing file sets `out.missing`.
 *
 * The entry object is reused: its views are valid until the next one.
 */
export function* tableEntries(fs: FileSystem, dir: string, out: TableInspection, expect?: TableExpectation, blobs?: BlobCatalog): Generator<EntryView, void, undefined> {
  const name = out.name
  let tf: TableFile
  try {
    tf = TableFile.open(fs, path.join(dir, name))
  } catch (err) {
    if (isMissing(err)) out.missing = true
    else out.problems.push({ file: name, message: `cannot open: ${(err as Error).message}` })
    return
  }
  const counts = new Map<string, number>()
  const report = (kind: string, f: Finding): void => {
    const n = (counts.get(kind) ?? 0) + 1
    counts.set(kind, n)
    if (n <= MAX_SAME_FINDINGS) out.problems.push(f)
  }
  try {
    out.fileBytes = tf.fileBytes
    if (expect !== undefined && tf.fileBytes !== expect.meta.fileBytes) {
      out.problems.push({ file: name, message: `the file is ${tf.fileBytes} bytes, the manifest says ${expect.meta.fileBytes}` })
    }
    let footer: DecodedFooter | undefined
    try {
      footer = tf.footer()
      out.footer = footer
      out.formatVersion = footer.formatVersion
    } catch (err) {
      out.problems.push(prefixed('footer', findingOf(err, name, tf.footerOffset())))
    }

    // Where the data blocks are: the index, else a scan of the data area.
    let index: IndexEntry[] | undefined
    if (footer !== undefined) {
      let contents: Buffer | undefined
      try {
        contents = tf.readBlock(footer.index, footer.formatVersion)
      } catch (err) {
        out.problems.push(prefixed('index block', findingOf(err, name, footer.index.offset)))
      }
      if (contents !== undefined) {
        const decoded = decodeIndex(contents, name, footer.dataEnd)
        if (decoded.problem !== undefined) out.problems.push(prefixed('index block', { ...decoded.problem, offset: footer.index.offset }))
        else index = checkIndexLayout(decoded.entries, footer, name, out)
      }
    }
    let scannedBlocks: Array<BlockHandle & DataBlock> | undefined
    const scannedLost: LostBlock[] = []
    let formatVersion = footer?.formatVersion
    if (index === undefined) {
      const buf = tf.readAll()
      const lenient = footer === undefined ? lenientDataEnd(buf) : undefined
      const dataEnd = footer?.filter.offset ?? lenient?.dataEnd
      const scan = scanDataBlocks(buf, dataEnd, formatVersion ?? lenient?.formatVersion)
      formatVersion ??= scan.formatVersion
      out.formatVersion ??= scan.formatVersion
      out.scanned = true
      scannedBlocks = scan.blocks
      for (const l of scan.lost) {
        // Without the data area's end, the scan stops at the first block it cannot verify: after
        // blocks were found, that is where the filter, point index, index and footer start.
        if (dataEnd === undefined && scan.blocks.length > 0) continue
        const endNote = dataEnd === undefined ? ' (the footer is unreadable: nothing that reads as a data block was found from the start)' : ''
        out.problems.push({ file: name, offset: l.offset, message: `no verifiable data block in bytes ${l.offset}..${l.end}${l.why !== undefined ? ` (its checksum matches, but ${l.why})` : endNote}` })
        scannedLost.push({ offset: l.offset, end: l.end })
        out.lostBytes += l.end - l.offset
      }
      if (scan.blocks.length === 0 && scan.lost.length === 0) out.problems.push({ file: name, message: 'no data block found' })
    }
    const blockCount = index?.length ?? scannedBlocks!.length
    out.dataBlocks = blockCount

    // Filter and point index.
    let filter: Filter | undefined
    let pointIndex: PointIndex | undefined
    if (footer !== undefined) {
      try {
        filter = new Filter(tf.readBlock(footer.filter, footer.formatVersion), name)
      } catch (err) {
        out.problems.push(prefixed('filter block', findingOf(err, name, footer.filter.offset)))
      }
      if (footer.pointIndex !== undefined) {
        try {
          const contents = tf.readBlock(footer.pointIndex, footer.formatVersion)
          if (index !== undefined) pointIndex = new PointIndex(contents, blockCount, name)
        } catch (err) {
          out.problems.push(prefixed('point index', findingOf(err, name, footer.pointIndex.offset)))
        }
      }
    }

    // Data blocks, entry by entry.
    const floor = expect?.rangeTombstones !== undefined && !expect.rangeTombstones.isEmpty ? (expect.meta.rangeDeleteFloor ?? 0) : 0
    const last = new KeyCopy()
    let lastSeq = 0
    let pendingLost: LostBlock | undefined
    const entry: EntryView = { key: Buffer.alloc(0), sequence: 0, kind: 0, value: Buffer.alloc(0) }
    const ref: BlobReference = { fileNumber: 0, valueOffset: 0, valueLength: 0, checksum: 0 }
    const attachScannedLoss = (upToOffset: number): void => {
      while (scannedLost.length > 0 && scannedLost[0].end <= upToOffset) {
        pendingLost = scannedLost.shift()!
        pendingLost.after = last.isSet ? Buffer.from(last.view()) : undefined
        out.lostBlocks.push(pendingLost)
      }
    }
    for (let i = 0; i < blockCount; i++) {
      const handle = index !== undefined ? index[i].handle : scannedBlocks![i]
      attachScannedLoss(handle.offset)
      let block: DataBlock
      if (index !== undefined) {
        try {
          block = tf.readDataBlock(handle, formatVersion!)
        } catch (err) {
          report('block', prefixed(`data block ${i}`, findingOf(err, name, handle.offset)))
          pendingLost = lostBlock(i, handle, index, last)
          out.lostBlocks.push(pendingLost)
          out.lostBytes += handle.size + BLOCK_TRAILER_BYTES
          continue
        }
      } else {
        block = scannedBlocks![i]
      }
      if (block.compression === COMPRESSION_LZ4) out.compressedBlocks++
      out.storedDataBytes += block.storedBytes
      out.rawDataBytes += block.contents.length
      const it = new BlockIterator(block.contents, name)
      let n = 0
      try {
        for (it.seekToFirst(); it.valid(); it.next()) n++
      } catch (err) {
        report('block', prefixed(`data block ${i} (checksum matches) does not decode`, findingOf(err, name, handle.offset)))
        pendingLost = lostBlock(i, handle, index, last)
        out.lostBlocks.push(pendingLost)
        out.lostBytes += handle.size + BLOCK_TRAILER_BYTES
        continue
      }
      for (it.seekToFirst(); it.valid(); it.next()) {
        const key = it.key()
        const seq = it.sequence()
        const kind = it.kind()
        let newKey = true
        if (last.isSet) {
          const c = compareInternalKeys(key, seq, last.view(), lastSeq)
          if (c <= 0) {
            out.outOfOrder++
            report('order', { file: name, offset: handle.offset, message: `data block ${i}: ${showBytes(key, { hex: false })} @${seq} does not sort after ${showBytes(last.view(), { hex: false })} @${lastSeq}` })
            continue
          }
          newKey = Buffer.compare(key, last.view()) !== 0
        }
        // Right after a lost block the key's first versions may have been in it: its filter and point index entries are not this block's.
        const afterLoss = pendingLost !== undefined
        if (pendingLost !== undefined) {
          pendingLost.before = Buffer.from(key)
          pendingLost = undefined
        }
        if (newKey && !afterLoss) {
          const hash = filterHash(key)
          if (filter !== undefined && !filter.mayContain(hash)) {
            report('filter', { file: name, offset: footer!.filter.offset, message: `filter block: does not hold key ${showBytes(key, { hex: false })} (data block ${i})` })
          }
          if (pointIndex !== undefined && !pointIndexNames(pointIndex, hash, i)) {
            report('point', { file: name, offset: footer!.pointIndex!.offset, message: `point index: does not name data block ${i} for key ${showBytes(key, { hex: false })}` })
          }
        }
        if (!last.isSet) out.smallest = { key: Buffer.from(key), sequence: seq }
        last.set(key)
        lastSeq = seq
        out.entries++
        if (kind === KIND_DELETE) out.deletes++
        else {
          const problem = checkValue(kind, it.value(), blobs, ref, out)
          if (problem !== undefined) report(problem.kind, { file: name, offset: handle.offset, message: `data block ${i}: ${showBytes(key, { hex: false })} @${seq}: ${problem.message}` })
        }
        if (seq > out.maxSequence) out.maxSequence = seq
        if (seq < out.minSequence) out.minSequence = seq
        if (floor > 0) {
          const cover = expect!.rangeTombstones!.nextCoveringSequence(key, seq)
          if (cover <= floor) report('floor', { file: name, offset: handle.offset, message: `data block ${i}: ${showBytes(key, { hex: false })} @${seq} is covered by range tombstone @${cover}, below the table's range-delete floor ${floor}` })
        }
        entry.key = key
        entry.sequence = seq
        entry.kind = kind
        entry.value = it.value()
        yield entry
      }
      if (index !== undefined && n > 0) {
        it.seekToLast()
        if (it.valid() && (Buffer.compare(it.key(), index[i].lastKey) !== 0 || it.sequence() !== index[i].sequence)) {
          report('index-key', {
            file: name,
            offset: handle.offset,
            message: `data block ${i} ends with ${showBytes(it.key(), { hex: false })} @${it.sequence()}, its index entry says ${showBytes(index[i].lastKey, { hex: false })} @${index[i].sequence}`,
          })
        }
      }
    }
    attachScannedLoss(Infinity)
    for (const [n, refs] of out.blobFilesMissing) {
      out.problems.push({ file: name, message: `${refs === 1 ? '1 entry references a value' : `${refs} entries reference values`} in ${blobFileName(n)}, which is missing` })
    }
    if (last.isSet) out.largest = { key: Buffer.from(last.view()), sequence: lastSeq }
    for (const [kind, n] of counts) {
      if (n > MAX_SAME_FINDINGS) out.problems.push({ file: name, message: `${n - MAX_SAME_FINDINGS} more problem(s) like the above (${kindLabel(kind)})` })
    }

    // Totals against the footer and the manifest (only meaningful when nothing was lost).
    const complete = out.lostBlocks.length === 0 && out.outOfOrder === 0
    if (footer !== undefined && complete && footer.entryCount !== out.entries) {
      out.problems.push({ file: name, offset: tf.footerOffset(footer), message: `the footer counts ${footer.entryCount} entries, the blocks hold ${out.entries}` })
    }
    if (expect !== undefined) {
      const m = expect.meta
      if (complete) {
        if (m.entryCount !== out.entries) out.problems.push({ file: name, message: `holds ${out.entries} entries, the manifest says ${m.entryCount}` })
        if (m.deleteCount !== out.deletes) out.problems.push({ file: name, message: `holds ${out.deletes} deletes, the manifest says ${m.deleteCount}` })
        if (out.smallest !== undefined && (!out.smallest.key.equals(m.smallestKey) || out.smallest.sequence !== m.smallestSeq)) {
          out.problems.push({ file: name, message: `smallest entry is ${showBytes(out.smallest.key, { hex: false })} @${out.smallest.sequence}, the manifest says ${showBytes(m.smallestKey, { hex: false })} @${m.smallestSeq}` })
        }
        if (out.largest !== undefined && (!out.largest.key.equals(m.largestKey) || out.largest.sequence !== m.largestSeq)) {
          out.problems.push({ file: name, message: `largest entry is ${showBytes(out.largest.key, { hex: false })} @${out.largest.sequence}, the manifest says ${showBytes(m.largestKey, { hex: false })} @${m.largestSeq}` })
        }
      }
      if (complete && expect.ignoreBlobFiles !== true) {
        const referenced = [...out.blobReferences.keys()].sort((a, b) => a - b)
        const recorded = m.blobFiles ?? []
        if (referenced.join() !== recorded.join()) {
          const list = (l: readonly number[]): string => (l.length === 0 ? 'none' : l.map(blobFileName).join(', '))
          out.problems.push({ file: name, message: `references values in blob files ${list(referenced)}, the manifest records ${list(recorded)} for it` })
        }
      }
      if (m.minSeq !== undefined && out.minSequence < m.minSeq) {
        out.problems.push({ file: name, message: `holds sequence ${out.minSequence}, below the smallest sequence ${m.minSeq} the manifest records for it (a range tombstone could leave the manifest while covering it)` })
      }
      if (out.maxSequence > expect.lastSequence) {
        out.problems.push({ file: name, message: `holds sequence ${out.maxSequence}, above the manifest's last sequence ${expect.lastSequence}` })
      }
    }
  } finally {
    tf.close()
  }
}

/** Runs `tableEntries` to the end: the inspection alone. */
export function inspectTable(fs: FileSystem, dir: string, number: number, expect?: TableExpectation, blobs?: BlobCatalog): TableInspection {
  const out = newInspection(number)
  for (const _ of tableEntries(fs, dir, out, expect, blobs)) {
    // Only the checks are wanted.
  }
  return out
}

/**
 * Checks the value of a put of `kind`: the expiry time of an expiring kind
 * (it must read), the blob reference of a blob kind (checkBlobReference,
 * counted in `out`). Returns the problem, if any.
 */
function checkValue(kind: number, value: Buffer, blobs: BlobCatalog | undefined, ref: BlobReference, out: TableInspection): { kind: string; message: string } | undefined {
  if (isExpiringKind(kind)) {
    const x = readExpiry(value)
    if ('problem' in x) return { kind: 'expiry', message: x.problem }
  }
  if (!isBlobKind(kind)) return undefined
  out.blobEntries++
  return checkBlobReference(payloadOf(kind, value), blobs, ref, out)
}

function kindLabel(kind: string): string {
  return (
    {
      block: 'damaged data blocks',
      order: 'entries out of order',
      filter: 'keys missing from the filter',
      point: 'keys missing from the point index',
      'index-key': 'index keys not matching their block',
      'blob-ref': 'bad blob references',
      expiry: 'bad expiry times',
      floor: 'entries covered by range tombstones below the range-delete floor',
    }[
      kind
    ] ?? kind
  )
}

function lostBlock(i: number, handle: BlockHandle, index: IndexEntry[] | undefined, last: KeyCopy): LostBlock {
  return {
    index: index !== undefined ? i : undefined,
    offset: handle.offset,
    end: handle.offset + handle.size + BLOCK_TRAILER_BYTES,
    after: last.isSet ? Buffer.from(last.view()) : undefined,
    upTo: index !== undefined ? index[i].lastKey : undefined,
  }
}

/**
 * Checks that the index's blocks lie back to back from offset 0 up to the
 * filter block, and that its keys increase; returns the entries, or undefined
 * (after reporting) when they cannot be trusted to find the blocks.
 */
function checkIndexLayout(entries: IndexEntry[], footer: DecodedFooter, name: string, out: TableInspection): IndexEntry[] | undefined {
  let expected = 0
  let ok = true
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]
    if (e.handle.offset !== expected) {
      out.problems.push({ file: name, offset: footer.index.offset, message: `index block: data block ${i} starts at ${e.handle.offset}, the previous one ends at ${expected}` })
      ok = false
    }
    if (i > 0 && compareInternalKeys(e.lastKey, e.sequence, entries[i - 1].lastKey, entries[i - 1].sequence) <= 0) {
      out.problems.push({ file: name, offset: footer.index.offset, message: `index block: key of entry ${i} does not sort after entry ${i - 1}` })
    }
    expected = e.handle.offset + e.handle.size + BLOCK_TRAILER_BYTES
  }
  if (expected !== footer.filter.offset) {
    out.problems.push({ file: name, offset: footer.index.offset, message: `index block: the data blocks end at ${expected}, the filter block starts at ${footer.filter.offset}` })
  }
  return ok ? entries : undefined
}

/** Whether probing the point index for `hash` meets a slot naming `block` (as a point read would). */
function pointIndexNames(pi: PointIndex, hash: number, block: number): boolean {
  const fp = pi.fingerprint(hash)
  for (let s = pi.probe(pi.home(hash), fp); s >= 0; s = pi.probe(pi.next(s), fp)) {
    if (pi.blockAt(s) === block) return true
  }
  return false
}
