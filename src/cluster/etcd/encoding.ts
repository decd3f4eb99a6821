/**
 * How values cross etcd's JSON gateway (proto3's JSON mapping):
 *
 * - `bytes` fields (keys, values, range ends) are base64 strings;
 * - `int64`/`uint64` fields (revisions, versions, lease IDs, TTLs, counts) are
 *   decimal strings, read here with BigInt only, so no precision is lost;
 * - fields with their zero value are left out of answers (no `kvs` for an empty
 *   range, no `value` for an empty value, no `TTL` for an unknown lease, no
 *   `type` for a PUT event), so every reader here defaults them.
 */
import { EtcdError } from './errors.js'

/** A key or value as the client takes it: a string (UTF-8) or bytes (Buffer, Uint8Array). */
export type Bytes = string | Uint8Array

export function toBuffer(b: Bytes): Buffer {
  if (typeof b === 'string') return Buffer.from(b, 'utf8')
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

export function toBase64(b: Bytes): string {
  return toBuffer(b).toString('base64')
}

export function fromBase64(s: unknown): Buffer {
  if (s === undefined || s === null || s === '') return Buffer.alloc(0)
  if (typeof s !== 'string') throw protocolError(`expected a base64 string, got ${typeof s}`)
  return Buffer.from(s, 'base64')
}

/** An int64 for a request: a decimal string (JSON numbers lose precision past 2^53). */
export function int64(n: bigint | number): string {
  if (typeof n === 'number' && !Number.isSafeInteger(n)) throw new EtcdError('invalid-argument', `not an integer (or beyond 2^53; pass a bigint): ${n}`)
  return BigInt(n).toString()
}

/** An int64 from an answer: a decimal string (or absent = 0), parsed by BigInt only. */
export function readInt64(v: unknown): bigint {
  if (v === undefined || v === null) return 0n
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v)
  // The gateway never sends 64-bit integers as JSON numbers; a small one would still be exact.
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v)
  throw protocolError(`expected an int64 as a decimal string, got ${JSON.stringify(v)}`)
}

/** A TTL in seconds from an answer (int64 on the wire; TTLs are small). */
export function readSeconds(v: unknown): number {
  return Number(readInt64(v))
}

/**
 * The end of the range of keys starting with `prefix` (etcd's `clientv3.GetPrefixRangeEnd`): the
 * prefix with its last byte below 0xff incremented and the rest cut. For a prefix of only 0xff
 * bytes (or empty) it is "\0", which etcd reads as "to the end of the key space".
 */
export function prefixEnd(prefix: Bytes): Buffer {
  const end = Buffer.from(toBuffer(prefix))
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1
      return end.subarray(0, i + 1)
    }
  }
  return Buffer.from([0])
}

/** The lease ID as the Go election names campaign keys: lowercase hex of the int64. */
export function leaseHex(id: bigint): string {
  return BigInt.asUintN(64, id).toString(16)
}

export function protocolError(message: string, cause?: unknown): EtcdError {
  return new EtcdError('protocol', `etcd gateway: ${message}`, { cause })
}

/** `v` as a JSON object (or a protocol error). */
export function asObject(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw protocolError(`${what}: expected an object, got ${JSON.stringify(v)}`)
  return v as Record<string, unknown>
}

/** `v` as a JSON array, absent = empty. */
export function asArray(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return []
  if (!Array.isArray(v)) throw protocolError(`${what}: expected an array, got ${JSON.stringify(v)}`)
  return v
}
