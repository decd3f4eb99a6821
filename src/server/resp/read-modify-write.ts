/**
 * The read-modify-write commit path: a command of kind `rmw` runs under
 * exclusive locks on its keys as a small optimistic transaction
 * (BufferedStore) whose commit joins the write batcher's batch. EXEC
 * (transaction.ts) commits its queue through the same path.
 */
import { ConflictError } from '../../index.js'
import { keyId } from '../shared/key-locks.js'
import type { MaybePromise } from './maybe.js'
import type { CommandRunner } from './command-runner.js'
import { commandKeys, type CommandSpec } from './command-spec.js'
import { ErrorReply, type Reply } from './reply.js'
import { BufferedStore } from './store.js'

/**
 * A read-modify-write command: under exclusive locks on its keys, run the
 * handler on a BufferedStore and commit. The locks are released, and later
 * commands let go, as soon as the commit is queued in the write batcher:
 * the next exclusive holder of these keys has it issued first (and reads
 * it), this connection's next command of another kind too, and every
 * later blind write of these keys is queued or issued after it. Under the
 * locks no other writer of this server can intervene, so the commit's
 * version checks cannot fail unless something outside the server wrote
 * (the database is locked against that) or a key read expired meanwhile
 * (then the command runs again: commitLocked). `issued()` lets the
 * connection's later commands go (holdUntilIssued in connection.ts).
 */
export async function readModifyWrite(runner: CommandRunner, spec: CommandSpec, args: Buffer[], issued: () => void): Promise<Reply> {
  const ids = commandKeys(spec, args).map(keyId)
  // Free keys (the usual case) are taken at once, without a round through the promise queue.
  const release = runner.server.locks.tryAcquire(ids) ?? (await runner.server.locks.acquire(ids))
  return commitLocked(runner, release, issued, (store) => runner.runCaught(spec, args, store), notAnError, (e) => runner.errorReply(e))
}

function notAnError(reply: Reply): boolean {
  return !(reply instanceof ErrorReply)
}

/**
 * Runs of a unit that read a value with an expiry before its commit is
 * answered with the conflict (see commitLocked). Each run but the last
 * fails only if a key it read alive expired meanwhile, after which that
 * key reads absent: a unit reading n expiring keys needs at most n + 1.
 */
const MAX_EXPIRY_RUNS = 8

/**
 * The commit path of read-modify-write commands and EXEC. The caller holds
 * exclusive locks on the keys, which `release` gives back. `body` runs on a
 * fresh BufferedStore; if `commits(reply)`, what it read and wrote is then
 * committed as one conditional batch in the write batcher (see
 * readModifyWrite). The locks are released and `issued()` is called as
 * soon as that commit is queued (or nothing is to be committed, or `body`
 * threw); then the commit is awaited, and its failure `e` becomes the reply
 * `commitFailed(e)`.
 *
 * Expiry. Under the locks nobody else writes the keys, but a key read alive
 * may still expire before the commit checks its version, and the commit
 * then fails (STRATA_CONFLICT) though the unit did nothing wrong. So when
 * `body` read a value with an expiry, the locks are kept (and later
 * commands held) until the commit is decided, and on a conflict `body` runs
 * again on what is left: the expired key now reads absent (EXPIRE of a key
 * that just expired answers 0, INCR starts from 0), never resurrected nor
 * answered from a value that was gone when the write applied. Units that
 * read no expiring value keep the early release.
 */
export async function commitLocked(
  runner: CommandRunner,
  release: () => void,
  issued: () => void,
  body: (store: BufferedStore) => MaybePromise<Reply>,
  commits: (reply: Reply) => boolean,
  commitFailed: (e: unknown) => Reply,
): Promise<Reply> {
  const { server, writes } = runner
  let held = true
  const letGo = (): void => {
    if (!held) return
    held = false
    release()
    issued()
  }
  try {
    for (let run = 1; ; run++) {
      const store = new BufferedStore(server.db, server.clock)
      const reply = await body(store)
      const commit = commits(reply) ? store.commit(writes.track, writes.submitBatch) : undefined
      if (commit === undefined) return reply
      const rerunnable = store.readExpiring && run < MAX_EXPIRY_RUNS
      if (!rerunnable) letGo()
      try {
        await commit
      } catch (e) {
        if (rerunnable && e instanceof ConflictError) continue
        return commitFailed(e)
      }
      return reply
    }
  } finally {
    letGo()
  }
}
