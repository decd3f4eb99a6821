/**
 * `strata dump` of a WAL (.log): every record (offset, version, epoch,
 * sequences) with its writes (batches) and their entries, those whose key is
 * in --from/--to (a range delete: whose range meets them), and every damaged
 * range where it lies (a torn tail only as a warning, as recovery treats it),
 * as text or one JSON document.
 */
import * as path from 'node:path'
import type { FileSystem } from '../../vfs/file-system.js'
import type { Dumper } from './dumper.js'
import { isRangeDeleteKind } from './entry-kinds.js'
import { count, plural, showFinding, type Finding } from './output.js'
import { readWalContents, walDamageFinding } from './wal-inspection.js'

export async function dumpWal(dumper: Dumper, fs: FileSystem, file: string): Promise<void> {
  const name = path.basename(file)
  const buf = fs.readFile(file)
  const contents = readWalContents(buf, name)
  const json = dumper.o.json
  if (json) await dumper.jsonHead({ file: name, type: 'wal', fileBytes: buf.length }, 'records')
  else await dumper.out.line(`${name}: WAL, ${count(buf.length)} bytes`)
  // Records and damaged ranges in file order.
  const items = [...contents.records.map((r) => ({ at: r.offset, r, d: undefined })), ...contents.damage.map((d) => ({ at: d.offset, r: undefined, d }))].sort((a, b) => a.at - b.at)
  let entries = 0
  let rangeDeletes = 0
  let shown = 0
  let first: number | undefined
  let lastSeq: number | undefined
  const warnings: Finding[] = []
  for (const item of items) {
    if (item.d !== undefined) {
      const { severity, finding } = walDamageFinding(item.d, name, true)
      if (severity === 'error') await dumper.problem(finding)
      else {
        warnings.push(finding)
        if (!json) await dumper.out.line(`warning: ${showFinding(finding)}`)
      }
      continue
    }
    const r = item.r!
    if (r.problem !== undefined) {
      await dumper.problem(r.problem)
      continue
    }
    const list = r.entries!.filter((e) => dumper.entryInBounds(e.key, e.kind, e.value))
    entries += r.count
    for (const e of r.entries!) if (isRangeDeleteKind(e.kind)) rangeDeletes++
    if (r.count > 0) {
      first ??= r.firstSequence
      lastSeq = r.firstSequence + r.count - 1
    }
    if (dumper.ranged && list.length === 0) continue
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
        entries: list.map((e) => ({ ...dumper.entryJson(e.key, e.sequence, e.kind, e.value), batchEnd: e.batchEnd })),
      }
      await dumper.out.write(`${shown > 0 ? ',' : ''}${JSON.stringify(rec)}`)
    } else {
      await dumper.out.line(`record at offset ${r.offset}: ${count(r.bytes)} bytes, version ${r.version}${r.version >= 3 ? `, epoch ${r.epoch}` : ''}, ${range}, ${plural(batches.length, 'batch', 'batches')}`)
      for (const [lo, hi] of batches) {
        const inBatch = list.filter((e) => e.sequence >= lo && e.sequence <= hi)
        if (inBatch.length === 0) continue
        await dumper.out.line(`  batch ${lo}..${hi} (${plural(hi - lo + 1, 'op')})`)
        for (const e of inBatch) await dumper.out.line(`  ${dumper.entryText(e.key, e.sequence, e.kind, e.value)}`)
      }
    }
    shown++
  }
  const summary = { recordCount: contents.records.length, entryCount: entries, rangeDeleteCount: rangeDeletes, firstSequence: first ?? null, lastSequence: lastSeq ?? null }
  if (json) {
    await dumper.out.write(']')
    await dumper.jsonTail({ ...summary, warnings })
  } else {
    const seqs = first === undefined ? '' : `, sequences ${first}..${lastSeq}`
    const ranges = rangeDeletes > 0 ? ` (${plural(rangeDeletes, 'range delete')})` : ''
    await dumper.out.line(`${plural(summary.recordCount, 'record')}, ${plural(entries, 'entry', 'entries')}${ranges}${seqs}${dumper.ranged ? ` (${plural(shown, 'record')} shown)` : ''}`)
  }
}
