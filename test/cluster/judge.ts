/**
 * How the cluster fault tests judge a run (failover.test.ts,
 * partitions.test.ts): `workloadUntil` runs the 10-client workload
 * (workload.ts) until a fault script settles; `judge` checks the history for
 * linearizability (linearizability.ts) and that no acknowledged write is
 * missing from the final state read through the leader;
 * `expectReplicasIdentical` waits for every replica to reach the same last
 * sequence and compares a hash of all their entries and versions.
 */
import { createHash } from 'node:crypto'
import { expect } from 'vitest'
import { open } from '../../src/index.js'
import type { Cluster } from './cluster-harness.js'
import { checkHistory } from './linearizability.js'
import { lostWrites, readAll, runWorkload, type WorkloadResult } from './workload.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The workload of 10 clients over HTTP and RESP, from now until `done` settles. */
export function workloadUntil(c: Cluster, done: Promise<unknown>): Promise<WorkloadResult> {
  const stop = new AbortController()
  done.then(
    () => stop.abort(),
    () => stop.abort(),
  )
  return runWorkload({ endpoints: c.endpoints(), clients: 10, durationMs: 200_000, keysInUse: 3, opTimeoutMs: 2000, signal: stop.signal })
}

export function summary(r: WorkloadResult): string {
  return JSON.stringify(r.counts)
}

/** The history is linearizable and no acknowledged write is missing from the final state. */
export async function judge(c: Cluster, r: WorkloadResult): Promise<void> {
  const verdict = checkHistory(r.history, { timeLimitMs: 60_000 })
  expect(verdict.ok ? 'linearizable' : `${verdict.reason} on ${verdict.key}: ${verdict.detail}`, summary(r)).toBe('linearizable')
  const leader = await c.waitForLeader(20_000)
  const finals = await readAll(leader.http, r.keys)
  expect(lostWrites(r.history, finals), summary(r)).toEqual([])
}

/** Waits until every running replica reports the same last sequence, then compares a hash of all their entries. */
export async function expectReplicasIdentical(c: Cluster): Promise<void> {
  const deadline = performance.now() + 20_000
  let last: Array<number | undefined> = []
  for (;;) {
    last = await Promise.all(c.nodes.map(async (n) => (await c.status(n.id))?.lastSequence))
    if (last.every((s) => s !== undefined && s === last[0])) break
    if (performance.now() > deadline) throw new Error(`replicas never converged: last sequences ${JSON.stringify(last)}`)
    await sleep(100)
  }
  const hashes: string[] = []
  for (const n of c.nodes) {
    const db = await open(n.dir, { readOnly: true })
    try {
      const h = createHash('sha256')
      for await (const [k, v] of db.iterator()) h.update(`${k.toString('hex')}=${v.toString('hex')}@${(await db.getEntry(k))!.version};`)
      hashes.push(h.digest('hex'))
    } finally {
      await db.close()
    }
  }
  expect(new Set(hashes).size, `hashes ${hashes.join(' ')} at sequence ${last[0]}`).toBe(1)
}
