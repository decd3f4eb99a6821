import * as path from 'node:path'
import { open as openFile, type FileHandle } from 'node:fs/promises'
import { ioError } from '../base/errors.js'
import { syncDirectory } from '../base/fs-util.js'
import { tableFileName } from '../base/file-names.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'
import type { TableMeta } from '../manifest/table-meta.js'
import { TableBuilder, type TableBuilderOptions } from '../sstable/table-builder.js'
import { ShadowFilter } from './shadow-filter.js'

/** Output is written to the file whenever this much has accumulated. */
const WRITE_CHUNK_BYTES = 1 << 20

/**
 * Writes the entries of `input` (positioned by the caller, consumed to the end)
 * into table file `number`, dropping versions no reader can see. The file is
 * fsynced and its directory entry made durable before this resolves, so the
 * manifest may reference it. Returns undefined (and leaves no file) when
 * nothing was kept. Awaits between chunks, so the event loop keeps turning.
 */
export async function writeTable(
  dir: string,
  number: number,
  input: InternalIterator,
  options: TableBuilderOptions,
  snapshots: readonly number[],
): Promise<TableMeta | undefined> {
  const file = path.join(dir, tableFileName(number))
  const builder = new TableBuilder(options)
  const shadow = new ShadowFilter(snapshots)
  let handle: FileHandle | undefined
  let pendingBytes = 0
  const drain = async (): Promise<void> => {
    const chunks = builder.takeOutput()
    pendingBytes = 0
    if (chunks.length === 0) return
    handle ??= await openFile(file, 'wx')
    await handle.writev(chunks)
  }
  try {
    for (; input.valid(); input.next()) {
      const key = input.key()
      const seq = input.sequence()
      if (!shadow.keep(key, seq)) continue
      const before = builder.estimatedFileBytes
      builder.add(key, seq, input.kind(), input.value())
      pendingBytes += builder.estimatedFileBytes - before
      if (pendingBytes >= WRITE_CHUNK_BYTES) await drain()
    }
    if (builder.entryCount === 0) return undefined
    const props = builder.finish()
    await drain()
    await handle!.datasync()
    await handle!.close()
    handle = undefined
    syncDirectory(dir)
    return { number, ...props }
  } catch (err) {
    if (handle !== undefined) await handle.close().catch(() => undefined)
    throw err instanceof Error && 'code' in err && String(err.code).startsWith('STRATA_') ? err : ioError(`cannot write table ${file}`, err)
  } finally {
    input.close()
  }
}
