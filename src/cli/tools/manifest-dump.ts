/**
 * `strata dump` of a manifest (MANIFEST-*): every edit (tables deleted and
 * added with their levels, key ranges and sequence floors, blob files added
 * and their garbage, range tombstones added and removed, the counters), every
 * damaged record where it lies, and the state the edits add up to, as text or
 * one JSON document.
 */
import * as path from 'node:path'
import { blobFileName, tableFileName } from '../../base/file-names.js'
import type { BlobFileMeta } from '../../manifest/blob-file-meta.js'
import type { TableVersionEdit } from '../../manifest/table-version-edit.js'
import type { FileSystem } from '../../vfs/file-system.js'
import type { Dumper } from './dumper.js'
import { replayManifest } from './manifest-replay.js'
import { count, plural } from './output.js'
import { bySequence, rangeJson, rangeText } from './range-deletes.js'

export async function dumpManifest(dumper: Dumper, fs: FileSystem, file: string): Promise<void> {
  const name = path.basename(file)
  const buf = fs.readFile(file)
  const replay = replayManifest(buf, name)
  const json = dumper.o.json
  if (json) await dumper.jsonHead({ file: name, type: 'manifest', fileBytes: buf.length }, 'edits')
  else await dumper.out.line(`${name}: manifest, ${count(buf.length)} bytes, ${plural(replay.walk.records.length, 'record')}`)
  const items = [...replay.edits.map((e) => ({ at: e.offset, e, d: undefined })), ...replay.walk.damage.map((d) => ({ at: d.offset, e: undefined, d }))].sort((a, b) => a.at - b.at)
  let shown = 0
  for (const item of items) {
    if (item.d !== undefined) {
      const d = item.d
      await dumper.problem({ file: name, offset: d.offset, message: `${d.kind === 'torn' ? 'torn last record' : 'damaged record(s)'}: bytes ${d.offset}..${d.end} (${plural(d.end - d.offset, 'byte')})` })
      continue
    }
    const e = item.e!
    if (e.problem !== undefined) {
      await dumper.problem(e.problem)
      continue
    }
    const edit = e.edit!
    if (json) {
      await dumper.out.write(`${shown > 0 ? ',' : ''}${JSON.stringify({ offset: e.offset, bytes: e.bytes, ...editJson(dumper, edit) })}`)
    } else {
      const counters = [
        edit.logNumber !== undefined ? `log number ${edit.logNumber}` : '',
        edit.nextFileNumber !== undefined ? `next file ${edit.nextFileNumber}` : '',
        edit.lastSequence !== undefined ? `last sequence ${edit.lastSequence}` : '',
      ].filter((s) => s !== '')
      await dumper.out.line(`edit at offset ${e.offset} (${count(e.bytes)} bytes)${counters.length > 0 ? `: ${counters.join(', ')}` : ''}`)
      for (const d of edit.deleted) await dumper.out.line(`  delete L${d.level} ${tableFileName(d.number)}`)
      for (const { level, table: t } of edit.added) {
        const blobs = t.blobFiles !== undefined && t.blobFiles.length > 0 ? `; blob files ${t.blobFiles.map(blobFileName).join(', ')}` : ''
        // Tag 11: the smallest sequence, and the range tombstones up to a sequence that cover nothing in the table.
        const floor = t.minSeq !== undefined ? `; min sequence ${t.minSeq}, range-delete floor ${t.rangeDeleteFloor ?? 0}` : ''
        await dumper.out.line(
          `  add    L${level} ${tableFileName(t.number)}: ${count(t.fileBytes)} bytes, ${plural(t.entryCount, 'entry', 'entries')} (${count(t.deleteCount)} deletes), ` +
            `${dumper.show(t.smallestKey)} @${t.smallestSeq} .. ${dumper.show(t.largestKey)} @${t.largestSeq}${blobs}${floor}`,
        )
      }
      for (const seq of edit.rangeTombstonesRemoved ?? []) await dumper.out.line(`  range  remove @${seq}`)
      for (const r of edit.rangeTombstonesAdded ?? []) await dumper.out.line(`  range  add @${r.seq} ${rangeText(r, dumper.format)}`)
      for (const b of edit.blobsAdded ?? []) {
        await dumper.out.line(`  blob   add ${blobFileName(b.number)}: ${count(b.fileBytes)} bytes, ${plural(b.valueCount, 'value')} (${count(b.valueBytes)} bytes)`)
      }
      for (const g of edit.blobGarbage ?? []) {
        await dumper.out.line(`  blob   garbage ${blobFileName(g.number)}: ${plural(g.count, 'value')} (${count(g.bytes)} bytes)`)
      }
    }
    shown++
  }
  for (const p of replay.problems) await dumper.problem(p)
  const levels = new Map<number, number>()
  for (const p of replay.tables.values()) levels.set(p.level, (levels.get(p.level) ?? 0) + 1)
  const state = {
    logNumber: replay.logNumber,
    nextFileNumber: replay.nextFileNumber,
    lastSequence: replay.lastSequence,
    levels: [...levels.entries()].sort(([a], [b]) => a - b).map(([level, tables]) => ({ level, tables })),
    tables: [...replay.tables.entries()].sort(([a], [b]) => a - b).map(([number, p]) => ({ file: tableFileName(number), level: p.level })),
    blobFiles: [...replay.blobs.values()].sort((a, b) => a.number - b.number).map((b) => blobMetaJson(b)),
    rangeTombstones: bySequence(replay.rangeTombstones.values()).map((r) => rangeJson(r, dumper.format)),
  }
  if (json) {
    await dumper.out.write(']')
    await dumper.jsonTail({ state })
  } else {
    const perLevel = state.levels.map((l) => `L${l.level}: ${l.tables}`).join(', ')
    const blobs = state.blobFiles.length > 0 ? `, ${plural(state.blobFiles.length, 'blob file')}` : ''
    const ranges = `, ${plural(replay.rangeTombstones.size, 'live range tombstone')}`
    await dumper.out.line(
      `state after ${plural(shown, 'edit')}: ${plural(replay.tables.size, 'table')}${perLevel === '' ? '' : ` (${perLevel})`}${blobs}${ranges}, log number ${state.logNumber}, next file ${state.nextFileNumber}, last sequence ${state.lastSequence}`,
    )
    for (const b of state.blobFiles) {
      await dumper.out.line(
        `  blob file ${b.file}: ${count(b.fileBytes)} bytes, ${plural(b.valueCount, 'value')} (${count(b.valueBytes)} bytes), garbage ${plural(b.garbageCount, 'value')} (${count(b.garbageBytes)} bytes)`,
      )
    }
    for (const r of bySequence(replay.rangeTombstones.values())) await dumper.out.line(`  range tombstone @${r.seq} ${rangeText(r, dumper.format)}`)
  }
}

function editJson(dumper: Dumper, edit: TableVersionEdit): Record<string, unknown> {
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
      smallest: { ...dumper.keyJson(t.smallestKey), sequence: t.smallestSeq },
      largest: { ...dumper.keyJson(t.largestKey), sequence: t.largestSeq },
      blobFiles: (t.blobFiles ?? []).map(blobFileName),
      minSeq: t.minSeq ?? null,
      rangeDeleteFloor: t.minSeq === undefined ? null : (t.rangeDeleteFloor ?? 0),
    })),
    rangeTombstonesAdded: (edit.rangeTombstonesAdded ?? []).map((r) => rangeJson(r, dumper.format)),
    rangeTombstonesRemoved: edit.rangeTombstonesRemoved ?? [],
    blobsAdded: (edit.blobsAdded ?? []).map((b) => ({ file: blobFileName(b.number), fileBytes: b.fileBytes, valueCount: b.valueCount, valueBytes: b.valueBytes })),
    blobGarbage: (edit.blobGarbage ?? []).map((g) => ({ file: blobFileName(g.number), count: g.count, bytes: g.bytes })),
  }
}

function blobMetaJson(b: BlobFileMeta): { file: string; fileBytes: number; valueCount: number; valueBytes: number; garbageCount: number; garbageBytes: number } {
  return { file: blobFileName(b.number), fileBytes: b.fileBytes, valueCount: b.valueCount, valueBytes: b.valueBytes, garbageCount: b.garbageCount, garbageBytes: b.garbageBytes }
}
