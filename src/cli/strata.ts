#!/usr/bin/env node
/**
 * The `strata` command line: `bench` (a db_bench-style comparison with
 * classic-level and lmdb), `serve`, the commands that open a database
 * (stats, compact, checkpoint, get, put, del, scan) and the inspection tools
 * (check, dump, repair), and `cluster init|status` (a replicated cluster's
 * config and state in etcd). Exit codes (docs/cli.md): 0 done, 1 failed or
 * problems found, 2 usage (bad arguments, a path that does not exist).
 *
 * Each group's module is loaded only when one of its commands runs (help
 * loads them all): a `strata get` does not pay for the server and the bench
 * (about 0.3 s of CPU per run).
 */
import { Command, CommanderError } from 'commander'
import { ownVersion } from './bench/engines.js'
import { EXIT_PROBLEMS, EXIT_USAGE, UsageError } from './tools/output.js'
import { TOOL_COMMANDS } from './tools/commands.js'

/** The commands of src/cli/database/commands.ts (kept here so that choosing a group loads nothing). */
const DATABASE_COMMANDS = ['stats', 'compact', 'checkpoint', 'get', 'put', 'del', 'scan'] as const

interface Group {
  commands: readonly string[]
  register: () => Promise<(program: Command) => unknown>
}

const GROUPS: Group[] = [
  { commands: ['bench'], register: async () => (await import('./bench/command.js')).addBenchCommand },
  { commands: ['serve'], register: async () => (await import('../server/index.js')).registerServeCommand },
  { commands: TOOL_COMMANDS, register: async () => (await import('./tools/commands.js')).addToolCommands },
  { commands: DATABASE_COMMANDS, register: async () => (await import('./database/commands.js')).registerDatabaseCommands },
  { commands: ['cluster'], register: async () => (await import('./cluster/commands.js')).registerClusterCommands },
]

/** Set once commander printed an error of its own (a parse error); a CommanderError thrown by a command's action is printed by main's catch. */
let commanderPrinted = false

async function main(): Promise<unknown> {
  const program = new Command('strata').description('stratadb command line').version(ownVersion())
  // Usage errors exit 2 (commander's own would exit 1, the code of a failed operation).
  program.exitOverride()
  // Inherited by the commands registered below.
  program.configureOutput({
    writeErr: (text) => {
      commanderPrinted = true
      process.stderr.write(text)
    },
  })
  const name = process.argv[2]
  const chosen = GROUPS.filter((g) => g.commands.includes(name))
  for (const group of chosen.length > 0 ? chosen : GROUPS) (await group.register())(program)
  for (const command of program.commands) command.exitOverride()
  return program.parseAsync(process.argv)
}

// A peer's stray rejection must not end the whole bench.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`warning: unhandled rejection: ${reason instanceof Error ? reason.message : String(reason)}\n`)
})

main().catch((err: unknown) => {
  const command = process.argv[2] ?? 'strata'
  if (err instanceof CommanderError) {
    // Help and version exit 0. A parse error was printed by commander; one an action threw was not.
    if (err.exitCode !== 0 && !commanderPrinted) process.stderr.write(`strata ${command}: ${err.message}\n`)
    process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE
    return
  }
  process.stderr.write(`strata ${command}: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = err instanceof UsageError ? EXIT_USAGE : EXIT_PROBLEMS
})
