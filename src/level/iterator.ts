import { AbstractIterator, AbstractKeyIterator, AbstractValueIterator } from 'abstract-level'
import type { StrataIterator } from '../index.js'
import { toLevelError } from './errors.js'
import { decodeKey, decodeValue, encodeKey, type LevelData } from './keys.js'

/** Options abstract-level passes to `_iterator()`, `_keys()` and `_values()` (encoded, normalized). */
export interface PrivateIteratorOptions {
  keys?: boolean
  values?: boolean
  keyEncoding: string
  valueEncoding?: string
  reverse: boolean
  limit: number
  gt?: LevelData
  gte?: LevelData
  lt?: LevelData
  lte?: LevelData
  snapshot?: unknown
}

/** Entries read by `_all()` between macrotask yields, so a long scan does not starve I/O. */
const ENTRIES_PER_YIELD = 1024

type Mapper<T> = (key: Buffer, value: Buffer) => T

/**
 * The engine iterator behind one Level iterator: a seekable iterator at the
 * point in time of its creation (or of an explicit snapshot), which stays
 * open at its end so seek() can continue, until `_close()`. The engine
 * enforces range and limit (counting across seeks, as abstract-level does);
 * abstract-level guards the call order (busy, closed, snapshot state).
 */
class Cursor<T> {
  constructor(
    private readonly it: StrataIterator,
    private readonly map: Mapper<T>,
  ) {}

  async next(): Promise<T | undefined> {
    let result: IteratorResult<[Buffer, Buffer]>
    try {
      result = await this.it.next()
    } catch (err) {
      throw toLevelError(err)
    }
    return result.done === true ? undefined : this.map(result.value[0], result.value[1])
  }

  nextv(size: number): T[] {
    const out: T[] = []
    try {
      while (out.length < size) {
        const entry = this.it.nextSync()
        if (entry === undefined) break
        out.push(this.map(entry[0], entry[1]))
      }
    } catch (err) {
      throw toLevelError(err)
    }
    return out
  }

  async all(): Promise<T[]> {
    const out: T[] = []
    try {
      for (;;) {
        const entry = this.it.nextSync()
        if (entry === undefined) return out
        out.push(this.map(entry[0], entry[1]))
        if (out.length % ENTRIES_PER_YIELD === 0) await new Promise<void>((resolve) => setImmediate(resolve))
      }
    } catch (err) {
      throw toLevelError(err)
    }
  }

  seek(target: LevelData): void {
    try {
      this.it.seek(encodeKey(target))
    } catch (err) {
      throw toLevelError(err)
    }
  }

  close(): void {
    this.it.close()
  }
}

// The typings of abstract-level declare neither the private methods nor
// constructors taking the private options; these aliases state what the
// JavaScript classes accept.
type Ctor<T> = new (db: unknown, options: PrivateIteratorOptions) => T
const EntryIteratorBase = AbstractIterator as unknown as Ctor<AbstractIterator<unknown, unknown, unknown>>
const KeyIteratorBase = AbstractKeyIterator as unknown as Ctor<AbstractKeyIterator<unknown, unknown>>
const ValueIteratorBase = AbstractValueIterator as unknown as Ctor<AbstractValueIterator<unknown, unknown, unknown>>

/** `db.iterator()`: [key, value] entries; a side the caller did not ask for (keys/values: false) stays undefined. */
export class StrataLevelIterator extends EntryIteratorBase {
  readonly #cursor: Cursor<[LevelData | undefined, LevelData | undefined]>

  constructor(db: unknown, options: PrivateIteratorOptions, it: StrataIterator) {
    super(db, options)
    const keyFormat = options.keyEncoding
    const valueFormat = options.valueEncoding ?? 'utf8'
    const keys = options.keys !== false
    const values = options.values !== false
    this.#cursor = new Cursor(it, (k, v) => [
      keys ? decodeKey(k, keyFormat) : undefined,
      values ? decodeValue(v, valueFormat) : undefined,
    ])
  }

  async _next(): Promise<[LevelData | undefined, LevelData | undefined] | undefined> {
    return this.#cursor.next()
  }

  async _nextv(size: number): Promise<Array<[LevelData | undefined, LevelData | undefined]>> {
    return this.#cursor.nextv(size)
  }

  async _all(): Promise<Array<[LevelData | undefined, LevelData | undefined]>> {
    return this.#cursor.all()
  }

  _seek(target: LevelData): void {
    this.#cursor.seek(target)
  }

  async _close(): Promise<void> {
    this.#cursor.close()
  }
}

/** `db.keys()`. */
export class StrataLevelKeyIterator extends KeyIteratorBase {
  readonly #cursor: Cursor<LevelData>

  constructor(db: unknown, options: PrivateIteratorOptions, it: StrataIterator) {
    super(db, options)
    const keyFormat = options.keyEncoding
    this.#cursor = new Cursor(it, (k) => decodeKey(k, keyFormat))
  }

  async _next(): Promise<LevelData | undefined> {
    return this.#cursor.next()
  }

  async _nextv(size: number): Promise<LevelData[]> {
    return this.#cursor.nextv(size)
  }

  async _all(): Promise<LevelData[]> {
    return this.#cursor.all()
  }

  _seek(target: LevelData): void {
    this.#cursor.seek(target)
  }

  async _close(): Promise<void> {
    this.#cursor.close()
  }
}

/** `db.values()`. */
export class StrataLevelValueIterator extends ValueIteratorBase {
  readonly #cursor: Cursor<LevelData>

  constructor(db: unknown, options: PrivateIteratorOptions, it: StrataIterator) {
    super(db, options)
    const valueFormat = options.valueEncoding ?? 'utf8'
    this.#cursor = new Cursor(it, (_k, v) => decodeValue(v, valueFormat))
  }

  async _next(): Promise<LevelData | undefined> {
    return this.#cursor.next()
  }

  async _nextv(size: number): Promise<LevelData[]> {
    return this.#cursor.nextv(size)
  }

  async _all(): Promise<LevelData[]> {
    return this.#cursor.all()
  }

  _seek(target: LevelData): void {
    this.#cursor.seek(target)
  }

  async _close(): Promise<void> {
    this.#cursor.close()
  }
}
