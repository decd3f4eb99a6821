/**
 * MULTI/EXEC/WATCH of one RESP connection: the commands queued since MULTI,
 * the versions of the watched keys, and EXEC, which runs the queue
 * atomically. The connection dispatches these commands (kind `tx`) here.
 */
import { ConflictError, type Database } from '../../index.js'
import { keyId } from '../shared/key-locks.js'
import type { CommandRunner } from './command-runner.js'
import { commandKeys, commandKind, type CommandSpec } from './command-spec.js'
import { commitLocked } from './read-modify-write.js'
import { ReplyBudget, replyBytes } from './reply-budget.js'
import { ErrorReply, NullArray, OK, err, type Reply } from './reply.js'
import type { BufferedStore } from './store.js'

/** Commands that run at once inside MULTI instead of being queued. */
const MULTI_CONTROL = new Set(['exec', 'discard', 'multi', 'watch', 'quit', 'reset'])

interface Queued {
  spec: CommandSpec
  args: Buffer[]
}

/** Watched keys by key id, with the version each had when watched (0: absent). */
type Watched = Map<string, { key: Buffer; version: number }>

/** What EXEC runs: the queued commands, and the versions the watched keys must still have. */
export interface ExecUnit {
  readonly queue: Queued[]
  readonly watched: Watched | undefined
}

/** The transaction state of a connection; see the file comment. */
export class Transaction {
  private multi: { queue: Queued[]; failed: boolean } | undefined
  private watched: Watched | undefined

  /** True between MULTI and EXEC/DISCARD. */
  get active(): boolean {
    return this.multi !== undefined
  }

  /**
   * Inside MULTI, queues the command unless it is one that runs at once
   * (MULTI_CONTROL). True when queued.
   */
  enqueue(spec: CommandSpec, args: Buffer[]): boolean {
    if (this.multi === undefined || MULTI_CONTROL.has(spec.name)) return false
    this.multi.queue.push({ spec, args: args.map((a) => Buffer.from(a)) })
    return true
  }

  /** A command was refused inside MULTI: EXEC will abort. No effect outside MULTI. */
  fail(): void {
    if (this.multi !== undefined) this.multi.failed = true
  }

  /** MULTI. */
  begin(): Reply {
    if (this.multi !== undefined) return err('MULTI calls can not be nested')
    this.multi = { queue: [], failed: false }
    return OK
  }

  /** DISCARD. */
  discard(): Reply {
    if (this.multi === undefined) return err('DISCARD without MULTI')
    this.multi = undefined
    this.watched = undefined
    return OK
  }

  /** UNWATCH. */
  unwatch(): Reply {
    this.watched = undefined
    return OK
  }

  /** WATCH: records the versions `keys` have now; an error reply inside MULTI. */
  watch(db: Database, keys: Buffer[]): ErrorReply | Promise<Reply> {
    if (this.multi !== undefined) return err('WATCH inside MULTI is not allowed')
    return this.watchKeys(db, keys)
  }

  private async watchKeys(db: Database, keys: Buffer[]): Promise<Reply> {
    // db.getEntry sees this connection's earlier writes (it waits for every write issued before it).
    const entries = await Promise.all(keys.map((k) => db.getEntry(k)))
    const watched = (this.watched ??= new Map())
    keys.forEach((key, i) => {
      const id = keyId(key)
      if (!watched.has(id)) watched.set(id, { key: Buffer.from(key), version: entries[i]?.version ?? 0 })
    })
    return OK
  }

  /**
   * EXEC: ends the transaction and forgets the watched keys. An error reply
   * without MULTI or when a command was refused inside it, else what exec()
   * is to run.
   */
  end(): ErrorReply | ExecUnit {
    const multi = this.multi
    if (multi === undefined) return err('EXEC without MULTI')
    this.multi = undefined
    const watched = this.watched
    this.watched = undefined
    if (multi.failed) return new ErrorReply('EXECABORT Transaction discarded because of previous errors.')
    return { queue: multi.queue, watched }
  }

  /** RESET: no transaction, no watched keys. */
  reset(): void {
    this.multi = undefined
    this.watched = undefined
  }
}

/**
 * Runs a MULTI queue atomically: exclusive locks on every key it names (on
 * the whole key space when it holds FLUSHDB), the
 * watched versions checked, the commands run on one BufferedStore, one
 * conditional batch (through the read-modify-write commit path,
 * commitLocked). Null (nil) when a watched key changed, also between the
 * check and the commit (the batch re-checks the versions).
 */
export async function exec(runner: CommandRunner, { queue, watched }: ExecUnit, issued: () => void): Promise<Reply> {
  const { server, writes } = runner
  const kinds = queue.map((q) => commandKind(q.spec, q.args))
  if (kinds.some((k) => k === 'write' || k === 'rmw')) {
    const busy = writes.busy()
    if (busy !== undefined) return busy
  }
  if (writes.inFlight > 0) await writes.applied()
  const ids = new Set<string>()
  for (const q of queue) for (const k of commandKeys(q.spec, q.args)) ids.add(keyId(k))
  const watchedIds = new Set(watched?.keys() ?? [])
  // FLUSHDB in the queue writes every key: hold the whole key space.
  const release = await (queue.some((q) => q.spec.allKeys === true) ? server.locks.acquireAll() : server.locks.acquire(ids))
  const runQueue = async (store: BufferedStore): Promise<Reply> => {
    if (watched !== undefined) {
      for (const w of watched.values()) {
        const now = await server.db.getEntry(w.key)
        if ((now?.version ?? 0) !== w.version) return NullArray.instance
        store.expect(w.key, w.version)
      }
    }
    const replies: Reply[] = []
    // One reply budget for the whole EXEC reply: a read that does not fit answers the error instead
    // (a write's reply is kept: it did its write).
    const budget = new ReplyBudget(server.options.limits.maxReplyBytes)
    for (const q of queue) {
      const started = performance.now()
      const before = budget.usedBytes
      let reply = await runner.runCaught(q.spec, q.args, store, budget)
      if (budget.usedBytes === before) budget.charge(replyBytes(reply))
      if (!budget.ok && q.spec.flags.includes('readonly')) {
        budget.rollBack(before)
        reply = budget.error()
      }
      server.metrics.respCommand(q.spec.name, (performance.now() - started) / 1000, reply instanceof ErrorReply)
      replies.push(reply)
    }
    return replies
  }
  // Nil (a watched key changed) commits nothing; a conflict on a watched key is nil too.
  return commitLocked(
    runner,
    release,
    issued,
    runQueue,
    (reply) => reply !== NullArray.instance,
    (e) => (conflictTouches(e, watchedIds) ? NullArray.instance : runner.errorReply(e)),
  )
}

/** True when a conflict error names one of `ids` (latin1 key ids). */
function conflictTouches(e: unknown, ids: ReadonlySet<string>): boolean {
  return e instanceof ConflictError && e.keys.some((k) => ids.has(k.toString('latin1')))
}
