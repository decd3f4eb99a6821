/** The etcd client of the cluster (JSON gateway, no dependencies) and the election on it. */
export { EtcdClient, type EtcdClientOptions } from './etcd-client.js'
export { EtcdError, type EtcdErrorCode } from './errors.js'
export { prefixEnd, leaseHex, type Bytes } from './encoding.js'
export type { CallOptions } from './gateway.js'
export type {
  Compare,
  CompareOp,
  DeleteOptions,
  DeleteResult,
  KeySelector,
  KeyValue,
  PutOptions,
  PutResult,
  RangeOptions,
  RangeResult,
  ResponseHeader,
  SortOrder,
  SortTarget,
  TxnOp,
  TxnOpResult,
  TxnRequest,
  TxnResult,
} from './kv.js'
export { Lease, type KeepAliveResult, type LeaseGrant, type LeaseLost, type LeaseOptions, type LeaseState, type TimeToLiveResult } from './lease.js'
export { Watch, type WatchBatch, type WatchEvent, type WatchOptions } from './watch.js'
export { clusterKeys, DEFAULT_SHARD, type ClusterKeys } from './keys.js'
export { Election, observeLeader, parseLeader, readLeader, type CampaignOptions, type ElectionOptions, type LeaderObserver, type LeaderRecord, type ObserveOptions } from './election.js'
