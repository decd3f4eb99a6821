/**
 * GET /v1/range: a key range streamed as NDJSON, one `{"key":…,"value":…}`
 * line per entry, then a last line `{"cursor":…,"count":n}`; the cursor is
 * null when the range was exhausted, else pass it back as `cursor=` to go
 * on. Lines are written in batches of about 64 KiB; when the socket's
 * buffer is full the scan waits for it to drain, so a slow reader holds the
 * server to one batch of memory however large the range. A client that
 * takes nothing for `sendTimeoutMs` is cut off (the response destroyed):
 * the open iterator pins tables and memtables, which must not be kept
 * forever by a reader that never reads.
 */
import type * as http from 'node:http'
import type { IteratorOptions } from '../../index.js'
import type { ServerContext } from '../shared/context.js'
import { decodeCursor, encodeCursor, jsonBytesMember, parseFlag } from './encoding.js'
import { HttpError, toHttpError } from '../shared/errors.js'

const BATCH_BYTES = 64 * 1024
/** Entries between yields to the event loop, even when the socket keeps up. */
const BATCH_ENTRIES = 2048

/** Parsed parameters of a range request. */
export interface RangeRequest {
  options: IteratorOptions
  keysOnly: boolean
  limit: number
}

/** Parses the query of GET /v1/range; throws 400 on bad input. */
export function parseRangeQuery(q: Map<string, Buffer>, maxKeyBytes: number): RangeRequest {
  const bad = (m: string): HttpError => new HttpError(400, 'STRATA_INVALID_ARGUMENT', m)
  const known = new Set(['gt', 'gte', 'lt', 'lte', 'reverse', 'limit', 'keys', 'cursor', 'sync'])
  for (const name of q.keys()) if (!known.has(name)) throw bad(`unknown range parameter ${JSON.stringify(name.slice(0, 64))}`)
  const options: IteratorOptions = {}
  for (const b of ['gt', 'gte', 'lt', 'lte'] as const) {
    const v = q.get(b)
    if (v === undefined) continue
    if (v.length > maxKeyBytes) throw new HttpError(413, 'STRATA_TOO_LARGE', `${b} is longer than maxKeyBytes (${maxKeyBytes})`)
    options[b] = v
  }
  if (options.gt !== undefined && options.gte !== undefined) throw bad('give at most one of gt and gte')
  if (options.lt !== undefined && options.lte !== undefined) throw bad('give at most one of lt and lte')
  let reverse: boolean
  let keysOnly: boolean
  try {
    reverse = parseFlag(q.get('reverse'), 'reverse')
    keysOnly = parseFlag(q.get('keys'), 'keys')
  } catch (e) {
    throw bad((e as Error).message)
  }
  options.reverse = reverse
  let limit = Infinity
  const l = q.get('limit')
  if (l !== undefined) {
    const s = l.toString('latin1')
    if (!/^\d{1,15}$/.test(s)) throw bad('limit must be a non-negative integer')
    limit = Number(s)
  }
  const c = q.get('cursor')
  if (c !== undefined && c.length > 0) {
    const after = decodeCursor(c)
    if (after === undefined) throw bad('malformed cursor')
    // Resume strictly after the cursor key, inside the original bounds.
    if (reverse) {
      delete options.lte
      options.lt = after
    } else {
      delete options.gte
      options.gt = after
    }
  }
  return { options, keysOnly, limit }
}

/** Streams the range to `res` (status 200 already decided). */
export async function streamRange(ctx: ServerContext, req: RangeRequest, res: http.ServerResponse, head: Record<string, string>): Promise<void> {
  // One entry more than asked tells whether a cursor is needed.
  const it = ctx.db.iterator({ ...req.options, values: !req.keysOnly, limit: req.limit === Infinity ? undefined : req.limit + 1 })
  let aborted = false
  const onClose = (): void => {
    aborted = true
  }
  res.once('close', onClose)
  res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-store', ...head })
  let count = 0
  let last: Buffer | undefined
  let more = false
  try {
    for (;;) {
      let lines = ''
      let n = 0
      let entry: [Buffer, Buffer] | undefined
      while (lines.length < BATCH_BYTES && n < BATCH_ENTRIES) {
        entry = it.nextSync()
        if (entry === undefined) break
        if (count === req.limit) {
          more = true
          entry = undefined
          break
        }
        const [k, v] = entry
        lines += req.keysOnly ? `{${jsonBytesMember('key', k)}}\n` : `{${jsonBytesMember('key', k)},${jsonBytesMember('value', v)}}\n`
        last = k
        count++
        n++
      }
      if (lines.length > 0 && !res.write(lines) && !(await waitDrain(res, ctx.options.sendTimeoutMs))) {
        res.destroy()
        return
      }
      if (aborted) return
      if (entry === undefined) break
      await new Promise<void>((r) => setImmediate(r))
      if (aborted) return
    }
    const cursor = more && last !== undefined ? JSON.stringify(encodeCursor(last)) : 'null'
    res.end(`{"cursor":${cursor},"count":${count}}\n`)
  } catch (e) {
    // Headers are gone: report in-band, as the last line.
    const h = toHttpError(e)
    ctx.log(`range scan failed: ${e instanceof Error ? e.message : String(e)}`)
    if (!aborted) res.end(`${JSON.stringify({ error: { code: h.code, message: h.message }, count })}\n`)
  } finally {
    it.close()
    res.off('close', onClose)
  }
}

/** Waits until the socket drains or closes (true), or `timeoutMs` passes first (false; 0 = no deadline). */
function waitDrain(res: http.ServerResponse, timeoutMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const done = (drained: boolean): void => {
      clearTimeout(timer)
      res.off('drain', onDrain)
      res.off('close', onDrain)
      resolve(drained)
    }
    const onDrain = (): void => done(true)
    const timer = timeoutMs > 0 ? setTimeout(() => done(false), timeoutMs) : undefined
    res.once('drain', onDrain)
    res.once('close', onDrain)
  })
}
