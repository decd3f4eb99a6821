import * as fs from 'node:fs'
import * as path from 'node:path'
import { cursor, readVarint } from '../base/coding.js'
import { corruption, ioError } from '../base/errors.js'
import { readExactly } from '../base/fs-util.js'
import { tableFileName } from '../base/file-names.js'
import { KIND_DELETE } from '../wal/wal-record.js'
import type { Found } from '../memtable/memtable.js'
import type { BlockCache, CacheEntry } from './block-cache.js'
import { BlockIterator } from './block-iterator.js'
import { Filter, filterHash } from './filter-block.js'
import { BLOCK_TRAILER_BYTES, FOOTER_BYTES, checkBlock, decodeFooter, type BlockHandle } from './table-format.js'
import { TwoLevelIterator } from '../iterators/two-level-iterator.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'

/**
 * An open table file. Opening reads and verifies the footer, the index block
 * (decoded into arrays for binary search) and the filter. Data blocks are read
 * with pread on demand, verified, and kept in the shared block cache.
 * Reads are synchronous so that `getSync` can use them.
 */
export class TableReader {
  readonly fileName: string
  /** Last user key of each data block, and its sequence, in order. */
  readonly indexKeys: Buffer[] = []
  /** The same keys as latin1 strings: V8 compares one-byte strings faster than any byte loop. */
  private readonly indexKeyStrings: string[] = []
  readonly indexSeqs: number[] = []
  readonly indexHandles: BlockHandle[] = []
  private readonly cached = new Map<number, CacheEntry>()
  private refs = 1
  private closed = false
  /** Reused by point lookups, which are synchronous and so never overlap. */
  private pointIterator: BlockIterator | undefined

  private constructor(
    readonly fileNumber: number,
    private readonly fd: number,
    readonly fileBytes: number,
    private readonly cache: BlockCache,
    private filter: Filter,
  ) {
    this.fileName = tableFileName(fileNumber)
  }

  /** Opens and verifies a table; throws STRATA_CORRUPTION or STRATA_IO_ERROR. */
  static open(dir: string, fileNumber: number, cache: BlockCache): TableReader {
    const file = path.join(dir, tableFileName(fileNumber))
    let fd: number
    try {
      fd = fs.openSync(file, 'r')
    } catch (err) {
      throw ioError(`cannot open table ${file}`, err)
    }
    try {
      const fileBytes = fs.fstatSync(fd).size
      if (fileBytes < FOOTER_BYTES) throw corruption('table shorter than its footer', file)
      const footer = decodeFooter(readExactly(fd, FOOTER_BYTES, fileBytes - FOOTER_BYTES), file, fileBytes)
      const filter = new Filter(readVerified(fd, footer.filter, file), file)
      const reader = new TableReader(fileNumber, fd, fileBytes, cache, filter)
      reader.loadIndex(readVerified(fd, footer.index, file), file, fileBytes - FOOTER_BYTES)
      return reader
    } catch (err) {
      fs.closeSync(fd)
      throw err
    }
  }

  /** Memory held outside the block cache: index and filter. */
  get residentBytes(): number {
    let n = this.filter.sizeBytes
    for (const k of this.indexKeys) n += 2 * k.length + 80
    return n
  }

  /**
   * Newest version of `key` with sequence <= `sequence` in this table, or
   * undefined. The value is a view into a cached block: copy it to keep it.
   */
  get(key: Buffer, sequence: number, hash = filterHash(key), keyLatin1 = key.toString('latin1')): Found | undefined {
    if (!this.filter.mayContain(hash)) return undefined
    // First block whose last internal key is >= (key, sequence).
    const keys = this.indexKeyStrings
    let lo = 0
    let hi = keys.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const k = keys[mid]
      if (k < keyLatin1 || (k === keyLatin1 && this.indexSeqs[mid] > sequence)) lo = mid + 1
      else hi = mid
    }
    if (lo === keys.length) return undefined
    const block = this.readBlock(lo)
    let it = this.pointIterator
    if (it === undefined) it = this.pointIterator = new BlockIterator(block, this.fileName)
    else it.reset(block)
    it.seekInternal(key, sequence)
    if (!it.valid() || !it.keyEquals(key)) return undefined
    return { s: it.sequence(), v: it.kind() === KIND_DELETE ? null : it.value() }
  }

  /** Iterator over the whole table; holds a reference on this reader until closed. */
  iterator(): InternalIterator {
    this.ref()
    const parts = {
      count: this.indexKeys.length,
      lastKey: (i: number) => this.indexKeys[i],
      open: (i: number) => new BlockIterator(this.readBlock(i), this.fileName),
    }
    return new TwoLevelIterator(parts, () => this.unref())
  }

  /** Contents of data block `i`, from the cache or the file (verified). */
  readBlock(i: number): Buffer {
    const handle = this.indexHandles[i]
    const hit = this.cache.lookup(this.cached, handle.offset)
    if (hit !== undefined) return hit
    const block = readVerified(this.fd, handle, this.fileName)
    this.cache.insert(this.cached, handle.offset, block)
    return block
  }

  ref(): void {
    this.refs++
  }

  /** Drops a reference; the file descriptor closes with the last one. */
  unref(): void {
    if (--this.refs === 0) {
      this.closed = true
      this.cache.dropOwner(this.cached)
      fs.closeSync(this.fd)
    }
  }

  get isClosed(): boolean {
    return this.closed
  }

  private loadIndex(contents: Buffer, file: string, dataEnd: number): void {
    const it = new BlockIterator(contents, file)
    for (it.seekToFirst(); it.valid(); it.next()) {
      const v = it.value()
      readVarint(v, 0, v.length)
      const offset = cursor.value
      readVarint(v, cursor.offset, v.length)
      const size = cursor.value
      if (offset + size + BLOCK_TRAILER_BYTES > dataEnd) throw corruption('index entry points past the data', file)
      this.indexKeys.push(Buffer.from(it.key()))
      this.indexKeyStrings.push(it.key().toString('latin1'))
      this.indexSeqs.push(it.sequence())
      this.indexHandles.push({ offset, size })
    }
    if (this.indexKeys.length === 0) throw corruption('table has an empty index', file)
  }
}

function readVerified(fd: number, handle: BlockHandle, file: string): Buffer {
  let raw: Buffer
  try {
    raw = readExactly(fd, handle.size + BLOCK_TRAILER_BYTES, handle.offset)
  } catch (err) {
    throw ioError(`read of ${file} failed`, err)
  }
  return checkBlock(raw, file, handle.offset)
}
