/**
 * The etcd keys of a stratadb cluster (docs/replication.md, "Roles and etcd
 * keys"), all under `/strata/<cluster>/`:
 *
 *   config                          created once by `strata cluster init`
 *   members/<id>                    under the node's lease
 *   election/<shard>/<lease hex>    a node's campaign, under its lease
 *   leader/<shard>                  { id, epoch, …addresses }, under the leader's lease
 */
import { EtcdError } from './errors.js'
import { leaseHex } from './encoding.js'

export const DEFAULT_SHARD = 'shard-0'

export interface ClusterKeys {
  /** `/strata/<cluster>/` */
  root: string
  config: string
  membersPrefix: string
  member(id: string): string
  /** `/strata/<cluster>/election/<shard>/` */
  electionPrefix: string
  /** `/strata/<cluster>/election/<shard>/<lease id in hex>` (named like etcd's Go election). */
  campaignKey(leaseId: bigint): string
  /** `/strata/<cluster>/leader/<shard>` */
  leader: string
}

function checkName(what: string, name: string): void {
  if (name === '' || name.includes('/')) throw new EtcdError('invalid-argument', `${what} must be non-empty and without '/': ${JSON.stringify(name)}`)
}

export function clusterKeys(cluster: string, shard: string = DEFAULT_SHARD): ClusterKeys {
  checkName('cluster name', cluster)
  checkName('shard name', shard)
  const root = `/strata/${cluster}/`
  const electionPrefix = `${root}election/${shard}/`
  return {
    root,
    config: `${root}config`,
    membersPrefix: `${root}members/`,
    member: (id: string) => {
      checkName('member id', id)
      return `${root}members/${id}`
    },
    electionPrefix,
    campaignKey: (leaseId: bigint) => electionPrefix + leaseHex(leaseId),
    leader: `${root}leader/${shard}`,
  }
}
