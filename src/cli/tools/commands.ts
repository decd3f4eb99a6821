/**
 * Registers the operator's inspection tools with the `strata` program:
 * `check`, `dump` and `repair` (docs/cli.md, "Command line: inspection and
 * repair"). Each exits 0 on success, 1 when it found problems or failed, 2 on
 * a usage error; errors go to stderr as `strata <command>: message`.
 */
import { Command, CommanderError, Option } from 'commander'
import type { DumpType } from './dump.js'
import { EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, Out, UsageError, parseKeyArgument } from './output.js'

/** The subcommands this module adds; each one's module is loaded when it runs, so other commands start without them. */
export const TOOL_COMMANDS = ['check', 'dump', 'repair'] as const

const DUMP_TYPES: readonly DumpType[] = ['table', 'blob', 'wal', 'manifest']

const EXIT_CODES = (ok: string, problems: string): string =>
  ['', 'Exit codes:', `  0  ${ok}`, `  1  ${problems}`, '  2  usage error: bad arguments, or the path does not exist'].join('\n')

/** Usage errors (commander's own included) exit 2 with `strata <name>: message` on stderr. */
function asTool(cmd: Command, name: string): Command {
  return cmd
    .configureOutput({
      outputError: (text, write) => write(`strata ${name}: ${text.replace(/^error: /, '')}`),
    })
    .exitOverride((err: CommanderError) => {
      // Help and version exit as commander decides (0); every other complaint of commander's is a usage error.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') return
      process.exit(EXIT_USAGE)
    })
}

/** Runs a tool's body: its exit code, or the error on stderr with code 2 (usage) or 1. */
async function run(name: string, body: (out: Out) => Promise<number>): Promise<void> {
  const out = new Out()
  try {
    const code = await body(out)
    await out.flush()
    process.exitCode = code
  } catch (err) {
    await out.flush().catch(() => undefined)
    process.stderr.write(`strata ${name}: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = err instanceof UsageError ? EXIT_USAGE : EXIT_PROBLEMS
  }
}

interface JsonOption {
  json?: boolean
}

interface DumpCliOptions extends JsonOption {
  keysOnly?: boolean
  from?: string
  to?: string
  hex?: boolean
  type?: DumpType
}

export function addToolCommands(program: Command): void {
  asTool(program.command('check'), 'check')
    .summary('verify every checksum, the manifest\'s tables and blob files, and key order (read-only)')
    .description(
      'verify a database directory without writing anything (no LOCK, files opened read-only; works while another process has it open): ' +
        'the STRATADB marker, CURRENT and every manifest record (range tombstones included), every table the manifest names (size, footer, index, filter, point index, ' +
        'every data block checksum, key order, metadata), every blob file it names (size, header, every record and value checksum, footer totals), ' +
        'every blob reference of the tables (it names a record of a blob file the manifest lists), tables of a level not overlapping, ' +
        'and every WAL record at or above the log number (checksums, increasing sequences). Reports every problem with file and offset, then a summary',
    )
    .argument('<dir>', 'database directory')
    .option('--json', 'print one JSON document (problems, warnings, what was checked) instead of text')
    .addHelpText('after', `${EXIT_CODES('clean: no problem (warnings, such as a torn tail in the last WAL, allowed)', 'problems found')}`)
    .action((dir: string, opts: JsonOption) =>
      run('check', async (out) => {
        const { printCheck, runCheck } = await import('./check.js')
        const report = await runCheck(dir)
        if (opts.json) await out.line(JSON.stringify(report, null, 2))
        else await printCheck(report, out)
        return report.ok ? EXIT_OK : EXIT_PROBLEMS
      }),
    )

  asTool(program.command('dump'), 'dump')
    .summary('print a table, blob file, WAL or manifest file')
    .description(
      'print a table (.sst: footer and properties, index entries, data blocks with offsets and sizes, entries with sequence and kind; ' +
        'an entry whose value is in a blob file as "blob" with its reference), a blob file (.blob: every record with offset, key, value length, ' +
        'checksum and value, and the totals), a WAL (.log: every record with offset, first sequence, entry count and entries, ' +
        'range deletes as delete-range [start, end)) or a manifest (MANIFEST-*: every edit, blob files added and their garbage and range tombstones ' +
        'added and removed included). ' +
        'Keys and values are shown as "text" when they are printable UTF-8, else as 0x-prefixed hex',
    )
    .argument('<file>', 'the file: NNNNNN.sst, NNNNNN.blob, NNNNNN.log or MANIFEST-NNNNNN')
    .option('--keys-only', 'leave values out')
    .option('--json', 'print one JSON document instead of text (keys and values as {text, encoding: "utf8" | "hex"})')
    .option('--from <key>', 'only entries whose key is >= key (tables, blob files and WALs); 0x-prefixed hex is bytes')
    .option('--to <key>', 'only entries whose key is <= key (tables, blob files and WALs); 0x-prefixed hex is bytes')
    .option('--hex', 'show every key and value as hex')
    .addOption(new Option('--type <type>', 'what the file is, when its name does not say').choices(DUMP_TYPES))
    .addHelpText('after', EXIT_CODES('the whole file was read (a torn WAL tail is only noted)', 'part of the file is damaged (the rest is still printed)'))
    .action((file: string, opts: DumpCliOptions) =>
      run('dump', async (out) => {
        const from = opts.from === undefined ? undefined : parseKeyArgument(opts.from)
        const to = opts.to === undefined ? undefined : parseKeyArgument(opts.to)
        if (from !== undefined && to !== undefined && Buffer.compare(from, to) > 0) throw new UsageError('--from is above --to')
        const { runDump } = await import('./dump.js')
        return runDump(file, { keysOnly: opts.keysOnly === true, json: opts.json === true, hex: opts.hex === true, from, to, type: opts.type }, out)
      }),
    )

  asTool(program.command('repair'), 'repair')
    .summary('salvage a damaged database; damaged files are moved to lost/, never deleted')
    .description(
      'salvage a damaged database (as LevelDB\'s RepairDB): takes the LOCK, keeps every entry of every data block and WAL record whose checksum ' +
        'verifies (an entry whose value is in a blob file: when that value reads and verifies), writes new tables for what it salvaged and a fresh ' +
        'manifest naming exactly the tables kept, the blob files they reference and the range tombstones (from the manifest and the WALs\' range deletes), ' +
        'and moves damaged or unused files into <dir>/lost/ (it never deletes a file). Reports what was lost (with a warning when range deletes ' +
        'flushed into a lost manifest may be lost), then opens the database to verify it',
    )
    .argument('<dir>', 'database directory (not open in any process)')
    .option('--json', 'print one JSON document (every file\'s fate, what was lost, the result) instead of text')
    .addHelpText('after', EXIT_CODES('repaired: the database opens and every key and value reads', 'the repair failed, was refused (database open elsewhere, not a stratadb directory), or the result does not open'))
    .action((dir: string, opts: JsonOption) =>
      run('repair', async (out) => {
        const { printRepair, runRepair } = await import('./repair.js')
        const report = await runRepair(dir)
        if (opts.json) await out.line(JSON.stringify(report, null, 2))
        else await printRepair(report, out)
        return report.verified ? EXIT_OK : EXIT_PROBLEMS
      }),
    )
}
