/**
 * Known commands and options stratadb does not support (CONFIG SET, CLIENT
 * REPLY OFF, ...): a clear error instead of "unknown command" or of being
 * ignored. The handlers of their families answer with `unsupported()`.
 */
import { err, type ErrorReply } from './reply.js'

/** Reply of a command that is known but not supported by stratadb. */
export function unsupported(what: string, why: string): ErrorReply {
  return err(`${what} is not supported by stratadb: ${why}`)
}
