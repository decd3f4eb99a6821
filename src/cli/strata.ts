#!/usr/bin/env node
/**
 * The `strata` command line: `bench` (a db_bench-style comparison with
 * classic-level and lmdb), `serve`, the commands that open a database
 * (stats, compact, checkpoint, get, put, del, scan) and the inspection tools
 * (check, dump, repair). Exit codes (docs/cli.md): 0 done, 1 failed or
 * problems found, 2 usage (bad arguments, a path that does not exist).
 */
import { Command, CommanderError } from 'commander'
import { addBenchCommand } from './bench/command.js'
import { registerServeCommand } from '../server/index.js'
import { ownVersion } from './bench/engines.js'
import { registerDatabaseCommands } from './database/commands.js'
import { EXIT_PROBLEMS, EXIT_USAGE, UsageError } from './tools/output.js'

function main(): Promise<unknown> {
  const program = new Command('strata').description('stratadb command line').version(ownVersion())
  // Usage errors exit 2 (commander's own would exit 1, the code of a failed operation).
  program.exitOverride()
  addBenchCommand(program)
  registerServeCommand(program)
  registerDatabaseCommands(program)
  for (const command of program.commands) command.exitOverride()
  return program.parseAsync(process.argv)
}

// A peer's stray rejection must not end the whole bench.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`warning: unhandled rejection: ${reason instanceof Error ? reason.message : String(reason)}\n`)
})

main().catch((err: unknown) => {
  if (err instanceof CommanderError) {
    // Help and version exit 0; commander has already printed its message.
    process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE
    return
  }
  const command = process.argv[2] ?? 'strata'
  process.stderr.write(`strata ${command}: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = err instanceof UsageError ? EXIT_USAGE : EXIT_PROBLEMS
})
