/**
 * `strata dump <file>`: prints a table (footer and properties, index, data
 * blocks and their entries), a blob file (every record), a WAL (every record
 * and its entries) or a manifest (every edit), as text or one JSON document (docs/cli.md, "strata
 * dump"). Damage does not stop it: what cannot be read is reported where it
 * lies and the rest is printed.
 */
import * as path from 'node:path'
import { initChecksum } from '../../base/checksum.js'
import { KIND_BLOB, KIND_DELETE } from '../../base/entry.js'
import { blobFileName, parseFileName, tableFileName } from '../../base/file-names.js'
import { BLOB_FOOTER_BYTES, BLOB_HEADER_BYTES, BLOB_MAGIC } from '../../blob/blob-format.js'
import { decodeBlobReference, type BlobReference } from '../../blob/blob-reference.js'
import type { BlobFileMeta } from '../../manifest/blob-file-meta.js'
import type { TableVersionEdit } from '../../manifest/table-version-edit.js'
import { BlockIterator } from '../../sstable/block-iterator.js'
import { BLOCK_TRAILER_BYTES, TABLE_MAGIC_HI, TABLE_MAGIC_LO, type BlockHandle, type DecodedFooter } from '../../sstable/table-format.js'
import { readU32 } from '../../base/coding.js'
import type { FileSystem } from '../../vfs/file-system.js'
import { nodeFileSystem } from '../../vfs/node-file-system.js'
import { intactRecordLength } from '../../wal/record-framing.js'
import { KIND_NOOP } from '../../wal/wal-record.js'
import { TableFile, decodeIndex, isMissing, kindName, lenientDataEnd, replayManifest, scanDataBlocks, walkBlobFile, type IndexEntry } from './file-inspector.js'
import { hex32 } from './table-inspection.js'
import {
  EXIT_OK,
  EXIT_PROBLEMS,
  UsageError,
  bytes,
  count,
  findingOf,
  inBounds,
  jsonBytes,
  plural,
  showBytes,
  showFinding,
  type BytesFormat,
  type Finding,
  type KeyBounds,
  type Out,
} from './output.js'
import { readWalContents, walDamageFinding } from './wal-inspection.js'

export type DumpType = 'table' | 'wal' | 'manifest' | 'blob'

export interface DumpOptions extends KeyBounds, BytesFormat {
  keysOnly: boolean
  json: boolean
  /** The file's kind, when its name does not tell. */
  type?: DumpType
}

/** Dumps `file`; returns the exit code (EXIT_PROBLEMS when part of it could not be read). */
export async function runDump(file: string, options: DumpOptions, out: Out, fs: FileSystem = nodeFileSystem): Promise<number> {
  let size: number
  try {
    const st = fs.stat(file)
    if (!st.isFile) throw new UsageError(`${file} is not a file`)
    size = st.size
  } catch (err) {
    if (err instanceof UsageError) throw err
    throw new UsageError(isMissing(err) ? `${file} does not exist` : `cannot stat ${file}: ${(err as Error).message}`)
  }
  await initChecksum()
  const type = options.type ?? typeOf(fs, file, size)
  if (type === 'manifest' && (options.from !== undefined || options.to !== undefined)) {
    throw new UsageError('--from and --to apply to tables, blob files and WALs, not to a manifest')
  }
  const d = new Dumper(options, out)
  if (type === 'table') await d.table(fs, file)
  else if (type === 'blob') await d.blob(fs, file)
  else if (type === 'wal') await d.wal(fs, file)
  else await d.manifest(fs, file)
  await out.flush()
  return d.problems.length > 0 ? EXIT_PROBLEMS : EXIT_OK
}

/**
 * The kind of file from its name, else from its bytes (a blob file starts with
 * its magic; a table ends with the magic; a log starts with a framed record).
 */
function typeOf(fs: FileSystem, file: string, size: number): DumpType {
  const f = parseFileName(path.basename(file))
  if (f?.kind === 'table') return 'table'
  if (f?.kind === 'blob') return 'blob'
  if (f?.kind === 'wal') return 'wal'
  if (f?.kind === 'manifest') return 'manifest'
  const buf = fs.readFile(file)
  if (size >= BLOB_MAGIC.length && BLOB_MAGIC.equals(buf.subarray(0, BLOB_MAGIC.length))) return 'blob'
  if (size >= 8 && readU32(buf, size - 8) === TABLE_MAGIC_LO && readU32(buf, size - 4) === TABLE_MAGIC_HI) return 'table'
  if (intactRecordLength(buf, 0) > 0) {
    // A WAL payload starts with its version byte (1 or 2), then the first sequence; an edit starts with a tag (1..5).
    throw new UsageError(`cannot tell whether ${file} is a WAL or a manifest from its name: pass --type wal or --type manifest`)
  }
  throw new UsageError(`cannot tell what ${file} is (not named NNNNNN.sst, NNNNNN.blob, NNNNNN.log or MANIFEST-NNNNNN): pass --type`)
}

interface JsonEntry {
  key: string
  keyEncoding: string
  sequence: number
  kind: 'put' | 'delete' | 'blob' | 'noop' | `kind ${number}`
  value?: string
  valueEncoding?: string
  /** Kind 'blob': where the value is (the entry's value bytes are this reference). */
  blobFile?: string
  blobOffset?: number
  blobLength?: number
  blobChecksum?: number
}

class Dumper {
  readonly problems: Finding[] = []
  private readonly format: BytesFormat

  constructor(
    private readonly o: DumpOptions,
    private readonly out: Out,
  ) {
    this.format = { hex: o.hex }
  }

  private show(b: Uint8Array): string {
    return showBytes(b, this.format)
  }

  /** The blob reference an entry of kind 3 holds as its value, or undefined when it does not decode. */
  private reference(value: Uint8Array): BlobReference | undefined {
    try {
      return decodeBlobReference(value, '')
    } catch {
      return undefined
    }
  }

  private entryText(key: Uint8Array, seq: number, kind: number, value: Uint8Array | null): string {
    if (kind === KIND_NOOP) return `  @${seq} noop`
    const k = kindName(kind)
    let v = ''
    if (kind !== KIND_DELETE && !this.o.keysOnly && value !== null) {
      if (kind === KIND_BLOB) {
        const r = this.reference(value)
        v = r === undefined ? ` malformed reference 0x${Buffer.from(value).toString('hex')}` : ` ${blobFileName(r.fileNumber)} offset ${r.valueOffset}, ${count(r.valueLength)} bytes, checksum 0x${hex32(r.checksum)}`
      } else {
        v = ` ${this.show(value)}`
      }
    }
    return `  ${this.show(key)} @${seq} ${k}${v}`
  }

  private entryJson(key: Uint8Array, seq: number, kind: number, value: Uint8Array | null): JsonEntry {
    const k = jsonBytes(key, this.format)
    const e: JsonEntry = { key: k.text, keyEncoding: k.encoding, sequence: seq, kind: kind === KIND_NOOP ? 'noop' : kindName(kind) }
    if (kind !== KIND_DELETE && !this.o.keysOnly && value !== null) {
      const r = kind === KIND_BLOB ? this.reference(value) : undefined
      if (r !== undefined) {
        e.blobFile = blobFileName(r.fileNumber)
        e.blobOffset = r.valueOffset
        e.blobLength = r.valueLength
        e.blobChecksum = r.checksum
      } else {
        // A put's value; the raw bytes of a blob reference that does not decode.
        const v = jsonBytes(value, this.format)
        e.value = v.text
        e.valueEncoding = v.encoding
      }
    }
    return e
  }

  private keyJson(key: Uint8Array): { key: string; keyEncoding: string } {
    const k = jsonBytes(key, this.format)
    return { key: k.text, keyEncoding: k.encoding }
  }

  private problem(f: Finding): Promise<void> | undefined {
    this.problems.push(f)
    return this.o.json ? undefined : this.out.line(`error: ${showFinding(f)}`)
  }

  private async jsonTail(extra: Record<string, unknown> = {}): Promise<void> {
    let tail = ''
    for (const [k, v] of Object.entries(extra)) tail += `,${JSON.stringify(k)}:${JSON.stringify(v)}`
    await this.out.line(`${tail},"problems":${JSON.stringify(this.problems)}}`)
  }

  // ---- tables ------------------------------------------------------------------------

  async table(fs: FileSystem, file: string): Promise<void> {
    const tf = TableFile.open(fs, file)
    const name = tf.name
    const json = this.o.json
    try {
      let footer: DecodedFooter | undefined
      try {
        footer = tf.footer()
      } catch (err) {
        const f = findingOf(err, name, tf.footerOffset())
        await this.problem({ ...f, message: `footer: ${f.message}` })
      }
      let index: IndexEntry[] | undefined
      if (footer !== undefined) {
        try {
          const decoded = decodeIndex(tf.readBlock(footer.index, footer.formatVersion), name, footer.dataEnd)
          if (decoded.problem !== undefined) await this.problem({ ...decoded.problem, offset: footer.index.offset, message: `index block: ${decoded.problem.message}` })
          else index = decoded.entries
        } catch (err) {
          const f = findingOf(err, name, footer.index.offset)
          await this.problem({ ...f, message: `index block: ${f.message}` })
        }
      }
      // Without an index the data blocks are found by scanning the file.
      let blocks: Array<BlockHandle & { contents?: Buffer }>
      let formatVersion = footer?.formatVersion
      if (index !== undefined) {
        blocks = index.map((e) => e.handle)
      } else {
        const buf = tf.readAll()
        const lenient = footer === undefined ? lenientDataEnd(buf) : undefined
        const scan = scanDataBlocks(buf, footer?.filter.offset ?? lenient?.dataEnd, formatVersion ?? lenient?.formatVersion)
        formatVersion ??= scan.formatVersion
        blocks = scan.blocks
        for (const l of scan.lost) await this.problem({ file: name, offset: l.offset, message: `no verifiable data block in bytes ${l.offset}..${l.end}` })
        if (!json) await this.out.line(`(data blocks found by scanning the file: ${plural(blocks.length, 'block')})`)
      }
      const dataBytes = blocks.reduce((n, b) => n + b.size + BLOCK_TRAILER_BYTES, 0)
      const readBlock = (i: number): Buffer => blocks[i].contents ?? tf.readBlock(blocks[i], formatVersion!)
      // Smallest entry: the first entry of block 0; largest: the last index key.
      let smallest: { key: Buffer; sequence: number } | undefined
      if (blocks.length > 0) {
        try {
          const it = new BlockIterator(readBlock(0), name)
          it.seekToFirst()
          if (it.valid()) smallest = { key: Buffer.from(it.key()), sequence: it.sequence() }
        } catch {
          // Reported with the block below.
        }
      }
      const last = index?.[index.length - 1]
      const largest = last !== undefined ? { key: last.lastKey, sequence: last.sequence } : undefined
      const handleJson = (h: BlockHandle | undefined): { offset: number; size: number } | null => (h === undefined ? null : { offset: h.offset, size: h.size })

      if (json) {
        const head = {
          file: name,
          type: 'table',
          fileBytes: tf.fileBytes,
          formatVersion: formatVersion ?? null,
          footer:
            footer === undefined
              ? null
              : { offset: footer.dataEnd, bytes: tf.fileBytes - footer.dataEnd, entryCount: footer.entryCount, index: handleJson(footer.index), filter: handleJson(footer.filter), pointIndex: handleJson(footer.pointIndex) },
          dataBlocks: blocks.length,
          dataBytes,
          smallest: smallest === undefined ? null : { ...this.keyJson(smallest.key), sequence: smallest.sequence },
          largest: largest === undefined ? null : { ...this.keyJson(largest.key), sequence: largest.sequence },
          index: index === undefined ? null : index.map((e, i) => ({ block: i, ...this.keyJson(e.lastKey), sequence: e.sequence, offset: e.handle.offset, size: e.handle.size })),
        }
        const text = JSON.stringify(head)
        await this.out.write(`${text.slice(0, -1)},"blocks":[`)
      } else {
        await this.out.line(`${name}: table, ${count(tf.fileBytes)} bytes, format version ${formatVersion ?? 'unknown'}`)
        if (footer !== undefined) await this.out.line(`  entries      ${count(footer.entryCount)} (footer)`)
        await this.out.line(`  data blocks  ${count(blocks.length)}, ${count(dataBytes)} bytes with trailers`)
        if (footer !== undefined) {
          await this.out.line(`  filter       offset ${footer.filter.offset}, ${count(footer.filter.size)} bytes`)
          await this.out.line(`  point index  ${footer.pointIndex === undefined ? 'none' : `offset ${footer.pointIndex.offset}, ${count(footer.pointIndex.size)} bytes`}`)
          await this.out.line(`  index        offset ${footer.index.offset}, ${count(footer.index.size)} bytes${index !== undefined ? `, ${plural(index.length, 'entry', 'entries')}` : ''}`)
          await this.out.line(`  footer       offset ${footer.dataEnd}, ${tf.fileBytes - footer.dataEnd} bytes`)
        }
        if (smallest !== undefined) await this.out.line(`  smallest     ${this.show(smallest.key)} @${smallest.sequence}`)
        if (largest !== undefined) await this.out.line(`  largest      ${this.show(largest.key)} @${largest.sequence}`)
        if (index !== undefined) {
          await this.out.line()
          await this.out.line('index:')
          for (let i = 0; i < index.length; i++) {
            const e = index[i]
            await this.out.line(`  block ${i}  offset ${e.handle.offset}, ${count(e.handle.size)} bytes, last key ${this.show(e.lastKey)} @${e.sequence}`)
          }
        }
      }

      // Data blocks: those that may hold keys in [from, to] (all without bounds).
      let shown = 0
      let entriesShown = 0
      for (let i = 0; i < blocks.length; i++) {
        if (index !== undefined && !this.blockMayHold(index, i)) continue
        const h = blocks[i]
        let contents: Buffer
        try {
          contents = readBlock(i)
        } catch (err) {
          const f = findingOf(err, name, h.offset)
          await this.problem({ ...f, message: `data block ${i}: ${f.message}` })
          continue
        }
        const lines: string[] = []
        const entries: JsonEntry[] = []
        let n = 0
        try {
          const it = new BlockIterator(contents, name)
          for (it.seekToFirst(); it.valid(); it.next()) {
            n++
            if (!inBounds(it.key(), this.o)) continue
            const value = it.kind() === KIND_DELETE ? null : it.value()
            if (it.kind() === KIND_BLOB && this.reference(it.value()) === undefined) {
              await this.problem({ file: name, offset: h.offset, message: `data block ${i}: ${showBytes(it.key(), { hex: false })} @${it.sequence()}: malformed blob reference` })
            }
            if (json) entries.push(this.entryJson(it.key(), it.sequence(), it.kind(), value))
            else lines.push(this.entryText(it.key(), it.sequence(), it.kind(), value))
          }
        } catch (err) {
          const f = findingOf(err, name, h.offset)
          await this.problem({ ...f, message: `data block ${i} does not decode: ${f.message}` })
        }
        const matched = json ? entries.length : lines.length
        if (matched === 0 && (this.o.from !== undefined || this.o.to !== undefined)) continue
        entriesShown += matched
        if (json) {
          await this.out.write(`${shown > 0 ? ',' : ''}${JSON.stringify({ block: i, offset: h.offset, size: h.size, entryCount: n, entries })}`)
        } else {
          await this.out.line()
          await this.out.line(`block ${i}  offset ${h.offset}, ${count(h.size)} bytes (+${BLOCK_TRAILER_BYTES} trailer), ${plural(n, 'entry', 'entries')}`)
          for (const l of lines) await this.out.line(l)
        }
        shown++
      }
      if (json) {
        await this.out.write(']')
        await this.jsonTail({ entriesShown })
      } else {
        await this.out.line()
        await this.out.line(`${plural(entriesShown, 'entry', 'entries')} shown from ${plural(shown, 'block')}${this.problems.length > 0 ? `; ${plural(this.problems.length, 'problem')}` : ''}`)
      }
    } finally {
      tf.close()
    }
  }

  /** Whether data block i may hold keys in [from, to]: its keys lie between the previous block's last key and its own. */
  private blockMayHold(index: IndexEntry[], i: number): boolean {
    if (this.o.from !== undefined && Buffer.compare(index[i].lastKey, this.o.from) < 0) return false
    if (this.o.to !== undefined && i > 0 && Buffer.compare(index[i - 1].lastKey, this.o.to) > 0) return false
    return true
  }

  // ---- blob files ----------------------------------------------------------------------

  async blob(fs: FileSystem, file: string): Promise<void> {
    const name = path.basename(file)
    const buf = fs.readFile(file)
    const walk = walkBlobFile(buf, name)
    const json = this.o.json
    const ranged = this.o.from !== undefined || this.o.to !== undefined
    const valueBytes = walk.records.reduce((n, r) => n + r.value.length, 0)
    const footerJson = walk.footer === undefined ? null : { offset: walk.footerOffset, bytes: BLOB_FOOTER_BYTES, recordCount: walk.footer.recordCount, valueBytes: walk.footer.valueBytes }
    // Header and footer problems first (as a table's footer), then the records with the damage where it lies.
    const inRecords = (f: { offset?: number }): boolean => f.offset !== undefined && f.offset >= BLOB_HEADER_BYTES && f.offset < walk.footerOffset
    if (json) {
      await this.out.write(`${JSON.stringify({ file: name, type: 'blob', fileBytes: buf.length, formatVersion: walk.version ?? null, footer: footerJson }).slice(0, -1)},"records":[`)
      for (const p of walk.problems) if (!inRecords(p)) await this.problem(p)
    } else {
      await this.out.line(`${name}: blob file, ${count(buf.length)} bytes, format version ${walk.version ?? 'unknown'}`)
      if (walk.footer !== undefined) {
        await this.out.line(`  records      ${count(walk.footer.recordCount)}, ${count(walk.footer.valueBytes)} value bytes (footer)`)
        await this.out.line(`  footer       offset ${walk.footerOffset}, ${BLOB_FOOTER_BYTES} bytes`)
      }
      for (const p of walk.problems) if (!inRecords(p)) await this.problem(p)
      await this.out.line()
      await this.out.line('records:')
    }
    const problemsAt = walk.problems.filter(inRecords)
    let p = 0
    let shown = 0
    for (const r of walk.records) {
      while (p < problemsAt.length && problemsAt[p].offset! < r.recordOffset) await this.problem(problemsAt[p++])
      if (!inBounds(r.key, this.o)) continue
      if (json) {
        const k = jsonBytes(r.key, this.format)
        const rec: Record<string, unknown> = { offset: r.recordOffset, valueOffset: r.valueOffset, key: k.text, keyEncoding: k.encoding, valueLength: r.value.length, checksum: r.checksum, checksumOk: r.valueOk }
        if (!this.o.keysOnly) {
          const v = jsonBytes(r.value, this.format)
          rec.value = v.text
          rec.valueEncoding = v.encoding
        }
        await this.out.write(`${shown > 0 ? ',' : ''}${JSON.stringify(rec)}`)
      } else {
        const value = this.o.keysOnly ? '' : ` ${this.show(r.value)}`
        await this.out.line(
          `  record at ${r.recordOffset}: ${this.show(r.key)} value offset ${r.valueOffset}, ${count(r.value.length)} bytes, checksum 0x${hex32(r.checksum)}${r.valueOk ? '' : ' (does not match the value)'}${value}`,
        )
      }
      shown++
    }
    while (p < problemsAt.length) await this.problem(problemsAt[p++])
    const summary = { recordCount: walk.records.length, valueBytes, recordsShown: shown }
    if (json) {
      await this.out.write(']')
      await this.jsonTail(summary)
    } else {
      await this.out.line()
      await this.out.line(
        `${plural(walk.records.length, 'record')}, ${count(valueBytes)} value bytes${ranged ? ` (${plural(shown, 'record')} shown)` : ''}${this.problems.length > 0 ? `; ${plural(this.problems.length, 'problem')}` : ''}`,
      )
    }
  }

  // ---- WALs ----------------------------------------------------------------------------

  async wal(fs: FileSystem, file: string): Promise<void> {
    const name = path.basename(file)
    const buf = fs.readFile(file)
    const contents = readWalContents(buf, name)
    const json = this.o.json
    const ranged = this.o.from !== undefined || this.o.to !== undefined
    if (json) await this.out.write(`${JSON.stringify({ file: name, type: 'wal', fileBytes: buf.length }).slice(0, -1)},"records":[`)
    else await this.out.line(`${name}: WAL, ${count(buf.length)} bytes`)
    // Records and damaged ranges in file order.
    const items = [...contents.records.map((r) => ({ at: r.offset, r, d: undefined })), ...contents.damage.map((d) => ({ at: d.offset, r: undefined, d }))].sort((a, b) => a.at - b.at)
    let entries = 0
    let shown = 0
    let first: number | undefined
    let lastSeq: number | undefined
    const warnings: Finding[] = []
    for (const item of items) {
      if (item.d !== undefined) {
        const { severity, finding } = walDamageFinding(item.d, name, true)
        if (severity === 'error') await this.problem(finding)
        else {
          warnings.push(finding)
          if (!json) await this.out.line(`warning: ${showFinding(finding)}`)
        }
        continue
      }
      const r = item.r!
      if (r.problem !== undefined) {
        await this.problem(r.problem)
        continue
      }
      const list = r.entries!.filter((e) => inBounds(e.key, this.o))
      entries += r.count
      if (r.count > 0) {
        first ??= r.firstSequence
        lastSeq = r.firstSequence + r.count - 1
      }
      if (ranged && list.length === 0) continue
      const range = r.count === 0 ? 'no entries' : `sequences ${r.firstSequence}..${r.firstSequence + r.count - 1} (${plural(r.count, 'entry', 'entries')})`
      // The writes (batches) of the record, as committed: [first, last] sequence each.
      const batches: Array<[number, number]> = []
      let batchStart = r.firstSequence
      for (const e of r.entries!) {
        if (!e.batchEnd) continue
        batches.push([batchStart, e.sequence])
        batchStart = e.sequence + 1
      }
      if (json) {
        const rec = {
          offset: r.offset,
          bytes: r.bytes,
          version: r.version,
          epoch: r.epoch,
          firstSequence: r.firstSequence,
          entryCount: r.count,
          batches,
          entries: list.map((e) => ({ ...this.entryJson(e.key, e.sequence, e.kind, e.value), batchEnd: e.batchEnd })),
        }
        await this.out.write(`${shown > 0 ? ',' : ''}${JSON.stringify(rec)}`)
      } else {
        await this.out.line(`record at offset ${r.offset}: ${count(r.bytes)} bytes, version ${r.version}${r.version >= 3 ? `, epoch ${r.epoch}` : ''}, ${range}, ${plural(batches.length, 'batch', 'batches')}`)
        for (const [lo, hi] of batches) {
          const inBatch = list.filter((e) => e.sequence >= lo && e.sequence <= hi)
          if (inBatch.length === 0) continue
          await this.out.line(`  batch ${lo}..${hi} (${plural(hi - lo + 1, 'op')})`)
          for (const e of inBatch) await this.out.line(`  ${this.entryText(e.key, e.sequence, e.kind, e.value)}`)
        }
      }
      shown++
    }
    const summary = { recordCount: contents.records.length, entryCount: entries, firstSequence: first ?? null, lastSequence: lastSeq ?? null }
    if (json) {
      await this.out.write(']')
      await this.jsonTail({ ...summary, warnings })
    } else {
      const seqs = first === undefined ? '' : `, sequences ${first}..${lastSeq}`
      await this.out.line(`${plural(summary.recordCount, 'record')}, ${plural(entries, 'entry', 'entries')}${seqs}${ranged ? ` (${plural(shown, 'record')} shown)` : ''}`)
    }
  }

  // ---- manifests ---------------------------------------------------------------------

  async manifest(fs: FileSystem, file: string): Promise<void> {
    const name = path.basename(file)
    const buf = fs.readFile(file)
    const replay = replayManifest(buf, name)
    const json = this.o.json
    if (json) await this.out.write(`${JSON.stringify({ file: name, type: 'manifest', fileBytes: buf.length }).slice(0, -1)},"edits":[`)
    else await this.out.line(`${name}: manifest, ${count(buf.length)} bytes, ${plural(replay.walk.records.length, 'record')}`)
    const items = [...replay.edits.map((e) => ({ at: e.offset, e, d: undefined })), ...replay.walk.damage.map((d) => ({ at: d.offset, e: undefined, d }))].sort((a, b) => a.at - b.at)
    let shown = 0
    for (const item of items) {
      if (item.d !== undefined) {
        const d = item.d
        await this.problem({ file: name, offset: d.offset, message: `${d.kind === 'torn' ? 'torn last record' : 'damaged record(s)'}: bytes ${d.offset}..${d.end} (${plural(d.end - d.offset, 'byte')})` })
        continue
      }
      const e = item.e!
      if (e.problem !== undefined) {
        await this.problem(e.problem)
        continue
      }
      const edit = e.edit!
      if (json) {
        await this.out.write(`${shown > 0 ? ',' : ''}${JSON.stringify({ offset: e.offset, bytes: e.bytes, ...this.editJson(edit) })}`)
      } else {
        const counters = [
          edit.logNumber !== undefined ? `log number ${edit.logNumber}` : '',
          edit.nextFileNumber !== undefined ? `next file ${edit.nextFileNumber}` : '',
          edit.lastSequence !== undefined ? `last sequence ${edit.lastSequence}` : '',
        ].filter((s) => s !== '')
        await this.out.line(`edit at offset ${e.offset} (${count(e.bytes)} bytes)${counters.length > 0 ? `: ${counters.join(', ')}` : ''}`)
        for (const d of edit.deleted) await this.out.line(`  delete L${d.level} ${tableFileName(d.number)}`)
        for (const { level, table: t } of edit.added) {
          const blobs = t.blobFiles !== undefined && t.blobFiles.length > 0 ? `; blob files ${t.blobFiles.map(blobFileName).join(', ')}` : ''
          await this.out.line(
            `  add    L${level} ${tableFileName(t.number)}: ${count(t.fileBytes)} bytes, ${plural(t.entryCount, 'entry', 'entries')} (${count(t.deleteCount)} deletes), ` +
              `${this.show(t.smallestKey)} @${t.smallestSeq} .. ${this.show(t.largestKey)} @${t.largestSeq}${blobs}`,
          )
        }
        for (const b of edit.blobsAdded ?? []) {
          await this.out.line(`  blob   add ${blobFileName(b.number)}: ${count(b.fileBytes)} bytes, ${plural(b.valueCount, 'value')} (${count(b.valueBytes)} bytes)`)
        }
        for (const g of edit.blobGarbage ?? []) {
          await this.out.line(`  blob   garbage ${blobFileName(g.number)}: ${plural(g.count, 'value')} (${count(g.bytes)} bytes)`)
        }
      }
      shown++
    }
    for (const p of replay.problems) await this.problem(p)
    const levels = new Map<number, number>()
    for (const p of replay.tables.values()) levels.set(p.level, (levels.get(p.level) ?? 0) + 1)
    const state = {
      logNumber: replay.logNumber,
      nextFileNumber: replay.nextFileNumber,
      lastSequence: replay.lastSequence,
      levels: [...levels.entries()].sort(([a], [b]) => a - b).map(([level, tables]) => ({ level, tables })),
      tables: [...replay.tables.entries()].sort(([a], [b]) => a - b).map(([number, p]) => ({ file: tableFileName(number), level: p.level })),
      blobFiles: [...replay.blobs.values()].sort((a, b) => a.number - b.number).map((b) => blobMetaJson(b)),
    }
    if (json) {
      await this.out.write(']')
      await this.jsonTail({ state })
    } else {
      const perLevel = state.levels.map((l) => `L${l.level}: ${l.tables}`).join(', ')
      const blobs = state.blobFiles.length > 0 ? `, ${plural(state.blobFiles.length, 'blob file')}` : ''
      await this.out.line(
        `state after ${plural(shown, 'edit')}: ${plural(replay.tables.size, 'table')}${perLevel === '' ? '' : ` (${perLevel})`}${blobs}, log number ${state.logNumber}, next file ${state.nextFileNumber}, last sequence ${state.lastSequence}`,
      )
      for (const b of state.blobFiles) {
        await this.out.line(
          `  blob file ${b.file}: ${count(b.fileBytes)} bytes, ${plural(b.valueCount, 'value')} (${count(b.valueBytes)} bytes), garbage ${plural(b.garbageCount, 'value')} (${count(b.garbageBytes)} bytes)`,
        )
      }
    }
  }

  private editJson(edit: TableVersionEdit): Record<string, unknown> {
    return {
      logNumber: edit.logNumber ?? null,
      nextFileNumber: edit.nextFileNumber ?? null,
      lastSequence: edit.lastSequence ?? null,
      deleted: edit.deleted.map((d) => ({ level: d.level, file: tableFileName(d.number) })),
      added: edit.added.map(({ level, table: t }) => ({
        level,
        file: tableFileName(t.number),
        fileBytes: t.fileBytes,
        entryCount: t.entryCount,
        deleteCount: t.deleteCount,
        smallest: { ...this.keyJson(t.smallestKey), sequence: t.smallestSeq },
        largest: { ...this.keyJson(t.largestKey), sequence: t.largestSeq },
        blobFiles: (t.blobFiles ?? []).map(blobFileName),
      })),
      blobsAdded: (edit.blobsAdded ?? []).map((b) => ({ file: blobFileName(b.number), fileBytes: b.fileBytes, valueCount: b.valueCount, valueBytes: b.valueBytes })),
      blobGarbage: (edit.blobGarbage ?? []).map((g) => ({ file: blobFileName(g.number), count: g.count, bytes: g.bytes })),
    }
  }
}

function blobMetaJson(b: BlobFileMeta): { file: string; fileBytes: number; valueCount: number; valueBytes: number; garbageCount: number; garbageBytes: number } {
  return { file: blobFileName(b.number), fileBytes: b.fileBytes, valueCount: b.valueCount, valueBytes: b.valueBytes, garbageCount: b.garbageCount, garbageBytes: b.garbageBytes }
}
