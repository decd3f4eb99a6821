/** Commands and options stratadb knows but does not support: a clear error instead of "unknown command". */
import type { DefineCommand } from './command-spec.js'
import { err, type ErrorReply } from './reply.js'

/** Reply of a command that is known but not supported by stratadb. */
export function unsupported(what: string, why: string): ErrorReply {
  return err(`${what} is not supported by stratadb: ${why}`)
}

/** Adds the known commands stratadb does not do (yet) to the table, in order. */
export function defineUnsupportedCommands(def: DefineCommand): void {
  for (const name of ['flushdb', 'flushall']) {
    def({ name, arity: -1, kind: 'conn', flags: ['write'], run: () => unsupported(name.toUpperCase(), 'delete keys with DEL, or remove the data directory') })
  }
}
