import * as fs from 'node:fs'
import { createRequire } from 'node:module'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { EngineName } from './config.js'

/**
 * Adapters: one way to drive each engine through its natural fast path with
 * its default durability. Peers are loaded with a dynamic import so that a
 * missing optional dependency is reported and skipped, never fatal.
 */

/** Called once per entry of a scan, in key order. */
export type EntryVisitor = (key: Uint8Array, value: Uint8Array) => void

/** An open database, as the workloads see it. */
export interface BenchDb {
  /** One asynchronous put; resolves when the engine acknowledges it. */
  put(key: Buffer, value: Buffer): Promise<unknown>
  /** One atomic batch of puts (`keys[i]` gets `values[i]`). */
  batch(keys: readonly Buffer[], values: readonly Buffer[]): Promise<unknown>
  /** Asynchronous point read; undefined when missing. */
  get(key: Buffer): Promise<Uint8Array | undefined>
  /** Synchronous point read, when the engine has one. */
  readonly getSync: ((key: Buffer) => Uint8Array | undefined) | undefined
  /** Visits every entry in key order; resolves with the count. */
  scan(visit: EntryVisitor): Promise<number>
  /** Engine-specific counters worth keeping in the JSON report. */
  stats(): unknown
  close(): Promise<void>
}

/** How to open one engine, and what the report says about it. */
export interface EngineAdapter {
  readonly name: EngineName
  readonly version: string
  /** The durability mode it runs in (printed in the report header). */
  readonly durability: string
  /** Which calls the workloads use, e.g. "put, batch, getSync, get, iterator". */
  readonly calls: string
  open(dir: string): Promise<BenchDb>
}

/** Loads the adapter of `name`; throws when the engine cannot be loaded. */
export async function loadEngine(name: EngineName): Promise<EngineAdapter> {
  switch (name) {
    case 'stratadb':
      return loadStratadb()
    case 'classic-level':
      return loadClassicLevel()
    case 'lmdb':
      return loadLmdb()
  }
}

/** The version in a package's package.json, found from where Node resolves the package. */
export function packageVersion(name: string): string {
  try {
    const require = createRequire(import.meta.url)
    let dir = path.dirname(require.resolve(name))
    for (;;) {
      const file = path.join(dir, 'package.json')
      if (fs.existsSync(file)) {
        const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string }
        if (pkg.name === name) return pkg.version ?? 'unknown'
      }
      const parent = path.dirname(dir)
      if (parent === dir) return 'unknown'
      dir = parent
    }
  } catch {
    return 'unknown'
  }
}

/** This package's own version (dist/cli/bench/ → package.json three levels up). */
export function ownVersion(): string {
  try {
    const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'package.json')
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

// ---- stratadb ---------------------------------------------------------------

async function loadStratadb(): Promise<EngineAdapter> {
  const { open } = await import('../../index.js')
  return {
    name: 'stratadb',
    version: ownVersion(),
    durability: 'syncWrites=false (default): a write resolves once appended to the WAL with write(2), no fsync; survives a process crash, not a power loss',
    calls: 'put, batch, getSync, get, iterator; memtableBytes 64 MiB (default)',
    async open(dir) {
      const db = await open(dir)
      return {
        put: (key, value) => db.put(key, value),
        batch: (keys, values) => db.batch(keys.map((key, i) => ({ type: 'put' as const, key, value: values[i] }))),
        get: (key) => db.get(key),
        getSync: (key) => db.getSync(key),
        async scan(visit) {
          let count = 0
          for await (const [key, value] of db.iterator()) {
            visit(key, value)
            count++
          }
          return count
        },
        stats: () => db.stats(),
        close: () => db.close(),
      }
    },
  }
}

// ---- classic-level ----------------------------------------------------------

/** The part of classic-level's API the bench uses. */
interface ClassicLevelDb {
  open(): Promise<void>
  close(): Promise<void>
  put(key: Buffer, value: Buffer): Promise<void>
  batch(ops: Array<{ type: 'put'; key: Buffer; value: Buffer }>): Promise<void>
  get(key: Buffer): Promise<Buffer | undefined>
  getSync?(key: Buffer): Buffer | undefined
  iterator(): { nextv(size: number): Promise<Array<[Buffer, Buffer]>>; close(): Promise<void> }
}
type ClassicLevelModule = {
  ClassicLevel: new (dir: string, options: { keyEncoding: 'buffer'; valueEncoding: 'buffer' }) => ClassicLevelDb
}

/** Entries per `nextv` call of the classic-level scan. */
const CLASSIC_LEVEL_SCAN_ENTRIES = 1000

async function loadClassicLevel(): Promise<EngineAdapter> {
  const specifier = 'classic-level'
  const { ClassicLevel } = (await import(specifier)) as ClassicLevelModule
  return {
    name: 'classic-level',
    version: packageVersion(specifier),
    durability: 'sync=false (LevelDB default): a write resolves once appended to the log with write(2), no fsync; survives a process crash, not a power loss',
    calls: `put, batch, getSync, get, iterator().nextv(${CLASSIC_LEVEL_SCAN_ENTRIES}); LevelDB defaults (4 MiB write buffer, Snappy on)`,
    async open(dir) {
      const db = new ClassicLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
      await db.open()
      return {
        put: (key, value) => db.put(key, value),
        batch: (keys, values) => db.batch(keys.map((key, i) => ({ type: 'put' as const, key, value: values[i] }))),
        get: (key) => db.get(key),
        getSync: typeof db.getSync === 'function' ? (key) => db.getSync!(key) : undefined,
        async scan(visit) {
          const it = db.iterator()
          let count = 0
          try {
            for (;;) {
              const entries = await it.nextv(CLASSIC_LEVEL_SCAN_ENTRIES)
              if (entries.length === 0) break
              for (const [key, value] of entries) visit(key, value)
              count += entries.length
            }
          } finally {
            await it.close()
          }
          return count
        },
        stats: () => undefined,
        close: () => db.close(),
      }
    },
  }
}

// ---- lmdb -------------------------------------------------------------------

/** The part of lmdb-js's API the bench uses. */
interface LmdbDb {
  put(key: Buffer, value: Buffer): Promise<boolean>
  batch(callback: () => void): Promise<boolean>
  get(key: Buffer): Buffer | undefined
  getRange(options?: object): Iterable<{ key: Uint8Array; value: Uint8Array }>
  getStats?(): unknown
  close(): Promise<void>
}
type LmdbModule = { open(options: { path: string; keyEncoding: 'binary'; encoding: 'binary' }): LmdbDb }

async function loadLmdb(): Promise<EngineAdapter> {
  const specifier = 'lmdb'
  const lmdb = (await import(specifier)) as LmdbModule
  return {
    name: 'lmdb',
    version: packageVersion(specifier),
    durability:
      'overlappingSync (lmdb-js default on Linux): writes are batched per event turn into one transaction; a write resolves once its transaction is committed, and the fsync of that commit completes afterwards in the background; survives a process crash, the newest commits may be lost on a power loss',
    calls: 'put, batch(callback), get (sync; also for readrandom-async: getAsync crashes on a missing key, lmdb-js #340), getRange; binary keys and values, no compression, no cache',
    async open(dir) {
      const db = lmdb.open({ path: dir, keyEncoding: 'binary', encoding: 'binary' })
      return {
        put: (key, value) => db.put(key, value),
        batch: (keys, values) =>
          db.batch(() => {
            for (let i = 0; i < keys.length; i++) void db.put(keys[i], values[i])
          }),
        // lmdb-js reads are synchronous by design; its getAsync crashes the process
        // (SIGSEGV) on a missing key in 3.5.6 (lmdb-js issue #340), so the async path awaits get.
        get: async (key) => db.get(key),
        getSync: (key) => db.get(key),
        async scan(visit) {
          let count = 0
          for (const { key, value } of db.getRange()) {
            visit(key, value)
            count++
          }
          return count
        },
        stats: () => db.getStats?.(),
        close: () => db.close(),
      }
    },
  }
}
