/**
 * etcd's KV service (range, put, delete, txn) as request builders and
 * answer readers over the JSON gateway; etcd-client.ts makes the calls.
 */
import { asArray, asObject, int64, readInt64, toBase64, prefixEnd, fromBase64, toBuffer, type Bytes } from './encoding.js'
import { EtcdError } from './errors.js'
import type { JsonObject } from './gateway.js'

export interface ResponseHeader {
  clusterId: bigint
  memberId: bigint
  /** The store's revision when the request was served (after it, for a write). */
  revision: bigint
  raftTerm: bigint
}

export interface KeyValue {
  key: Buffer
  value: Buffer
  createRevision: bigint
  modRevision: bigint
  /** Writes since the key was created (1 after the first put). */
  version: bigint
  /** The lease the key is attached to, 0n for none. */
  lease: bigint
}

/** Which keys a request covers: one key, every key with `key` as prefix, or [key, rangeEnd). */
export interface KeySelector {
  /** Every key starting with `key` (the empty key with `prefix`: every key). */
  prefix?: boolean
  /** The end of a [key, rangeEnd) range; "\0" means "to the end". Not with `prefix`. */
  rangeEnd?: Bytes
}

export type SortOrder = 'none' | 'ascend' | 'descend'
export type SortTarget = 'key' | 'version' | 'create' | 'mod' | 'value'

export interface RangeOptions extends KeySelector {
  /** At most this many keys (0 or absent: no limit); `more` says whether there were more. */
  limit?: number | bigint
  /** Read at this revision (absent: the newest). */
  revision?: number | bigint
  sortOrder?: SortOrder
  sortTarget?: SortTarget
  minModRevision?: number | bigint
  maxModRevision?: number | bigint
  minCreateRevision?: number | bigint
  maxCreateRevision?: number | bigint
  keysOnly?: boolean
  countOnly?: boolean
  /** Answer from the member's local state without a quorum read (may be stale). */
  serializable?: boolean
}

export interface RangeResult {
  header: ResponseHeader
  kvs: KeyValue[]
  /** Whether the limit left keys out. */
  more: boolean
  /** How many keys the range holds (regardless of limit). */
  count: bigint
}

export interface PutOptions {
  /** Attach the key to this lease (it is deleted when the lease ends). */
  lease?: bigint
  /** Return the key's previous version. */
  prevKv?: boolean
}

export interface PutResult {
  header: ResponseHeader
  prevKv: KeyValue | null
}

export interface DeleteOptions extends KeySelector {
  prevKv?: boolean
}

export interface DeleteResult {
  header: ResponseHeader
  deleted: bigint
  prevKvs: KeyValue[]
}

export type CompareOp = '==' | '!=' | '>' | '<'

/**
 * One condition of a txn. With `prefix` or `rangeEnd` it is a range compare: it holds when EVERY
 * key of the range satisfies it. Careful: etcd compares an empty range as one key with all
 * fields zero (so `create > 5` is false for an empty range, `create == 0` true), and a `value`
 * compare on a missing key is always false.
 */
export type Compare = { key: Bytes } & KeySelector &
  (
    | { target: 'create' | 'mod' | 'version' | 'lease'; op: CompareOp; value: bigint | number }
    | { target: 'value'; op: CompareOp; value: Bytes }
  )

export type TxnOp =
  | { put: { key: Bytes; value: Bytes } & PutOptions }
  | { range: { key: Bytes } & RangeOptions }
  | { delete: { key: Bytes } & DeleteOptions }
  | { txn: TxnRequest }

export interface TxnRequest {
  compare?: readonly Compare[]
  success?: readonly TxnOp[]
  failure?: readonly TxnOp[]
}

/** The answer to one op of a txn: exactly one field is set, the one of the op. */
export interface TxnOpResult {
  put?: PutResult
  range?: RangeResult
  delete?: DeleteResult
  txn?: TxnResult
}

export interface TxnResult {
  header: ResponseHeader
  /** Whether every compare held (the success ops ran) or not (the failure ops ran). */
  succeeded: boolean
  responses: TxnOpResult[]
}

// ---- requests

export function keyRange(key: Bytes, selector: KeySelector = {}): { key: string; range_end?: string } {
  if (selector.prefix === true && selector.rangeEnd !== undefined) throw new EtcdError('invalid-argument', 'give either prefix or rangeEnd, not both')
  const k = toBuffer(key)
  if (selector.prefix === true) {
    // The empty prefix is the whole key space: etcd spells it key "\0", range_end "\0".
    if (k.length === 0) return { key: 'AA==', range_end: 'AA==' }
    return { key: k.toString('base64'), range_end: prefixEnd(k).toString('base64') }
  }
  if (selector.rangeEnd !== undefined) return { key: k.toString('base64'), range_end: toBase64(selector.rangeEnd) }
  return { key: k.toString('base64') }
}

const SORT_ORDER: Record<SortOrder, string> = { none: 'NONE', ascend: 'ASCEND', descend: 'DESCEND' }
const SORT_TARGET: Record<SortTarget, string> = { key: 'KEY', version: 'VERSION', create: 'CREATE', mod: 'MOD', value: 'VALUE' }

export function rangeRequest(key: Bytes, o: RangeOptions = {}): JsonObject {
  const r: JsonObject = keyRange(key, o)
  if (o.limit !== undefined) r.limit = int64(o.limit)
  if (o.revision !== undefined) r.revision = int64(o.revision)
  if (o.sortOrder !== undefined) r.sort_order = SORT_ORDER[o.sortOrder]
  if (o.sortTarget !== undefined) r.sort_target = SORT_TARGET[o.sortTarget]
  if (o.serializable === true) r.serializable = true
  if (o.keysOnly === true) r.keys_only = true
  if (o.countOnly === true) r.count_only = true
  if (o.minModRevision !== undefined) r.min_mod_revision = int64(o.minModRevision)
  if (o.maxModRevision !== undefined) r.max_mod_revision = int64(o.maxModRevision)
  if (o.minCreateRevision !== undefined) r.min_create_revision = int64(o.minCreateRevision)
  if (o.maxCreateRevision !== undefined) r.max_create_revision = int64(o.maxCreateRevision)
  return r
}

export function putRequest(key: Bytes, value: Bytes, o: PutOptions = {}): JsonObject {
  const r: JsonObject = { key: toBase64(key), value: toBase64(value) }
  if (o.lease !== undefined && o.lease !== 0n) r.lease = int64(o.lease)
  if (o.prevKv === true) r.prev_kv = true
  return r
}

export function deleteRequest(key: Bytes, o: DeleteOptions = {}): JsonObject {
  const r: JsonObject = keyRange(key, o)
  if (o.prevKv === true) r.prev_kv = true
  return r
}

const COMPARE_OP: Record<CompareOp, string> = { '==': 'EQUAL', '!=': 'NOT_EQUAL', '>': 'GREATER', '<': 'LESS' }
const COMPARE_TARGET = { create: ['CREATE', 'create_revision'], mod: ['MOD', 'mod_revision'], version: ['VERSION', 'version'], lease: ['LEASE', 'lease'], value: ['VALUE', 'value'] } as const

export function compareRequest(c: Compare): JsonObject {
  const [target, field] = COMPARE_TARGET[c.target]
  const op = COMPARE_OP[c.op]
  if (target === undefined || op === undefined) throw new EtcdError('invalid-argument', `bad compare ${String(c.target)} ${String(c.op)}`)
  const r: JsonObject = { ...keyRange(c.key, c), target, result: op }
  r[field] = c.target === 'value' ? toBase64(c.value) : int64(c.value)
  return r
}

export function txnOpRequest(op: TxnOp): JsonObject {
  if ('put' in op) return { request_put: putRequest(op.put.key, op.put.value, op.put) }
  if ('range' in op) return { request_range: rangeRequest(op.range.key, op.range) }
  if ('delete' in op) return { request_delete_range: deleteRequest(op.delete.key, op.delete) }
  if ('txn' in op) return { request_txn: txnRequest(op.txn) }
  throw new EtcdError('invalid-argument', `bad txn op ${JSON.stringify(Object.keys(op))}`)
}

export function txnRequest(t: TxnRequest): JsonObject {
  return {
    compare: (t.compare ?? []).map(compareRequest),
    success: (t.success ?? []).map(txnOpRequest),
    failure: (t.failure ?? []).map(txnOpRequest),
  }
}

// ---- answers

export function readHeader(v: unknown): ResponseHeader {
  const h = v === undefined ? {} : asObject(v, 'header')
  return { clusterId: readInt64(h.cluster_id), memberId: readInt64(h.member_id), revision: readInt64(h.revision), raftTerm: readInt64(h.raft_term) }
}

export function readKeyValue(v: unknown): KeyValue {
  const kv = asObject(v, 'kv')
  return {
    key: fromBase64(kv.key),
    value: fromBase64(kv.value),
    createRevision: readInt64(kv.create_revision),
    modRevision: readInt64(kv.mod_revision),
    version: readInt64(kv.version),
    lease: readInt64(kv.lease),
  }
}

export function readRange(v: unknown): RangeResult {
  const r = asObject(v, 'range answer')
  return { header: readHeader(r.header), kvs: asArray(r.kvs, 'kvs').map(readKeyValue), more: r.more === true, count: readInt64(r.count) }
}

export function readPut(v: unknown): PutResult {
  const r = asObject(v, 'put answer')
  return { header: readHeader(r.header), prevKv: r.prev_kv === undefined ? null : readKeyValue(r.prev_kv) }
}

export function readDelete(v: unknown): DeleteResult {
  const r = asObject(v, 'delete answer')
  return { header: readHeader(r.header), deleted: readInt64(r.deleted), prevKvs: asArray(r.prev_kvs, 'prev_kvs').map(readKeyValue) }
}

export function readTxn(v: unknown): TxnResult {
  const r = asObject(v, 'txn answer')
  const responses = asArray(r.responses, 'responses').map((x): TxnOpResult => {
    const o = asObject(x, 'txn op answer')
    if (o.response_put !== undefined) return { put: readPut(o.response_put) }
    if (o.response_range !== undefined) return { range: readRange(o.response_range) }
    if (o.response_delete_range !== undefined) return { delete: readDelete(o.response_delete_range) }
    if (o.response_txn !== undefined) return { txn: readTxn(o.response_txn) }
    return {}
  })
  return { header: readHeader(r.header), succeeded: r.succeeded === true, responses }
}
