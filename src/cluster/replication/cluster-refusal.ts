/**
 * Why a replicated node did not do a client's request (docs/replication.md,
 * "Clients"), for the server to answer with a redirect or a retry:
 *
 * - 'not-leader': this node is a follower; `leader` says where to go.
 * - 'no-leader': no leader is known or it is still taking over; retry soon.
 * - 'outcome-unknown': a write was admitted, but leadership ended before a
 *   majority acknowledged it: it may or may not be committed.
 */
export interface LeaderAddresses {
  id: string
  epoch: number
  http: string | null
  resp: string | null
  peer: string | null
}

export type RefusalKind = 'not-leader' | 'no-leader' | 'outcome-unknown'

export class ClusterRefusal extends Error {
  private constructor(
    readonly kind: RefusalKind,
    message: string,
    readonly leader?: LeaderAddresses,
  ) {
    super(message)
    this.name = 'ClusterRefusal'
  }

  static notLeader(leader: LeaderAddresses): ClusterRefusal {
    return new ClusterRefusal('not-leader', `this node is not the leader; the leader is ${leader.id} (epoch ${leader.epoch})`, leader)
  }

  static noLeader(message: string): ClusterRefusal {
    return new ClusterRefusal('no-leader', message)
  }

  static outcomeUnknown(message: string): ClusterRefusal {
    return new ClusterRefusal('outcome-unknown', message)
  }
}

/** The refusal behind `err` (itself, or the cause of the read-only failure a refused commit left), if any. */
export function refusalOf(err: unknown): ClusterRefusal | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (e instanceof ClusterRefusal) return e
  }
  return undefined
}
