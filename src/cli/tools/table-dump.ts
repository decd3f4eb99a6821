/**
 * `strata dump` of a table (.sst): its footer and properties, the index
 * entries, and the data blocks with their entries (those in --from/--to),
 * as text or one JSON document, with how each data block is stored (LZ4 or
 * raw, stored and raw sizes) and the table's totals. A table whose footer or
 * index cannot be read has its data blocks found by scanning the file; a
 * block that cannot be read is reported where it lies and the rest is printed.
 */
import { KIND_DELETE, isExpiringKind } from '../../base/entry.js'
import { BlockIterator } from '../../sstable/block-iterator.js'
import { BLOCK_TRAILER_BYTES, COMPRESSION_LZ4, type BlockHandle, type DecodedFooter } from '../../sstable/table-format.js'
import type { FileSystem } from '../../vfs/file-system.js'
import { lenientDataEnd, scanDataBlocks } from './data-block-scan.js'
import type { Dumper, JsonEntry } from './dumper.js'
import { isBlobKind, payloadOf, readExpiry } from './entry-kinds.js'
import { compressionRatio, count, findingOf, inBounds, plural, showBytes, type KeyBounds } from './output.js'
import { TableFile, decodeIndex, type DataBlock, type IndexEntry } from './table-file.js'

export async function dumpTable(dumper: Dumper, fs: FileSystem, file: string): Promise<void> {
  const tf = TableFile.open(fs, file)
  const name = tf.name
  const json = dumper.o.json
  try {
    let footer: DecodedFooter | undefined
    try {
      footer = tf.footer()
    } catch (err) {
      const f = findingOf(err, name, tf.footerOffset())
      await dumper.problem({ ...f, message: `footer: ${f.message}` })
    }
    let index: IndexEntry[] | undefined
    if (footer !== undefined) {
      try {
        const decoded = decodeIndex(tf.readBlock(footer.index, footer.formatVersion), name, footer.dataEnd)
        if (decoded.problem !== undefined) await dumper.problem({ ...decoded.problem, offset: footer.index.offset, message: `index block: ${decoded.problem.message}` })
        else index = decoded.entries
      } catch (err) {
        const f = findingOf(err, name, footer.index.offset)
        await dumper.problem({ ...f, message: `index block: ${f.message}` })
      }
    }
    // Without an index the data blocks are found by scanning the file.
    let blocks: Array<BlockHandle & Partial<DataBlock>>
    let formatVersion = footer?.formatVersion
    if (index !== undefined) {
      blocks = index.map((e) => e.handle)
    } else {
      const buf = tf.readAll()
      const lenient = footer === undefined ? lenientDataEnd(buf) : undefined
      const scan = scanDataBlocks(buf, footer?.filter.offset ?? lenient?.dataEnd, formatVersion ?? lenient?.formatVersion)
      formatVersion ??= scan.formatVersion
      blocks = scan.blocks
      for (const l of scan.lost) await dumper.problem({ file: name, offset: l.offset, message: `no verifiable data block in bytes ${l.offset}..${l.end}${l.why !== undefined ? ` (its checksum matches, but ${l.why})` : ''}` })
      if (!json) await dumper.out.line(`(data blocks found by scanning the file: ${plural(blocks.length, 'block')})`)
    }
    const dataBytes = blocks.reduce((n, b) => n + b.size + BLOCK_TRAILER_BYTES, 0)
    const readBlock = (i: number): DataBlock => {
      const b = blocks[i]
      return b.contents !== undefined ? (b as DataBlock) : tf.readDataBlock(b, formatVersion!)
    }
    const stored = storedTotals(blocks.length, readBlock)
    // Smallest entry: the first entry of block 0; largest: the last index key.
    let smallest: { key: Buffer; sequence: number } | undefined
    if (blocks.length > 0) {
      try {
        const it = new BlockIterator(readBlock(0).contents, name)
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
        compressedBlocks: stored.compressedBlocks,
        storedDataBytes: stored.storedBytes,
        rawDataBytes: stored.rawBytes,
        compressionRatio: compressionRatio(stored.storedBytes, stored.rawBytes),
        smallest: smallest === undefined ? null : { ...dumper.keyJson(smallest.key), sequence: smallest.sequence },
        largest: largest === undefined ? null : { ...dumper.keyJson(largest.key), sequence: largest.sequence },
        index: index === undefined ? null : index.map((e, i) => ({ block: i, ...dumper.keyJson(e.lastKey), sequence: e.sequence, offset: e.handle.offset, size: e.handle.size })),
      }
      await dumper.jsonHead(head, 'blocks')
    } else {
      await dumper.out.line(`${name}: table, ${count(tf.fileBytes)} bytes, format version ${formatVersion ?? 'unknown'}`)
      if (footer !== undefined) await dumper.out.line(`  entries      ${count(footer.entryCount)} (footer)`)
      await dumper.out.line(`  data blocks  ${count(blocks.length)}, ${count(dataBytes)} bytes with trailers`)
      const ratio = compressionRatio(stored.storedBytes, stored.rawBytes)
      const unread = stored.unread > 0 ? `; ${plural(stored.unread, 'block')} unreadable, not counted` : ''
      await dumper.out.line(
        `  data bytes   ${count(stored.storedBytes)} stored, ${count(stored.rawBytes)} raw${ratio === null ? '' : ` (ratio ${ratio.toFixed(2)})`}, ${count(stored.compressedBlocks)} of ${plural(blocks.length - stored.unread, 'block')} LZ4-compressed${unread}`,
      )
      if (footer !== undefined) {
        await dumper.out.line(`  filter       offset ${footer.filter.offset}, ${count(footer.filter.size)} bytes`)
        await dumper.out.line(`  point index  ${footer.pointIndex === undefined ? 'none' : `offset ${footer.pointIndex.offset}, ${count(footer.pointIndex.size)} bytes`}`)
        await dumper.out.line(`  index        offset ${footer.index.offset}, ${count(footer.index.size)} bytes${index !== undefined ? `, ${plural(index.length, 'entry', 'entries')}` : ''}`)
        await dumper.out.line(`  footer       offset ${footer.dataEnd}, ${tf.fileBytes - footer.dataEnd} bytes`)
      }
      if (smallest !== undefined) await dumper.out.line(`  smallest     ${dumper.show(smallest.key)} @${smallest.sequence}`)
      if (largest !== undefined) await dumper.out.line(`  largest      ${dumper.show(largest.key)} @${largest.sequence}`)
      if (index !== undefined) {
        await dumper.out.line()
        await dumper.out.line('index:')
        for (let i = 0; i < index.length; i++) {
          const e = index[i]
          await dumper.out.line(`  block ${i}  offset ${e.handle.offset}, ${count(e.handle.size)} bytes, last key ${dumper.show(e.lastKey)} @${e.sequence}`)
        }
      }
    }

    // Data blocks: those that may hold keys in [from, to] (all without bounds).
    let shown = 0
    let entriesShown = 0
    for (let i = 0; i < blocks.length; i++) {
      if (index !== undefined && !blockMayHold(dumper.o, index, i)) continue
      const h = blocks[i]
      let block: DataBlock
      try {
        block = readBlock(i)
      } catch (err) {
        const f = findingOf(err, name, h.offset)
        await dumper.problem({ ...f, message: `data block ${i}: ${f.message}` })
        continue
      }
      const lines: string[] = []
      const entries: JsonEntry[] = []
      let n = 0
      try {
        const it = new BlockIterator(block.contents, name)
        for (it.seekToFirst(); it.valid(); it.next()) {
          n++
          if (!inBounds(it.key(), dumper.o)) continue
          const kind = it.kind()
          const value = kind === KIND_DELETE ? null : it.value()
          const bad = value === null ? undefined : entryProblem(dumper, kind, value)
          if (bad !== undefined) await dumper.problem({ file: name, offset: h.offset, message: `data block ${i}: ${showBytes(it.key(), { hex: false })} @${it.sequence()}: ${bad}` })
          if (json) entries.push(dumper.entryJson(it.key(), it.sequence(), it.kind(), value))
          else lines.push(dumper.entryText(it.key(), it.sequence(), it.kind(), value))
        }
      } catch (err) {
        const f = findingOf(err, name, h.offset)
        await dumper.problem({ ...f, message: `data block ${i} does not decode: ${f.message}` })
      }
      const matched = json ? entries.length : lines.length
      if (matched === 0 && dumper.ranged) continue
      entriesShown += matched
      if (json) {
        const compression = block.compression === COMPRESSION_LZ4 ? 'lz4' : 'none'
        await dumper.out.write(`${shown > 0 ? ',' : ''}${JSON.stringify({ block: i, offset: h.offset, size: h.size, compression, rawSize: block.contents.length, entryCount: n, entries })}`)
      } else {
        const compression = block.compression === COMPRESSION_LZ4 ? `lz4: ${count(h.size)} bytes stored, ${count(block.contents.length)} raw` : 'none'
        await dumper.out.line()
        await dumper.out.line(`block ${i}  offset ${h.offset}, ${count(h.size)} bytes (+${BLOCK_TRAILER_BYTES} trailer), ${plural(n, 'entry', 'entries')}, compression ${compression}`)
        for (const l of lines) await dumper.out.line(l)
      }
      shown++
    }
    if (json) {
      await dumper.out.write(']')
      await dumper.jsonTail({ entriesShown })
    } else {
      await dumper.out.line()
      await dumper.out.line(`${plural(entriesShown, 'entry', 'entries')} shown from ${plural(shown, 'block')}${dumper.problems.length > 0 ? `; ${plural(dumper.problems.length, 'problem')}` : ''}`)
    }
  } finally {
    tf.close()
  }
}

/**
 * The data blocks' stored bytes (trailers excluded) and raw bytes, and how
 * many are LZ4-compressed, over the blocks that read (`unread`: those that do
 * not, reported where the dump meets them).
 */
function storedTotals(blocks: number, readBlock: (i: number) => DataBlock): { compressedBlocks: number; storedBytes: number; rawBytes: number; unread: number } {
  const t = { compressedBlocks: 0, storedBytes: 0, rawBytes: 0, unread: 0 }
  for (let i = 0; i < blocks; i++) {
    let b: DataBlock
    try {
      b = readBlock(i)
    } catch {
      t.unread++
      continue
    }
    if (b.compression === COMPRESSION_LZ4) t.compressedBlocks++
    t.storedBytes += b.storedBytes
    t.rawBytes += b.contents.length
  }
  return t
}

/** Whether data block i may hold keys in [from, to]: its keys lie between the previous block's last key and its own. */
function blockMayHold(o: KeyBounds, index: IndexEntry[], i: number): boolean {
  if (o.from !== undefined && Buffer.compare(index[i].lastKey, o.from) < 0) return false
  if (o.to !== undefined && i > 0 && Buffer.compare(index[i - 1].lastKey, o.to) > 0) return false
  return true
}

/** What is wrong with a value of `kind` (an expiry time that does not read, a malformed blob reference), or undefined. */
function entryProblem(dumper: Dumper, kind: number, value: Uint8Array): string | undefined {
  if (isExpiringKind(kind)) {
    const x = readExpiry(value)
    if ('problem' in x) return x.problem
  }
  if (isBlobKind(kind) && dumper.reference(payloadOf(kind, value)) === undefined) return 'malformed blob reference'
  return undefined
}
