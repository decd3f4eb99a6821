import { tableFileName } from '../base/file-names.js'
import { corruption } from '../base/errors.js'
import { EXPIRY_BYTES, KIND_BLOB, KIND_BLOB_EXPIRING, KIND_DELETE, KIND_PUT_EXPIRING, VALUE_NOT_READ, expiryOf, type BlobResolver, type Found } from '../base/entry.js'
import { BlockSlots, type BlockCache, type CacheEntry } from './block-cache.js'
import { BlockIterator } from './block-iterator.js'
import { IndexBlock } from './index-block.js'
import { Filter, filterHash } from './filter-block.js'
import { PointIndex } from './point-index.js'
import { BLOCK_TRAILER_BYTES, COMPRESSION_NONE, compressedBlockRawBytes, decompressBlockInto } from './table-format.js'
import { openTableFile, readStoredBlockInto, readVerifiedBlock } from './table-file.js'
import type { File, FileSystem } from '../vfs/file-system.js'
import { TwoLevelIterator } from '../iterators/two-level-iterator.js'
import type { InternalIterator } from '../iterators/internal-iterator.js'

/** Where a compressed block waits for its decompression (reused: reads are synchronous). */
let compressedScratch = Buffer.allocUnsafe(0)

/**
 * An open table file. Opening reads and verifies the footer, the index block
 * (decoded into arrays for binary search), the Bloom filter and, when the
 * table has one and the caller's memory allows it, the point index. Data
 * blocks are read with pread on demand, verified, and kept in the shared block
 * cache. Reads are synchronous so that `getSync` can use them.
 */
export class TableReader {
  readonly fileName: string
  /** Set by open() right after construction. */
  index!: IndexBlock
  /** This table's blocks in the block cache, by block number (sized at open). */
  private cached = new BlockSlots(0)
  private refs = 1
  private closed = false
  /** Reused by point lookups, which are synchronous and so never overlap. */
  private pointIterator: BlockIterator | undefined
  /** Per data block, its decoded length once a block of this table turned out compressed (0: not loaded, or the index's). */
  private decodedBytes: Int32Array | undefined
  /** Recency stamp kept by the table cache. */
  lastUse = 0
  /** Resolves the table's blob references (set by the table cache; without it, reading one is an error). */
  blobs: BlobResolver = noBlobs

  private constructor(
    readonly fileNumber: number,
    private readonly file: File,
    readonly fileBytes: number,
    private readonly cache: BlockCache,
    /** The table's Bloom filter (always loaded; point reads of many L0 tables test it first, engine/l0-filters.ts). */
    readonly filter: Filter,
    /** When set, point reads use it instead of the filter and the index search. */
    private pointIndex: PointIndex | undefined,
    /** Format version from the footer (decides the block checksum). */
    private readonly formatVersion: number,
  ) {
    this.fileName = tableFileName(fileNumber)
  }

  /**
   * Opens and verifies a table; throws STRATA_CORRUPTION or STRATA_IO_ERROR.
   * The table's point index is loaded when it has one and the reader's resident
   * bytes (residentBytes) stay within `pointIndexRoomBytes` with it.
   */
  static open(fs: FileSystem, dir: string, fileNumber: number, cache: BlockCache, pointIndexRoomBytes = Infinity): TableReader {
    return openTableFile(fs, dir, fileNumber, ({ handle: fd, file, fileBytes, footer }) => {
      const version = footer.formatVersion
      const index = new IndexBlock(readVerifiedBlock(fd, footer.index, file, version), file, footer.dataEnd)
      // The filter stays loaded beside a point index, so that dropping the
      // point index under memory pressure (dropPointIndex) needs no I/O.
      const filter = new Filter(readVerifiedBlock(fd, footer.filter, file, version), file)
      let pointIndex: PointIndex | undefined
      if (footer.pointIndex !== undefined && index.sizeBytes + filter.sizeBytes + footer.pointIndex.size <= pointIndexRoomBytes) {
        pointIndex = new PointIndex(readVerifiedBlock(fd, footer.pointIndex, file, version), index.count, file)
      }
      const reader = new TableReader(fileNumber, fd, fileBytes, cache, filter, pointIndex, version)
      reader.index = index
      reader.cached = new BlockSlots(index.count)
      return reader
    })
  }

  /** Memory held outside the block cache: index, filter and point index. */
  get residentBytes(): number {
    return this.filter.sizeBytes + (this.pointIndex?.sizeBytes ?? 0) + this.index.sizeBytes
  }

  /** Whether point reads use the table's point index (else its Bloom filter). */
  get usesPointIndex(): boolean {
    return this.pointIndex !== undefined
  }

  /** Frees the point index (point reads go back to the filter); returns the bytes freed. */
  dropPointIndex(): number {
    const bytes = this.pointIndex?.sizeBytes ?? 0
    this.pointIndex = undefined
    return bytes
  }

  /**
   * Newest version of `key` with sequence <= `sequence` in this table, or
   * undefined. The value is a copy, the caller's to keep (VALUE_NOT_READ for a
   * put when `wantValue` is false).
   */
  get(key: Buffer, sequence: number, hash = filterHash(key), wantValue = true): Found | undefined {
    const pi = this.pointIndex
    if (pi !== undefined) {
      // The point index names the block of the key's newest version (docs/format.md, "Point index").
      const fingerprint = pi.fingerprint(hash)
      for (let s = pi.probe(pi.home(hash), fingerprint); s >= 0; s = pi.probe(pi.next(s), fingerprint)) {
        const it = this.seekInBlock(pi.blockAt(s), key, sequence, hash)
        // Ran off the block: the versions the read may see continue in the next
        // block, or the block's hash index does not hold the key (a fingerprint
        // collision in the point index). The index search settles both.
        if (!it.valid()) return this.getByIndex(key, sequence, hash, wantValue)
        if (it.keyEquals(key)) return this.found(it, wantValue)
        // Landed on another key (a collision, in a block without a hash index): probe on.
      }
      return undefined
    }
    if (!this.filter.mayContain(hash)) return undefined
    return this.getByIndex(key, sequence, hash, wantValue)
  }

  /** `get` through a binary search of the index. */
  private getByIndex(key: Buffer, sequence: number, hash: number, wantValue: boolean): Found | undefined {
    const lo = this.index.findInternal(key, sequence)
    if (lo === this.index.count) return undefined
    const it = this.seekInBlock(lo, key, sequence, hash)
    return it.valid() && it.keyEquals(key) ? this.found(it, wantValue) : undefined
  }

  /**
   * Positions the point iterator at the first entry >= (key, sequence) in data
   * block `lo` (invalid when there is none; through the block's hash index: when
   * the block does not hold the key at all).
   */
  private seekInBlock(lo: number, key: Buffer, sequence: number, hash: number): BlockIterator {
    const slots = this.cached
    const cached = this.cache.lookup(slots, lo)
    const entry = cached ?? this.readIntoCache(lo)
    let it = this.pointIterator
    if (it === undefined) it = this.pointIterator = new BlockIterator(entry.block, this.fileName)
    if (cached === undefined) it.resetAt(entry.buffer, 0, entry.blockBytes)
    else {
      // A cached block is read in its slab, without loading its entry's fields
      // (a block outside the slabs is its own "slab", at base 0).
      const slab = slots.slabIds[lo]
      const decoded = this.decodedBytes
      it.resetAt(slab === 0 ? entry.buffer : this.cache.slabs[slab], slots.bases[lo], decoded !== undefined && decoded[lo] > 0 ? decoded[lo] : this.index.blockSize(lo))
    }
    it.seekPoint(key, sequence, hash)
    return it
  }

  /** Iterator over the whole table; holds a reference on this reader until closed. */
  iterator(): InternalIterator {
    this.ref()
    const parts = {
      count: this.index.count,
      compareLastKey: (i: number, key: Buffer) => this.index.compareLastKey(i, key),
      open: (i: number) => {
        // Pinned while the iterator stands on it, so its buffer is not reused under it.
        const entry = this.cachedBlock(i)
        this.cache.pin(entry)
        return new BlockIterator(entry.block, this.fileName, () => this.cache.unpin(entry))
      },
    }
    return new TwoLevelIterator(parts, () => this.unref())
  }

  private cachedBlock(i: number): CacheEntry {
    return this.cache.lookup(this.cached, i) ?? this.readIntoCache(i)
  }

  /**
   * Reads data block `i` from the file, verifies it and caches it,
   * decompressed into a buffer of its own when it was stored compressed.
   * REQUIRES: not cached.
   */
  private readIntoCache(i: number): CacheEntry {
    const offset = this.index.blockOffset(i)
    const size = this.index.blockSize(i) + BLOCK_TRAILER_BYTES
    let buffer: Buffer | undefined = this.cache.allocate(size)
    let block: Buffer
    try {
      const { contents, compression } = readStoredBlockInto(buffer.subarray(0, size), this.file, offset, this.fileName, this.formatVersion)
      if (contents.length !== this.index.blockSize(i)) throw corruption('block shorter than its index entry says', this.fileName, offset)
      block = contents
      if (compression !== COMPRESSION_NONE) {
        const n = compressedBlockRawBytes(contents, this.fileName, offset)
        // Out of the cache's chunk first: until a chunk is inserted the cache
        // counts it unused, so the next allocate may reclaim its slab.
        if (compressedScratch.length < contents.length) compressedScratch = Buffer.allocUnsafe(contents.length * 2)
        const stored = compressedScratch.subarray(0, contents.length)
        contents.copy(stored)
        this.cache.recycle(buffer)
        buffer = undefined
        buffer = this.cache.allocate(n)
        block = buffer.subarray(0, n)
        decompressBlockInto(stored, block, this.fileName, offset)
      }
    } catch (err) {
      if (buffer !== undefined) this.cache.recycle(buffer)
      throw err
    }
    // Point reads of a cached block take its length from the index, or from here when it was compressed.
    if (block.length !== this.index.blockSize(i) || this.decodedBytes !== undefined) {
      this.decodedBytes ??= new Int32Array(this.index.count)
      this.decodedBytes[i] = block.length
    }
    return this.cache.insert(this.cached, i, block, buffer)
  }

  /** The entry `it` stands on, as a point read's result (a separated value is read from its blob file). */
  private found(it: BlockIterator, wantValue: boolean): Found {
    const kind = it.kind()
    if (kind === KIND_DELETE) return { s: it.sequence(), v: null, e: 0 }
    if (kind === KIND_PUT_EXPIRING || kind === KIND_BLOB_EXPIRING) {
      const bytes = it.value()
      const rest = bytes.subarray(EXPIRY_BYTES)
      const v = !wantValue ? VALUE_NOT_READ : kind === KIND_BLOB_EXPIRING ? this.blobs(rest, this.fileName) : Buffer.from(rest)
      return { s: it.sequence(), v, e: expiryOf(bytes) }
    }
    if (!wantValue) return { s: it.sequence(), v: VALUE_NOT_READ, e: 0 }
    return { s: it.sequence(), v: kind === KIND_BLOB ? this.blobs(it.value(), this.fileName) : it.copyValue(), e: 0 }
  }

  ref(): void {
    this.refs++
  }

  /** Drops a reference; the file descriptor closes with the last one. */
  unref(): void {
    if (--this.refs === 0) {
      this.closed = true
      this.cache.dropOwner(this.cached)
      this.file.close()
    }
  }

  get isClosed(): boolean {
    return this.closed
  }
}

/** A reader outside an engine has no blob files to read from. */
function noBlobs(_reference: Uint8Array, where: string): Buffer {
  throw corruption('a blob reference where no blob files are known', where)
}
