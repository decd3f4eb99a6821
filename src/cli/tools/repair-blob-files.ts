/**
 * Which blob files the manifest `strata repair` writes lists, once every
 * kept table is known: each intact blob file a kept entry references (its
 * value counts from its footer; garbage: the values no kept entry
 * references), and the salvage blob file the values of damaged ones were
 * copied into. A blob file no kept entry references, and a damaged one, is
 * moved aside; a missing one is reported when the manifest named it or a
 * table referenced it.
 */
import { blobFileName } from '../../base/file-names.js'
import type { BlobFileMeta } from '../../manifest/blob-file-meta.js'
import type { RecoveredState } from '../../manifest/table-version-set.js'
import { isIntactBlob } from './blob-inspection.js'
import { plural } from './output.js'
import type { Salvager } from './salvager.js'

/**
 * Which blob files the new manifest lists: every intact one a kept entry
 * references (counts from its footer, garbage: the values no kept entry
 * references) and the salvage blob file; the others are moved aside.
 */
export async function settleBlobFiles(s: Salvager, state: RecoveredState | undefined): Promise<BlobFileMeta[]> {
  const out: BlobFileMeta[] = []
  const salvage = await s.blobs.finish()
  const salvageName = salvage !== undefined ? blobFileName(salvage.number) : undefined
  for (const f of [...s.blobs.files.values()].sort((a, b) => a.number - b.number)) {
    const insp = f.inspection
    const used = s.blobs.referencedIn(f.number)
    const lostNote = f.valuesLost > 0 ? `; ${plural(f.valuesLost, 'entry', 'entries')} referencing values in it could not be kept` : ''
    if (insp.missing) {
      const named = state?.tableVersion.blobs.has(f.number) === true
      if (named || f.valuesLost > 0) {
        s.files.push({ file: f.name, action: 'missing', reason: `${named ? 'named by the manifest' : 'referenced by tables'}, but the file does not exist${lostNote}`, blobValuesLost: f.valuesLost, problems: [] })
      }
      continue
    }
    if (isIntactBlob(insp)) {
      if (used.count === 0) {
        s.lostFolder.moveAside(f.name, { action: 'moved-aside', reason: 'unreferenced: no kept table references a value in it' })
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
      s.files.push({ file: f.name, action: 'kept', valuesReferenced: used.count, valuesGarbage: meta.garbageCount, problems: [] })
      continue
    }
    // Damaged: what could be read was copied into the salvage blob file.
    const copied = f.copied.size > 0 ? `; ${plural(f.copied.size, 'referenced value')} copied into ${salvageName}` : ''
    s.lostFolder.moveAside(f.name, {
      action: f.copied.size > 0 ? 'rewritten' : 'moved-aside',
      reason: `damaged (${insp.problems[0].message})${copied}${lostNote}${f.copied.size === 0 && f.valuesLost === 0 ? '; no kept table references a value in it' : ''}`,
      newBlobFile: f.copied.size > 0 ? salvageName : undefined,
      blobValuesLost: f.valuesLost,
      problems: insp.problems,
    })
  }
  if (salvage !== undefined) {
    const used = s.blobs.referencedIn(salvage.number)
    if (used.count === 0) {
      s.lostFolder.moveAside(salvageName!, { action: 'moved-aside', reason: 'written with values of damaged blob files, but no kept table references them' })
    } else {
      out.push({ ...salvage, garbageCount: salvage.valueCount - used.count, garbageBytes: Math.max(0, salvage.valueBytes - used.bytes) })
      s.files.push({ file: salvageName!, action: 'written', reason: `${plural(salvage.valueCount, 'value')} copied out of damaged blob files`, valuesReferenced: used.count, problems: [] })
    }
  }
  return out
}
