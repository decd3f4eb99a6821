#!/usr/bin/env node
/**
 * The `strata` command line. For now one subcommand: `strata bench`, a
 * db_bench-style comparison of stratadb with classic-level and lmdb.
 */
import { Command } from 'commander'
import { addBenchCommand } from './bench/command.js'
import { registerServeCommand } from '../server/index.js'
import { ownVersion } from './bench/engines.js'

function main(): Promise<unknown> {
  const program = new Command('strata').description('stratadb command line').version(ownVersion())
  addBenchCommand(program)
  registerServeCommand(program)
  return program.parseAsync(process.argv)
}

// A peer's stray rejection must not end the whole bench.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`warning: unhandled rejection: ${reason instanceof Error ? reason.message : String(reason)}\n`)
})

main().catch((err: unknown) => {
  process.stderr.write(`strata: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
