/**
 * DELETE /v1/range?gte=…&lt=…: deletes every key of a range with one range
 * delete (an O(1) write, atomic; `db.deleteRange`), answering 204 once it
 * is in the WAL (fsynced with `sync=1` or --sync).
 *
 * Bounds are percent-encoded bytes, as for GET /v1/range (range.ts). A lower
 * bound is required: `gte` (`gte=` empty: from the first key, so deleting
 * everything is explicit) or `gt` (becomes gte k ++ 0x00); the upper bound is
 * optional: `lt`, or `lte` (becomes lt k ++ 0x00); none: to the last key. At
 * most one of gt/gte and of lt/lte; an empty range (gte >= lt) is a 400.
 *
 * The delete touches every key of the range, so it is issued at a moment no
 * key is locked (KeyLocks.whenAllFree): never inside a conditional write's
 * read-then-write, which it would otherwise fail.
 */
import type * as http from 'node:http'
import type { ServerContext } from '../shared/context.js'
import { HttpError } from '../shared/errors.js'
import { parseFlag } from './encoding.js'

/** A parsed DELETE /v1/range. */
export interface RangeDeleteRequest {
  gte: Buffer
  lt: Buffer | undefined
  sync: boolean
}

function bad(message: string): HttpError {
  return new HttpError(400, 'STRATA_INVALID_ARGUMENT', message)
}

/** k ++ 0x00: the first key after k. */
function successor(k: Buffer): Buffer {
  return Buffer.concat([k, Buffer.alloc(1)])
}

/** Parses the query of DELETE /v1/range; 400 (413 for a bound over maxKeyBytes) on bad input. */
export function parseRangeDelete(q: Map<string, Buffer>, maxKeyBytes: number): RangeDeleteRequest {
  const known = new Set(['gt', 'gte', 'lt', 'lte', 'sync'])
  for (const name of q.keys()) if (!known.has(name)) throw bad(`unknown range delete parameter ${JSON.stringify(name.slice(0, 64))}`)
  for (const b of ['gt', 'gte', 'lt', 'lte']) {
    const v = q.get(b)
    if (v !== undefined && v.length > maxKeyBytes) throw new HttpError(413, 'STRATA_TOO_LARGE', `${b} is longer than maxKeyBytes (${maxKeyBytes})`)
  }
  const gt = q.get('gt')
  const lte = q.get('lte')
  if (gt !== undefined && q.has('gte')) throw bad('give at most one of gt and gte')
  if (lte !== undefined && q.has('lt')) throw bad('give at most one of lt and lte')
  const gte = gt !== undefined ? successor(gt) : q.get('gte')
  if (gte === undefined) throw bad('DELETE /v1/range needs a lower bound: gte (gte= deletes from the first key) or gt')
  const lt = lte !== undefined ? successor(lte) : q.get('lt')
  let sync: boolean
  try {
    sync = parseFlag(q.get('sync'), 'sync')
  } catch (e) {
    throw bad((e as Error).message)
  }
  // Bounds are at most maxKeyBytes (gt/lte k: one byte more, which the engine takes for lt; for a gte
  // its own maxKeyBytes decides, 413 beyond).
  if (lt !== undefined && Buffer.compare(gte, lt) >= 0) throw bad('the range is empty (it needs gte < lt)')
  return { gte, lt, sync }
}

/** Handles DELETE /v1/range (after routing, authentication and cluster admission). */
export async function deleteRange(ctx: ServerContext, params: Map<string, Buffer>, res: http.ServerResponse, head: Record<string, string>): Promise<void> {
  const r = parseRangeDelete(params, ctx.options.limits.maxKeyBytes)
  const busy = ctx.gate.admit()
  if (busy !== undefined) throw new HttpError(503, 'STRATA_BUSY', `server busy, try again: ${busy.message}`, undefined, { 'Retry-After': '1' })
  await ctx.locks.whenAllFree(() => ctx.gate.track(ctx.db.deleteRange(r.gte, r.lt, { sync: r.sync })))
  res.writeHead(204, head)
  res.end()
}
