/**
 * The commands of `strata` that open a database: `stats`, `compact`,
 * `checkpoint`, and the quick looks `get`, `put`, `del`, `scan`
 * (docs/cli.md). Reading commands open the directory read-only, so they work
 * beside a running `strata serve`; writing ones take the lock and say what to
 * do instead when a server holds it. Exit codes: 0 done, 1 failed (or `get`
 * found nothing), 2 usage.
 */
import type { Command } from 'commander'
import { open, StrataError, type Database, type EngineStats, type IteratorOptions } from '../../index.js'
import { EXIT_PROBLEMS, UsageError, jsonBytes, parseKeyArgument, showBytes, type BytesFormat } from '../tools/output.js'

interface OutputOptions {
  json?: boolean
  hex?: boolean
}

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
}

/** Opens `dir` for reading (no lock; fine beside a server) or writing (takes the lock). */
async function openDatabase(dir: string, mode: 'read' | 'write', command: string): Promise<Database> {
  try {
    return await open(dir, mode === 'read' ? { readOnly: true } : { createIfMissing: false })
  } catch (err) {
    if (err instanceof StrataError && err.code === 'STRATA_NOT_FOUND') throw new UsageError(err.message)
    if (err instanceof StrataError && err.code === 'STRATA_LOCKED') {
      const hint =
        command === 'checkpoint'
          ? 'a running server takes checkpoints itself: POST /v1/admin/checkpoint, or BGSAVE over RESP (docs/server.md)'
          : 'stop the process that has it open (a `strata serve` can do this over its API)'
      throw new StrataError('STRATA_LOCKED', `${err.message}; ${hint}`, { cause: err })
    }
    throw err
  }
}

async function withDatabase<T>(dir: string, mode: 'read' | 'write', command: string, use: (db: Database) => Promise<T>): Promise<T> {
  const db = await openDatabase(dir, mode, command)
  try {
    return await use(db)
  } finally {
    await db.close()
  }
}

function levelSummary(stats: EngineStats): string {
  return stats.levels
    .filter((l) => l.tables > 0)
    .map((l) => `L${l.level}: ${l.tables} table(s), ${l.bytes} bytes`)
    .join('\n')
}

/** The smallest key greater than every key starting with `prefix`; undefined when there is none (all 0xff). */
export function prefixEnd(prefix: Buffer): Buffer | undefined {
  let end = prefix.length
  while (end > 0 && prefix[end - 1] === 0xff) end--
  if (end === 0) return undefined
  const out = Buffer.from(prefix.subarray(0, end))
  out[end - 1]++
  return out
}

function positiveInteger(value: string): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`expected a non-negative integer, got ${JSON.stringify(value)}`)
  return n
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** A key (and value) as the other tools print them in JSON: the text or hex digits and which of the two. */
function jsonEntry(key: Uint8Array, value: Uint8Array | undefined, format: BytesFormat): Record<string, string> {
  const k = jsonBytes(key, format)
  const out: Record<string, string> = { key: k.text, keyEncoding: k.encoding }
  if (value !== undefined) {
    const v = jsonBytes(value, format)
    out.value = v.text
    out.valueEncoding = v.encoding
  }
  return out
}

function printStats(stats: EngineStats, o: OutputOptions): void {
  if (o.json) {
    out(JSON.stringify(stats, null, 2))
    return
  }
  const total = stats.levels.reduce((n, l) => n + l.bytes, 0)
  out(
    [
      `last sequence: ${stats.lastSequence}`,
      `tables: ${stats.levels.reduce((n, l) => n + l.tables, 0)} (${total} bytes)`,
      levelSummary(stats),
      `memtable (WAL not yet in tables): ${stats.memtable.activeBytes} bytes`,
      `pending compaction: ${stats.pendingCompactionBytes} bytes`,
      stats.recovery.warnings.length > 0 ? `warnings:\n  ${stats.recovery.warnings.join('\n  ')}` : '',
    ]
      .filter((l) => l !== '')
      .join('\n'),
  )
}

export function registerDatabaseCommands(program: Command): void {
  program
    .command('stats')
    .description('print the state of a database: sequence, tables per level, sizes (opens it read-only: works beside a running server)')
    .argument('<dir>', 'database directory')
    .option('--json', 'the whole stats() object as JSON')
    .addHelpText('after', '\nExit codes: 0 done, 1 the database could not be opened, 2 usage.')
    .action(async (dir: string, o: OutputOptions) => {
      await withDatabase(dir, 'read', 'stats', async (db) => printStats(db.stats(), o))
    })

  program
    .command('compact')
    .description('flush and compact a key range (default: everything) down to the deepest level; takes the lock')
    .argument('<dir>', 'database directory')
    .option('--start <key>', 'first key of the range (inclusive; 0x… for bytes)')
    .option('--end <key>', 'last key of the range (inclusive; 0x… for bytes)')
    .option('--json', 'print the levels before and after as JSON')
    .addHelpText('after', '\nExit codes: 0 done, 1 failed (e.g. the database is open in another process), 2 usage.')
    .action(async (dir: string, o: { start?: string; end?: string; json?: boolean }) => {
      const start = o.start === undefined ? undefined : parseKeyArgument(o.start)
      const end = o.end === undefined ? undefined : parseKeyArgument(o.end)
      await withDatabase(dir, 'write', 'compact', async (db) => {
        const before = db.stats().levels
        const started = performance.now()
        await db.compactRange(start, end)
        const ms = Math.round(performance.now() - started)
        const after = db.stats()
        if (o.json) out(JSON.stringify({ before, after: after.levels, durationMs: ms }))
        else out(`compacted in ${ms} ms\n${levelSummary(after)}`)
      })
    })

  program
    .command('checkpoint')
    .description('write a consistent, openable copy of a database into <to> (must not exist); tables are hard-linked; takes the lock')
    .argument('<dir>', 'database directory')
    .argument('<to>', 'new directory for the checkpoint')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nA server holding the database takes checkpoints itself: POST /v1/admin/checkpoint or BGSAVE (docs/server.md).\nExit codes: 0 done, 1 failed (e.g. <to> exists, or the database is open in another process), 2 usage.')
    .action(async (dir: string, to: string, o: { json?: boolean }) => {
      await withDatabase(dir, 'write', 'checkpoint', async (db) => {
        const started = performance.now()
        const r = await db.checkpoint(to)
        const durationMs = Math.round(performance.now() - started)
        if (o.json) out(JSON.stringify({ ...r, dir: to, durationMs }))
        else out(`checkpoint ${to}: sequence ${r.sequence}, ${r.files} files, ${r.bytes} bytes (${r.copiedBytes} copied, the rest hard-linked), ${durationMs} ms`)
      })
    })

  program
    .command('get')
    .description('print the value of a key (raw bytes; opens the database read-only)')
    .argument('<dir>', 'database directory')
    .argument('<key>', 'the key (0x… for bytes)')
    .option('--json', 'print {key, keyEncoding, value, valueEncoding, version} as JSON')
    .option('--hex', 'with --json: always hex')
    .addHelpText('after', '\nExit codes: 0 found, 1 not found (or the database could not be opened), 2 usage.')
    .action(async (dir: string, keyText: string, o: OutputOptions) => {
      const key = parseKeyArgument(keyText)
      await withDatabase(dir, 'read', 'get', async (db) => {
        const entry = await db.getEntry(key)
        if (entry === undefined) {
          process.stderr.write(`strata get: ${showBytes(key, { hex: false })} not found\n`)
          process.exitCode = EXIT_PROBLEMS
          return
        }
        const format: BytesFormat = { hex: o.hex === true }
        if (o.json) out(JSON.stringify({ ...jsonEntry(key, entry.value, format), version: entry.version }))
        else process.stdout.write(entry.value)
      })
    })

  program
    .command('put')
    .description('store a value under a key (the value from the argument, or stdin when it is "-" or missing); takes the lock')
    .argument('<dir>', 'database directory')
    .argument('<key>', 'the key (0x… for bytes)')
    .argument('[value]', 'the value (0x… for bytes); "-" or none reads stdin')
    .option('--sync', 'fsync before exiting')
    .addHelpText('after', '\nExit codes: 0 stored, 1 failed (e.g. the database is open in another process), 2 usage.')
    .action(async (dir: string, keyText: string, valueText: string | undefined, o: { sync?: boolean }) => {
      const key = parseKeyArgument(keyText)
      const value = valueText === undefined || valueText === '-' ? await readStdin() : parseKeyArgument(valueText)
      await withDatabase(dir, 'write', 'put', (db) => db.put(key, value, { sync: o.sync === true }))
    })

  program
    .command('del')
    .description('delete a key; takes the lock')
    .argument('<dir>', 'database directory')
    .argument('<key>', 'the key (0x… for bytes)')
    .option('--sync', 'fsync before exiting')
    .addHelpText('after', '\nExit codes: 0 done (also when the key was absent), 1 failed, 2 usage.')
    .action(async (dir: string, keyText: string, o: { sync?: boolean }) => {
      const key = parseKeyArgument(keyText)
      await withDatabase(dir, 'write', 'del', (db) => db.delete(key, { sync: o.sync === true }))
    })

  program
    .command('scan')
    .description('list entries in key order (opens the database read-only): one "key<TAB>value" line each, text in JSON quotes or 0x… hex')
    .argument('<dir>', 'database directory')
    .option('--prefix <prefix>', 'only keys starting with this (0x… for bytes)')
    .option('--gte <key>', 'keys >= this')
    .option('--lt <key>', 'keys < this')
    .option('--limit <n>', 'at most n entries', positiveInteger)
    .option('--reverse', 'in descending key order')
    .option('--keys-only', 'print keys only')
    .option('--json', 'one JSON object per line (NDJSON): {key, keyEncoding, value, valueEncoding}')
    .option('--hex', 'always print hex')
    .addHelpText('after', '\nExit codes: 0 done, 1 failed, 2 usage.')
    .action(async (dir: string, o: OutputOptions & { prefix?: string; gte?: string; lt?: string; limit?: number; reverse?: boolean; keysOnly?: boolean }) => {
      const range: IteratorOptions = { reverse: o.reverse === true, values: o.keysOnly !== true }
      if (o.limit !== undefined) range.limit = o.limit
      if (o.prefix !== undefined) {
        if (o.gte !== undefined || o.lt !== undefined) throw new UsageError('--prefix cannot be combined with --gte/--lt')
        const prefix = parseKeyArgument(o.prefix)
        range.gte = prefix
        const end = prefixEnd(prefix)
        if (end !== undefined) range.lt = end
      }
      if (o.gte !== undefined) range.gte = parseKeyArgument(o.gte)
      if (o.lt !== undefined) range.lt = parseKeyArgument(o.lt)
      const format: BytesFormat = { hex: o.hex === true }
      await withDatabase(dir, 'read', 'scan', async (db) => {
        const lines: string[] = []
        const flush = async (): Promise<void> => {
          if (lines.length === 0) return
          const text = lines.join('\n') + '\n'
          lines.length = 0
          if (!process.stdout.write(text)) await new Promise<void>((resolve) => process.stdout.once('drain', resolve))
        }
        for await (const [key, value] of db.iterator(range)) {
          if (o.json) lines.push(JSON.stringify(jsonEntry(key, o.keysOnly ? undefined : value, format)))
          else lines.push(o.keysOnly ? showBytes(key, format) : `${showBytes(key, format)}\t${showBytes(value, format)}`)
          if (lines.length >= 1000) await flush()
        }
        await flush()
      })
    })
}
