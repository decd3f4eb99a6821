/**
 * Reading HTTP request bodies under a byte limit. An oversized body is
 * drained (up to a bound) before the 413 is sent, so that the client, which
 * may still be sending, reads the answer instead of a connection reset.
 */
import type * as http from 'node:http'
import { HttpError } from '../shared/errors.js'

/** How much of an oversized body is read and discarded before answering anyway. */
const MAX_DRAIN_BYTES = 64 * 1024 * 1024
const MAX_DRAIN_MS = 5_000

/** The declared Content-Length, undefined when absent; throws 400 when malformed. */
export function declaredLength(req: http.IncomingMessage): number | undefined {
  const h = req.headers['content-length']
  if (h === undefined) return undefined
  if (!/^\d{1,15}$/.test(h)) throw new HttpError(400, 'STRATA_BAD_REQUEST', 'malformed Content-Length')
  return Number(h)
}

/** Reads the whole body; rejects with 413 (after draining) when it exceeds `limitBytes`. */
export function readBody(req: http.IncomingMessage, limitBytes: number, what: string): Promise<Buffer> {
  const tooLarge = (): HttpError =>
    new HttpError(413, 'STRATA_TOO_LARGE', `${what} exceeds the limit of ${limitBytes} bytes`, { limitBytes }, { Connection: 'close' })
  return new Promise<Buffer>((resolve, reject) => {
    let declared: number | undefined
    try {
      declared = declaredLength(req)
    } catch (e) {
      reject(e)
      return
    }
    if (declared !== undefined && declared > limitBytes) {
      drain(req, declared).then(() => reject(tooLarge()))
      return
    }
    const chunks: Buffer[] = []
    let total = 0
    let over = false
    const onData = (chunk: Buffer): void => {
      if (over) return
      total += chunk.length
      if (total > limitBytes) {
        over = true
        chunks.length = 0
        req.off('data', onData)
        drain(req, Infinity).then(() => reject(tooLarge()))
        return
      }
      chunks.push(chunk)
    }
    req.on('data', onData)
    req.once('end', () => {
      if (!over) resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total))
    })
    req.once('error', (e) => reject(new HttpError(400, 'STRATA_BAD_REQUEST', `request body: ${e.message}`)))
    req.once('aborted', () => reject(new HttpError(400, 'STRATA_BAD_REQUEST', 'request aborted by the client')))
  })
}

/** Reads and discards the rest of the body (bounded in bytes and time). */
function drain(req: http.IncomingMessage, declared: number): Promise<void> {
  return new Promise<void>((resolve) => {
    if (req.readableEnded || declared > MAX_DRAIN_BYTES) {
      resolve()
      return
    }
    let discarded = 0
    const finish = (): void => {
      clearTimeout(timer)
      req.off('data', onData)
      resolve()
    }
    const onData = (chunk: Buffer): void => {
      discarded += chunk.length
      if (discarded > MAX_DRAIN_BYTES) finish()
    }
    const timer = setTimeout(finish, MAX_DRAIN_MS)
    req.on('data', onData)
    req.once('end', finish)
    req.once('close', finish)
    req.resume()
  })
}
