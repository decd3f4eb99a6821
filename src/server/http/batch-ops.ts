/**
 * The body of POST /v1/batch: an array of operations, or
 * `{ "ops": [...], "sync": true }`, parsed into engine batch operations:
 *
 *   { "type": "put", "key": "k", "value": "v", "ifVersion"?: n, "ttlMs"?: n, "expiresAt"?: t }
 *   { "type": "del", "key": "k", "ifVersion"?: n }
 *   { "type": "check", "key": "k", "ifVersion": n }
 *   { "type": "delRange", "gte": "a", "lt"?: "b" }   every key in [gte, lt) (no lt: to the end)
 *
 * Keys, values and bounds as UTF-8 text or base64 (`keyBase64`, `gteBase64`,
 * ...). Anything malformed is a 400 (413 for sizes) before anything is written.
 */
import type { BatchOp, DeleteRangeOp } from '../../index.js'
import { HttpError } from '../shared/errors.js'
import type { ServerLimits } from '../shared/options.js'
import { parseFlag, readJsonBytes } from './encoding.js'
import { batchExpiry } from './expiry.js'

/** An operation of POST /v1/batch. */
export type HttpBatchOp = BatchOp | DeleteRangeOp

function bad(message: string): HttpError {
  return new HttpError(400, 'STRATA_INVALID_ARGUMENT', message)
}

/** 400 for an empty key, 413 for one over maxKeyBytes. */
export function checkKey(key: Buffer, what: string, maxKeyBytes: number): void {
  if (key.length === 0) throw bad(`${what} must not be empty`)
  if (key.length > maxKeyBytes) throw new HttpError(413, 'STRATA_TOO_LARGE', `${what} of ${key.length} bytes exceeds maxKeyBytes (${maxKeyBytes})`)
}

/**
 * The bounds of a range delete, checked: `gte` (may be empty: from the
 * first key) of at most maxKeyBytes, `lt` (undefined: to the end) of at
 * most maxKeyBytes + 1 (so that `k ++ 0x00` ends a range just after k), and
 * gte < lt (an empty or reversed range is a 400).
 */
export function checkDeleteRange(gte: Buffer, lt: Buffer | undefined, maxKeyBytes: number, what: string): DeleteRangeOp {
  if (gte.length > maxKeyBytes) throw new HttpError(413, 'STRATA_TOO_LARGE', `${what}: gte of ${gte.length} bytes exceeds maxKeyBytes (${maxKeyBytes})`)
  if (lt === undefined) return { type: 'delRange', gte }
  if (lt.length > maxKeyBytes + 1) throw new HttpError(413, 'STRATA_TOO_LARGE', `${what}: lt of ${lt.length} bytes exceeds maxKeyBytes + 1 (${maxKeyBytes + 1})`)
  if (Buffer.compare(gte, lt) >= 0) throw bad(`${what}: the range is empty (it needs gte < lt)`)
  return { type: 'delRange', gte, lt }
}

/** Parses a batch body (already JSON-parsed) and the `sync` query parameter. */
export function parseBatch(parsed: unknown, params: Map<string, Buffer>, limits: ServerLimits): { ops: HttpBatchOp[]; sync: boolean } {
  let rawOps: unknown
  let sync = false
  try {
    sync = parseFlag(params.get('sync'), 'sync')
  } catch (e) {
    throw bad((e as Error).message)
  }
  if (Array.isArray(parsed)) rawOps = parsed
  else if (typeof parsed === 'object' && parsed !== null) {
    const o = parsed as Record<string, unknown>
    rawOps = o.ops
    if (o.sync !== undefined) {
      if (typeof o.sync !== 'boolean') throw bad('sync must be a boolean')
      sync ||= o.sync
    }
  }
  if (!Array.isArray(rawOps)) throw bad('batch body must be an array of operations or { "ops": [...] }')
  if (rawOps.length > limits.maxBatchOps) {
    throw new HttpError(413, 'STRATA_TOO_LARGE', `batch of ${rawOps.length} operations exceeds maxBatchOps (${limits.maxBatchOps})`)
  }
  const ops = rawOps.map((raw, i) => parseOp(raw, i, limits))
  return { ops, sync }
}

function parseOp(raw: unknown, i: number, limits: ServerLimits): HttpBatchOp {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(`operation ${i} is not an object`)
  const o = raw as Record<string, unknown>
  if (o.type === 'delRange') return parseDeleteRange(o, i, limits)
  let key: Buffer | undefined
  let value: Buffer | undefined
  try {
    key = readJsonBytes(o, 'key')
    value = readJsonBytes(o, 'value')
  } catch (e) {
    throw bad(`operation ${i}: ${(e as Error).message}`)
  }
  if (key === undefined) throw bad(`operation ${i} has no key (or keyBase64)`)
  checkKey(key, `operation ${i}: key`, limits.maxKeyBytes)
  const ifVersion = o.ifVersion
  if (ifVersion !== undefined && (typeof ifVersion !== 'number' || !Number.isSafeInteger(ifVersion) || ifVersion < 0)) {
    throw bad(`operation ${i}: ifVersion must be a non-negative integer`)
  }
  switch (o.type) {
    case 'put':
      if (value === undefined) throw bad(`operation ${i}: put needs value (or valueBase64)`)
      if (value.length > limits.maxValueBytes) throw new HttpError(413, 'STRATA_TOO_LARGE', `operation ${i}: value exceeds maxValueBytes (${limits.maxValueBytes})`)
      return { type: 'put', key, value, ifVersion, ...batchExpiry(o, i) }
    case 'del':
      batchExpiry(o, i)
      if (value !== undefined) throw bad(`operation ${i}: del takes no value`)
      return { type: 'del', key, ifVersion }
    case 'check':
      batchExpiry(o, i)
      if (ifVersion === undefined) throw bad(`operation ${i}: check needs ifVersion`)
      if (value !== undefined) throw bad(`operation ${i}: check takes no value`)
      return { type: 'check', key, ifVersion }
    default:
      throw bad(`operation ${i}: type must be "put", "del", "check" or "delRange"`)
  }
}

/** `{ "type": "delRange", "gte": …, "lt"?: … }`: only these fields (and their Base64 forms). */
function parseDeleteRange(o: Record<string, unknown>, i: number, limits: ServerLimits): DeleteRangeOp {
  for (const name of Object.keys(o)) {
    if (!['type', 'gte', 'gteBase64', 'lt', 'ltBase64'].includes(name)) throw bad(`operation ${i}: delRange takes gte and lt only, not ${JSON.stringify(name.slice(0, 64))}`)
  }
  let gte: Buffer | undefined
  let lt: Buffer | undefined
  try {
    gte = readJsonBytes(o, 'gte')
    lt = readJsonBytes(o, 'lt')
  } catch (e) {
    throw bad(`operation ${i}: ${(e as Error).message}`)
  }
  if (gte === undefined) throw bad(`operation ${i}: delRange needs gte (or gteBase64; "" is from the first key)`)
  return checkDeleteRange(gte, lt, limits.maxKeyBytes, `operation ${i}`)
}
