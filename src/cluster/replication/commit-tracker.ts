/**
 * The leader's commit point (docs/replication.md, "Commit point and what
 * reads see"): the highest sequence in the WALs of a majority, the leader
 * included, counting only acknowledgements received in the current epoch.
 *
 * Writes wait on it through the engine's commit gate; reads wait on rounds
 * (read-index): a round started after the read arrived and acknowledged by a
 * majority proves that no other leader committed anything newer meanwhile.
 */
import { assert } from '../../base/assert.js'

interface GateWaiter {
  sequence: number
  sinceMs: number
  resolve: () => void
  reject: (err: Error) => void
}

interface RoundWaiter {
  round: number
  resolve: () => void
  reject: (err: Error) => void
}

export class CommitTracker {
  private readonly matched = new Map<string, number>()
  private readonly acknowledgedRounds = new Map<string, number>()
  private ownSequence = 0
  private commit = 0
  private gateWaiters: GateWaiter[] = []
  private roundWaiters: RoundWaiter[] = []
  private round = 0
  private roundScheduled = false
  private failed: Error | undefined

  /**
   * @param replicas every replica's id, this node's included
   * @param onRound a round of heartbeats should go out to every follower now
   */
  /**
   * @param ownWritten with `--ack async` (no gate), how far this node's own WAL is written
   */
  constructor(
    private readonly selfId: string,
    private readonly replicas: readonly string[],
    private readonly onRound: (round: number) => void,
    private readonly ownWritten?: () => number,
  ) {
    assert(replicas.includes(selfId), `node ${selfId} is not one of the replicas ${replicas.join(',')}`)
  }

  get majority(): number {
    return Math.floor(this.replicas.length / 2) + 1
  }

  get commitSequence(): number {
    return this.commit
  }

  /** The oldest write waiting for a majority, and since when (performance.now()). */
  oldestWaitMs(now = performance.now()): number {
    return this.gateWaiters.length === 0 ? 0 : now - this.gateWaiters[0].sinceMs
  }

  /** The engine's commit gate: resolves once `sequence` (already in this node's WAL) is committed. */
  readonly gate = (sequence: number): Promise<void> => {
    if (this.failed !== undefined) return Promise.reject(this.failed)
    this.ownSequence = Math.max(this.ownSequence, sequence)
    this.recompute()
    if (sequence <= this.commit) return Promise.resolve()
    return new Promise<void>((resolve, reject) => this.gateWaiters.push({ sequence, sinceMs: performance.now(), resolve, reject }))
  }

  /** This node's own log reached `sequence` by other means than the gate (adopting a log, the takeover's NOOP). */
  ownLog(sequence: number): void {
    this.ownSequence = Math.max(this.ownSequence, sequence)
    this.recompute()
  }

  /** A follower acknowledged its log up to `sequence`, in reply to a message sent in `round`. */
  acknowledged(id: string, sequence: number, round: number): void {
    if (this.failed !== undefined || id === this.selfId || !this.replicas.includes(id)) return
    this.matched.set(id, Math.max(this.matched.get(id) ?? 0, sequence))
    this.acknowledgedRounds.set(id, Math.max(this.acknowledgedRounds.get(id) ?? 0, round))
    this.recompute()
    this.settleRounds()
  }

  /** The round a message sent now belongs to. */
  get currentRound(): number {
    return this.round
  }

  /**
   * Read-index: resolves once a round started now is acknowledged by a
   * majority. Reads arriving while a round is being gathered share the next one.
   */
  readBarrier(): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed)
    if (this.majority === 1) return Promise.resolve()
    // Any message sent from now on proves the round; the heartbeats go out once per event-loop turn.
    if (!this.roundScheduled) {
      this.roundScheduled = true
      const next = ++this.round
      setImmediate(() => {
        this.roundScheduled = false
        if (this.failed === undefined) this.onRound(next)
      })
    }
    const round = this.round
    return new Promise<void>((resolve, reject) => this.roundWaiters.push({ round, resolve, reject }))
  }

  /** Leadership ended: every waiting write and read fails with `err`, and so does every later one. */
  fail(err: Error): void {
    if (this.failed !== undefined) return
    this.failed = err
    for (const w of this.gateWaiters.splice(0)) w.reject(err)
    for (const w of this.roundWaiters.splice(0)) w.reject(err)
  }

  private recompute(): void {
    if (this.ownWritten !== undefined) this.ownSequence = Math.max(this.ownSequence, this.ownWritten())
    const positions = [this.ownSequence]
    for (const id of this.replicas) if (id !== this.selfId) positions.push(this.matched.get(id) ?? 0)
    positions.sort((a, b) => b - a)
    const committed = positions[this.majority - 1]
    if (committed <= this.commit) return
    this.commit = committed
    while (this.gateWaiters.length > 0 && this.gateWaiters[0].sequence <= committed) this.gateWaiters.shift()!.resolve()
  }

  private settleRounds(): void {
    if (this.roundWaiters.length === 0) return
    const rounds = [...this.acknowledgedRounds.values()].sort((a, b) => b - a)
    // This node counts itself; majority - 1 followers must have acknowledged the round.
    const reached = rounds[this.majority - 2] ?? 0
    while (this.roundWaiters.length > 0 && this.roundWaiters[0].round <= reached) this.roundWaiters.shift()!.resolve()
  }
}
