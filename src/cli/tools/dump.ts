/**
 * `strata dump <file>`: prints a table (footer and properties, index, data
 * blocks and their entries), a blob file (every record), a WAL (every record
 * and its entries) or a manifest (every edit), as text or one JSON document (docs/cli.md, "strata
 * dump"). Damage does not stop it: what cannot be read is reported where it
 * lies and the rest is printed. This module tells what the file is and hands
 * it to the dump of its kind (table-dump.ts, blob-dump.ts, wal-dump.ts,
 * manifest-dump.ts), which share a Dumper (dumper.ts).
 */
import * as path from 'node:path'
import { initChecksum } from '../../base/checksum.js'
import { readU32 } from '../../base/coding.js'
import { parseFileName } from '../../base/file-names.js'
import { BLOB_MAGIC } from '../../blob/blob-format.js'
import { TABLE_MAGIC_HI, TABLE_MAGIC_LO } from '../../sstable/table-format.js'
import type { FileSystem } from '../../vfs/file-system.js'
import { nodeFileSystem } from '../../vfs/node-file-system.js'
import { intactRecordLength } from '../../wal/record-framing.js'
import { dumpBlob } from './blob-dump.js'
import { isMissing } from './database-directory.js'
import { Dumper, type DumpOptions, type DumpType } from './dumper.js'
import { dumpManifest } from './manifest-dump.js'
import { EXIT_OK, EXIT_PROBLEMS, UsageError, type Out } from './output.js'
import { dumpTable } from './table-dump.js'
import { dumpWal } from './wal-dump.js'

export type { DumpOptions, DumpType } from './dumper.js'

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
  if (type === 'table') await dumpTable(d, fs, file)
  else if (type === 'blob') await dumpBlob(d, fs, file)
  else if (type === 'wal') await dumpWal(d, fs, file)
  else await dumpManifest(d, fs, file)
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
