import * as fs from 'node:fs'
import { createRequire } from 'node:module'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { EngineName } from './config.js'

/**
 * Adapters: one way to drive each engine through its natural fast path with
 * its default durability. The peers (classic-level, lmdb) are development
 * dependencies of stratadb, not installed with the package: they are loaded
 * with a dynamic import, and a missing one is reported (with the npm command
 * that adds it) and skipped, never fatal.
 */

/** Called once per entry of a scan, in key order. */
export type EntryVisitor = (key: Uint8Array, value: Uint8Array) => void

/** Memory budgets a workload may ask for (bigdata); each adapter maps them onto its own options. */
export interface OpenSettings {
  /** Write buffer: stratadb memtableBytes, classic-level writeBufferSize. */
  writeBufferBytes?: number
  /** Block cache: stratadb blockCacheBytes, classic-level cacheSize. */
  cacheBytes?: number
  /** Further stratadb open options (--min-blob-bytes, --stratadb-options: stratadbOpenOptions), applied after the ones above; the peers get none of them. */
  stratadbOptions?: Readonly<Record<string, unknown>>
}

/** stratadb's options of `s`, as they read in an open() call. */
function stratadbOptionList(s: OpenSettings): string {
  return [
    s.writeBufferBytes !== undefined ? `memtableBytes: ${mib(s.writeBufferBytes)}` : '',
    s.cacheBytes !== undefined ? `blockCacheBytes: ${mib(s.cacheBytes)}` : '',
    ...Object.entries(s.stratadbOptions ?? {}).map(([name, value]) => `${name}: ${JSON.stringify(value)}`),
  ]
    .filter((x) => x !== '')
    .join(', ')
}

/** An open database, as the workloads see it. */
export interface BenchDb {
  /** One asynchronous put; resolves when the engine acknowledges it (default durability). */
  put(key: Buffer, value: Buffer): Promise<unknown>
  /** One put that resolves only once it is on stable storage (fsync); see EngineAdapter.syncWrites. */
  putDurable(key: Buffer, value: Buffer): Promise<unknown>
  /** One asynchronous delete. */
  del(key: Buffer): Promise<unknown>
  /** One atomic batch of puts (`keys[i]` gets `values[i]`). */
  batch(keys: readonly Buffer[], values: readonly Buffer[]): Promise<unknown>
  /** Asynchronous point read; undefined when missing. */
  get(key: Buffer): Promise<Uint8Array | undefined>
  /** Synchronous point read, when the engine has one. */
  readonly getSync: ((key: Buffer) => Uint8Array | undefined) | undefined
  /** Visits every entry in key order (descending with `reverse`); resolves with the count. */
  scan(visit: EntryVisitor, reverse?: boolean): Promise<number>
  /** Visits at most `limit` entries from the first key >= `from`; resolves with the count. */
  seek(from: Buffer, limit: number, visit: EntryVisitor): Promise<number>
  /** The same through the engine's synchronous range read, when it has one; returns the count. */
  readonly seekSync: ((from: Buffer, limit: number, visit: EntryVisitor) => number) | undefined
  /**
   * Adds one to the decimal counter stored at `key` (absent = 0) in a
   * read-modify-write transaction; resolves with the number of attempts (1 =
   * committed without a conflict). Undefined when the engine has no transactions.
   */
  readonly increment: ((key: Buffer) => Promise<number>) | undefined
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
  /** How putDurable (fillsync) makes a write durable. */
  readonly syncWrites: string
  /** The transaction used by the increment workloads, or why there is none. */
  readonly transactions: { supported: true; how: string } | { supported: false; why: string }
  /** How `settings` map onto the engine's options (printed by bigdata). */
  tuning(settings: OpenSettings): string
  open(dir: string, settings?: OpenSettings): Promise<BenchDb>
}

/** Loads the adapter of `name`; throws when the engine cannot be loaded. */
export async function loadEngine(name: EngineName): Promise<EngineAdapter> {
  switch (name) {
    case 'stratadb':
      return loadStratadb()
    case 'stratadb-level':
      return loadStratadbLevel()
    case 'classic-level':
      return loadClassicLevel()
    case 'lmdb':
      return loadLmdb()
  }
}

const mib = (bytes: number): string => `${+(bytes / 2 ** 20).toFixed(1)} MiB`

/** The decimal counter after `value` (absent = 0). */
export function nextCount(value: Uint8Array | undefined): Buffer {
  const n = value === undefined ? 0 : Number(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1'))
  return Buffer.from(String(n + 1), 'latin1')
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

/** This package's own package.json (dist/cli/bench/ → three levels up); undefined when unreadable. */
function ownPackageJson(): { version?: string; devDependencies?: Record<string, string> } | undefined {
  try {
    const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'package.json')
    return JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: string; devDependencies?: Record<string, string> }
  } catch {
    return undefined
  }
}

/** This package's own version. */
export function ownVersion(): string {
  return ownPackageJson()?.version ?? 'unknown'
}

/** The engines the bench compares stratadb with: development dependencies, loaded when present. */
export const PEER_ENGINES = ['classic-level', 'lmdb'] as const

/**
 * The npm command that installs the peers next to stratadb without recording
 * them in the project, with the version ranges stratadb is developed against.
 */
export function peerInstallCommand(): string {
  const ranges = ownPackageJson()?.devDependencies ?? {}
  const specs = PEER_ENGINES.map((name) => (ranges[name] !== undefined ? `${name}@${ranges[name]}` : name))
  return `npm install --no-save ${specs.join(' ')}`
}

/**
 * Imports a peer. When the package itself cannot be found, the error says so
 * in one line and names the npm command that adds it; any other failure (a
 * native binding that does not load, a missing dependency of the peer) is
 * passed on unchanged.
 */
async function importPeer(specifier: (typeof PEER_ENGINES)[number]): Promise<unknown> {
  try {
    return await import(specifier)
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown }
    const missing = e.code === 'ERR_MODULE_NOT_FOUND' && typeof e.message === 'string' && e.message.includes(`'${specifier}'`)
    if (!missing) throw err
    throw new Error(
      `${specifier} is not installed (the bench's peers are development dependencies of stratadb, not installed with it); ` +
        `add them with \`${peerInstallCommand()}\` (in a clone of stratadb, \`npm install\` adds them)`,
      { cause: err },
    )
  }
}

// ---- stratadb ---------------------------------------------------------------

const SYNC_WRITE = Object.freeze({ sync: true })

async function loadStratadb(): Promise<EngineAdapter> {
  const { open, DEFAULT_OPTIONS } = await import('../../index.js')
  const defaults = `memtableBytes ${mib(DEFAULT_OPTIONS.memtableBytes)}, blockCacheBytes ${mib(DEFAULT_OPTIONS.blockCacheBytes)} (defaults on this machine; the cache unless --cache-mib)`
  return {
    name: 'stratadb',
    version: ownVersion(),
    durability: 'syncWrites=false (default): a write resolves once appended to the WAL with write(2), no fsync; survives a process crash, not a power loss',
    calls: `put, batch, getSync, get, delete, iterator (nextSync; for await in seekrandom-async and the scans), transaction; ${defaults}`,
    syncWrites: 'put(key, value, { sync: true }): the WAL is fsynced before the put resolves (concurrent writes share an fsync)',
    transactions: {
      supported: true,
      how: 'db.transaction(async (tx) => { n = await tx.get(k); tx.put(k, n + 1) }, { retries: Infinity }): optimistic, retried on conflict',
    },
    tuning: (s) => `open(dir, { ${stratadbOptionList(s)} })`,
    async open(dir, settings) {
      const db = await open(dir, { memtableBytes: settings?.writeBufferBytes, blockCacheBytes: settings?.cacheBytes, ...settings?.stratadbOptions })
      return {
        put: (key, value) => db.put(key, value),
        putDurable: (key, value) => db.put(key, value, SYNC_WRITE),
        del: (key) => db.delete(key),
        batch: (keys, values) => db.batch(keys.map((key, i) => ({ type: 'put' as const, key, value: values[i] }))),
        get: (key) => db.get(key),
        getSync: (key) => db.getSync(key),
        async scan(visit, reverse = false) {
          let count = 0
          for await (const [key, value] of db.iterator(reverse ? { reverse } : undefined)) {
            visit(key, value)
            count++
          }
          return count
        },
        async seek(from, limit, visit) {
          let count = 0
          for await (const [key, value] of db.iterator({ gte: from, limit })) {
            visit(key, value)
            count++
          }
          return count
        },
        seekSync(from, limit, visit) {
          let count = 0
          const it = db.iterator({ gte: from, limit })
          for (let entry = it.nextSync(); entry !== undefined; entry = it.nextSync()) {
            visit(entry[0], entry[1])
            count++
          }
          return count
        },
        async increment(key) {
          let attempts = 0
          await db.transaction(
            async (tx) => {
              attempts++
              tx.put(key, nextCount(await tx.get(key)))
            },
            { retries: Infinity },
          )
          return attempts
        },
        stats: () => db.stats(),
        close: () => db.close(),
      }
    },
  }
}

// ---- abstract-level (classic-level, and stratadb through StrataLevel) -------

/** The part of the abstract-level API the bench uses (ClassicLevel and StrataLevel both have it). */
interface LevelDb {
  readonly supports: { getSync?: boolean }
  open(): Promise<void>
  close(): Promise<void>
  put(key: Buffer, value: Buffer, options?: { sync?: boolean }): Promise<void>
  del(key: Buffer): Promise<void>
  batch(ops: Array<{ type: 'put'; key: Buffer; value: Buffer }>): Promise<void>
  get(key: Buffer): Promise<Buffer | undefined>
  getSync(key: Buffer): Buffer | undefined
  iterator(options?: { reverse?: boolean; gte?: Buffer; limit?: number }): {
    nextv(size: number): Promise<Array<[Buffer, Buffer]>>
    close(): Promise<void>
  }
}

/** Entries per `nextv` call of an abstract-level scan. */
const LEVEL_SCAN_ENTRIES = 1000

const LEVEL_CALLS = `put, batch, getSync, get, del, iterator().nextv(${LEVEL_SCAN_ENTRIES}); buffer encodings`

/** Drives an opened abstract-level database; the same code for ClassicLevel and StrataLevel. */
function levelBenchDb(db: LevelDb, stats: () => unknown): BenchDb {
  const visitAll = async (it: ReturnType<LevelDb['iterator']>, size: number, visit: EntryVisitor, limit = Infinity): Promise<number> => {
    let count = 0
    try {
      while (count < limit) {
        const entries = await it.nextv(Math.min(size, limit - count))
        if (entries.length === 0) break
        for (const [key, value] of entries) visit(key, value)
        count += entries.length
      }
    } finally {
      await it.close()
    }
    return count
  }
  return {
    put: (key, value) => db.put(key, value),
    putDurable: (key, value) => db.put(key, value, SYNC_WRITE),
    del: (key) => db.del(key),
    batch: (keys, values) => db.batch(keys.map((key, i) => ({ type: 'put' as const, key, value: values[i] }))),
    get: (key) => db.get(key),
    getSync: db.supports.getSync === true ? (key) => db.getSync(key) : undefined,
    scan: (visit, reverse = false) => visitAll(db.iterator(reverse ? { reverse } : undefined), LEVEL_SCAN_ENTRIES, visit),
    seek: (from, limit, visit) => visitAll(db.iterator({ gte: from, limit }), limit, visit, limit),
    // abstract-level iterators are asynchronous only.
    seekSync: undefined,
    increment: undefined,
    stats,
    close: () => db.close(),
  }
}

type LevelConstructor = new (dir: string, options: Record<string, unknown>) => LevelDb

async function loadStratadbLevel(): Promise<EngineAdapter> {
  const { StrataLevel } = (await import('../../level/index.js')) as unknown as { StrataLevel: LevelConstructor }
  return {
    name: 'stratadb-level',
    version: ownVersion(),
    durability: 'stratadb through StrataLevel (abstract-level), same durability as stratadb: no fsync unless { sync: true }',
    calls: `${LEVEL_CALLS}, the same calls as classic-level; stratadb defaults`,
    syncWrites: 'put(key, value, { sync: true }) (StrataLevel passes it on as stratadb\'s sync write)',
    transactions: { supported: false, why: 'abstract-level has no transactions' },
    tuning: (s) => `new StrataLevel(dir, { ${stratadbOptionList(s)} })`,
    async open(dir, settings) {
      const options: Record<string, unknown> = { keyEncoding: 'buffer', valueEncoding: 'buffer' }
      if (settings?.writeBufferBytes !== undefined) options.memtableBytes = settings.writeBufferBytes
      if (settings?.cacheBytes !== undefined) options.blockCacheBytes = settings.cacheBytes
      Object.assign(options, settings?.stratadbOptions)
      const db = new StrataLevel(dir, options)
      await db.open()
      return levelBenchDb(db, () => undefined)
    },
  }
}

// ---- classic-level ----------------------------------------------------------

async function loadClassicLevel(): Promise<EngineAdapter> {
  const specifier = 'classic-level'
  const { ClassicLevel } = (await importPeer(specifier)) as { ClassicLevel: LevelConstructor }
  return {
    name: 'classic-level',
    version: packageVersion(specifier),
    durability: 'sync=false (LevelDB default): a write resolves once appended to the log with write(2), no fsync; survives a process crash, not a power loss',
    calls: `${LEVEL_CALLS}; LevelDB defaults (4 MiB write buffer, 8 MiB cache unless --cache-mib, Snappy on)`,
    syncWrites: 'put(key, value, { sync: true }): LevelDB fsyncs its log before the write returns (concurrent writes share an fsync)',
    transactions: { supported: false, why: 'classic-level (LevelDB) has no transactions' },
    tuning: (s) =>
      `new ClassicLevel(dir, { ${[
        s.writeBufferBytes !== undefined ? `writeBufferSize: ${mib(s.writeBufferBytes)}` : '',
        s.cacheBytes !== undefined ? `cacheSize: ${mib(s.cacheBytes)}` : '',
      ]
        .filter((x) => x !== '')
        .join(', ')} })`,
    async open(dir, settings) {
      const options: Record<string, unknown> = { keyEncoding: 'buffer', valueEncoding: 'buffer' }
      if (settings?.writeBufferBytes !== undefined) options.writeBufferSize = settings.writeBufferBytes
      if (settings?.cacheBytes !== undefined) options.cacheSize = settings.cacheBytes
      const db = new ClassicLevel(dir, options)
      await db.open()
      return levelBenchDb(db, () => undefined)
    },
  }
}

// ---- lmdb -------------------------------------------------------------------

/** The part of lmdb-js's API the bench uses. */
interface LmdbDb {
  put(key: Buffer, value: Buffer): Promise<boolean>
  putSync(key: Buffer, value: Buffer): boolean
  remove(key: Buffer): Promise<boolean>
  batch(callback: () => void): Promise<boolean>
  transaction(callback: () => void): Promise<unknown>
  get(key: Buffer): Buffer | undefined
  getRange(options?: object): Iterable<{ key: Uint8Array; value: Uint8Array }>
  /** Resolves once every previous write is committed and fsynced. */
  readonly flushed: PromiseLike<unknown>
  getStats?(): unknown
  close(): Promise<void>
}
type LmdbModule = { open(options: { path: string; keyEncoding: 'binary'; encoding: 'binary' }): LmdbDb }

async function loadLmdb(): Promise<EngineAdapter> {
  const specifier = 'lmdb'
  const lmdb = (await importPeer(specifier)) as LmdbModule
  return {
    name: 'lmdb',
    version: packageVersion(specifier),
    durability:
      'overlappingSync (lmdb-js default on Linux): writes are batched per event turn into one transaction; a write resolves once its transaction is committed, and the fsync of that commit completes afterwards in the background; survives a process crash, the newest commits may be lost on a power loss',
    calls:
      'put, batch(callback), get (sync; also for readrandom-async: getAsync crashes on a missing key, lmdb-js #340), remove, getRange, transaction; binary keys and values, no compression, no cache',
    syncWrites:
      'await put(key, value), then await db.flushed: with overlappingSync a put resolves at commit and db.flushed once that commit is fsynced (lmdb-js has no per-write sync flag; writes of one event turn share a commit and its fsync)',
    transactions: {
      supported: true,
      how: 'db.transaction(() => { n = db.get(k); db.putSync(k, n + 1) }): callbacks run one after the other inside the single write transaction, so there are no conflicts',
    },
    tuning: () => 'open({ path }) with lmdb-js defaults: no memtable or cache settings (reads go through the OS page cache of the memory map)',
    async open(dir) {
      const db = lmdb.open({ path: dir, keyEncoding: 'binary', encoding: 'binary' })
      const lmdbSeek = (from: Buffer, limit: number, visit: EntryVisitor): number => {
        let count = 0
        for (const { key, value } of db.getRange({ start: from, limit })) {
          visit(key, value)
          count++
        }
        return count
      }
      return {
        put: (key, value) => db.put(key, value),
        async putDurable(key, value) {
          await db.put(key, value)
          await db.flushed
        },
        del: (key) => db.remove(key),
        batch: (keys, values) =>
          db.batch(() => {
            for (let i = 0; i < keys.length; i++) void db.put(keys[i], values[i])
          }),
        // lmdb-js reads are synchronous by design; its getAsync crashes the process
        // (SIGSEGV) on a missing key in 3.5.6 (lmdb-js issue #340), so the async path awaits get.
        get: async (key) => db.get(key),
        getSync: (key) => db.get(key),
        async scan(visit, reverse = false) {
          let count = 0
          for (const { key, value } of db.getRange(reverse ? { reverse } : undefined)) {
            visit(key, value)
            count++
          }
          return count
        },
        // getRange is synchronous: seekrandom-async awaits the same loop.
        seek: async (from, limit, visit) => lmdbSeek(from, limit, visit),
        seekSync: (from, limit, visit) => lmdbSeek(from, limit, visit),
        async increment(key) {
          await db.transaction(() => {
            db.putSync(key, nextCount(db.get(key)))
          })
          return 1
        },
        stats: () => db.getStats?.(),
        close: () => db.close(),
      }
    },
  }
}
