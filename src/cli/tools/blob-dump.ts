/**
 * `strata dump` of a blob file (.blob): its header and footer, then every
 * record (offset, key, value offset, length, checksum and value; those whose
 * key is in --from/--to) with the damage where it lies, as text or one JSON
 * document. The file is walked past damage (`walkBlobFile`).
 */
import * as path from 'node:path'
import { BLOB_FOOTER_BYTES, BLOB_HEADER_BYTES } from '../../blob/blob-format.js'
import type { FileSystem } from '../../vfs/file-system.js'
import { walkBlobFile } from './blob-walk.js'
import type { Dumper } from './dumper.js'
import { count, hex32, inBounds, jsonBytes, plural } from './output.js'

export async function dumpBlob(dumper: Dumper, fs: FileSystem, file: string): Promise<void> {
  const name = path.basename(file)
  const buf = fs.readFile(file)
  const walk = walkBlobFile(buf, name)
  const json = dumper.o.json
  const valueBytes = walk.records.reduce((n, r) => n + r.value.length, 0)
  const footerJson = walk.footer === undefined ? null : { offset: walk.footerOffset, bytes: BLOB_FOOTER_BYTES, recordCount: walk.footer.recordCount, valueBytes: walk.footer.valueBytes }
  // Header and footer problems first (as a table's footer), then the records with the damage where it lies.
  const inRecords = (f: { offset?: number }): boolean => f.offset !== undefined && f.offset >= BLOB_HEADER_BYTES && f.offset < walk.footerOffset
  if (json) {
    await dumper.jsonHead({ file: name, type: 'blob', fileBytes: buf.length, formatVersion: walk.version ?? null, footer: footerJson }, 'records')
    for (const p of walk.problems) if (!inRecords(p)) await dumper.problem(p)
  } else {
    await dumper.out.line(`${name}: blob file, ${count(buf.length)} bytes, format version ${walk.version ?? 'unknown'}`)
    if (walk.footer !== undefined) {
      await dumper.out.line(`  records      ${count(walk.footer.recordCount)}, ${count(walk.footer.valueBytes)} value bytes (footer)`)
      await dumper.out.line(`  footer       offset ${walk.footerOffset}, ${BLOB_FOOTER_BYTES} bytes`)
    }
    for (const p of walk.problems) if (!inRecords(p)) await dumper.problem(p)
    await dumper.out.line()
    await dumper.out.line('records:')
  }
  const problemsAt = walk.problems.filter(inRecords)
  let p = 0
  let shown = 0
  for (const r of walk.records) {
    while (p < problemsAt.length && problemsAt[p].offset! < r.recordOffset) await dumper.problem(problemsAt[p++])
    if (!inBounds(r.key, dumper.o)) continue
    if (json) {
      const k = jsonBytes(r.key, dumper.format)
      const rec: Record<string, unknown> = { offset: r.recordOffset, valueOffset: r.valueOffset, key: k.text, keyEncoding: k.encoding, valueLength: r.value.length, checksum: r.checksum, checksumOk: r.valueOk }
      if (!dumper.o.keysOnly) {
        const v = jsonBytes(r.value, dumper.format)
        rec.value = v.text
        rec.valueEncoding = v.encoding
      }
      await dumper.out.write(`${shown > 0 ? ',' : ''}${JSON.stringify(rec)}`)
    } else {
      const value = dumper.o.keysOnly ? '' : ` ${dumper.show(r.value)}`
      await dumper.out.line(
        `  record at ${r.recordOffset}: ${dumper.show(r.key)} value offset ${r.valueOffset}, ${count(r.value.length)} bytes, checksum 0x${hex32(r.checksum)}${r.valueOk ? '' : ' (does not match the value)'}${value}`,
      )
    }
    shown++
  }
  while (p < problemsAt.length) await dumper.problem(problemsAt[p++])
  const summary = { recordCount: walk.records.length, valueBytes, recordsShown: shown }
  if (json) {
    await dumper.out.write(']')
    await dumper.jsonTail(summary)
  } else {
    await dumper.out.line()
    await dumper.out.line(
      `${plural(walk.records.length, 'record')}, ${count(valueBytes)} value bytes${dumper.ranged ? ` (${plural(shown, 'record')} shown)` : ''}${dumper.problems.length > 0 ? `; ${plural(dumper.problems.length, 'problem')}` : ''}`,
    )
  }
}
