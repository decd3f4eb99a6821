/**
 * `strata serve`: command-line options, startup banner (the bound ports, so
 * that `--http 127.0.0.1:0` is usable by scripts and tests), and the signal
 * handling of the process: SIGTERM/SIGINT stop accepting, finish in-flight
 * requests, close the database and exit 0; a second signal exits at once.
 */
import * as path from 'node:path'
import { Command, InvalidArgumentError } from 'commander'
import { readTokenFile } from './auth.js'
import { DEFAULT_LIMITS, DEFAULT_SERVER_OPTIONS, type ServerLimits, type ServerOptionsInput } from './options.js'
import { startServer, type StrataServer } from './server.js'

/** Options of `strata serve` as commander hands them over. */
export interface ServeCliOptions {
  dir: string
  http: string
  resp: string
  sync?: boolean
  tokenFile?: string
  maxConnections?: number
  maxValueBytes?: number
  maxKeyBytes?: number
  maxBodyBytes?: number
  maxPendingWrites?: number
  maxWriteStallMs?: number
  shutdownTimeoutMs?: number
}

function nonNegativeInteger(value: string): number {
  const n = Number(value.replaceAll('_', ''))
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer')
  return n
}

/** Adds the `serve` subcommand to a commander program (the `strata` CLI). */
export function registerServeCommand(program: Command): Command {
  const d = DEFAULT_SERVER_OPTIONS
  return program
    .command('serve')
    .description('serve a data directory over HTTP and the Redis protocol (RESP)')
    .option('--dir <path>', 'data directory (created when missing)', d.dir)
    .option('--http <host:port>', 'HTTP listen address; port 0 = ephemeral; "off" disables', d.http)
    .option('--resp <host:port>', 'RESP (Redis protocol) listen address; port 0 = ephemeral; "off" disables', d.resp)
    .option('--sync', 'fsync every write before acknowledging it (survives power loss, not only kill -9)')
    .option('--token-file <file>', 'file holding the shared token (HTTP "Authorization: Bearer", RESP AUTH); required for non-loopback addresses')
    .option('--max-connections <n>', `connections per protocol (default ${DEFAULT_LIMITS.maxConnections})`, nonNegativeInteger)
    .option('--max-key-bytes <n>', `largest key (default ${DEFAULT_LIMITS.maxKeyBytes})`, nonNegativeInteger)
    .option('--max-value-bytes <n>', `largest value (default ${DEFAULT_LIMITS.maxValueBytes})`, nonNegativeInteger)
    .option('--max-body-bytes <n>', `largest HTTP body (default ${DEFAULT_LIMITS.maxBodyBytes})`, nonNegativeInteger)
    .option('--max-pending-writes <n>', `writes in flight before 503 / -BUSY (default ${DEFAULT_LIMITS.maxPendingWrites})`, nonNegativeInteger)
    .option('--max-write-stall-ms <n>', `write stall before 503 / -BUSY (default ${DEFAULT_LIMITS.maxWriteStallMs})`, nonNegativeInteger)
    .option('--shutdown-timeout-ms <n>', `graceful shutdown bound (default ${d.shutdownTimeoutMs})`, nonNegativeInteger)
    .action(async (options: ServeCliOptions) => {
      await serve(options)
    })
}

/** Turns CLI options into server options (reads the token file). */
export function serverOptionsFromCli(o: ServeCliOptions): ServerOptionsInput {
  // `off` (or none/no/false) disables a listener.
  const off = (v: string): string | null => (['off', 'none', 'no', 'false', ''].includes(v.trim().toLowerCase()) ? null : v)
  const limits: Partial<ServerLimits> = {
    maxConnections: o.maxConnections,
    maxKeyBytes: o.maxKeyBytes,
    maxValueBytes: o.maxValueBytes,
    maxBodyBytes: o.maxBodyBytes,
    maxPendingWrites: o.maxPendingWrites,
    maxWriteStallMs: o.maxWriteStallMs,
  }
  return {
    dir: path.resolve(o.dir),
    http: off(o.http),
    resp: off(o.resp),
    sync: o.sync === true,
    token: o.tokenFile === undefined ? undefined : readTokenFile(o.tokenFile),
    shutdownTimeoutMs: o.shutdownTimeoutMs,
    limits,
  }
}

/**
 * Starts the server, prints where it listens, and runs until SIGTERM or
 * SIGINT; resolves after the graceful shutdown (the caller exits 0).
 * The signal handlers are installed before anything else, so a signal sent
 * as soon as the ready line is read (or during startup) is never missed.
 */
export async function serve(o: ServeCliOptions, out: (line: string) => void = (l) => process.stdout.write(l + '\n')): Promise<void> {
  let signalled: NodeJS.Signals | undefined
  let server: StrataServer | undefined
  let stop: (() => void) | undefined
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled !== undefined) {
      out(`strata serve: second ${signal}, exiting now`)
      process.exit(130)
    }
    signalled = signal
    if (server !== undefined) out(`strata serve: ${signal}: finishing in-flight requests, closing the database`)
    stop?.()
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  try {
    server = await startServer(serverOptionsFromCli(o))
    if (signalled === undefined) {
      announce(server, out)
      await new Promise<void>((resolve) => (stop = resolve))
    } else {
      out(`strata serve: ${signalled} during startup, closing the database`)
    }
    await server.close()
    out('strata serve: stopped')
  } finally {
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
  }
}

function announce(server: StrataServer, out: (line: string) => void): void {
  out(`strata serve: data directory ${server.options.dir} (${server.options.sync ? 'fsync on every write' : 'writes survive kill -9; --sync for power loss'})`)
  if (server.http !== null) out(`strata serve: HTTP listening on http://${server.http}`)
  if (server.resp !== null) out(`strata serve: RESP listening on redis://${server.resp}`)
  out(`strata serve: ready http=${server.http ?? 'off'} resp=${server.resp ?? 'off'} pid=${process.pid}`)
}

/**
 * Runs `strata serve` from an argument list (without `node` and the script),
 * for a standalone entry point: `runServe(process.argv.slice(2))`.
 */
export async function runServe(argv: string[]): Promise<void> {
  const program = new Command('strata').exitOverride()
  registerServeCommand(program)
  await program.parseAsync(['serve', ...argv], { from: 'user' })
}
