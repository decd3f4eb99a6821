/**
 * The one error the peer transport throws. Callers branch on `code`, never on
 * the message:
 *
 * - `timeout`: a request got no reply within its deadline. The link was
 *   closed because of it (replies are matched in order, so a late reply
 *   could no longer be told apart from the next one's).
 * - `closed`: the link is gone (reset, closed by either side, or closed
 *   because another request timed out). Whether the request took effect
 *   on the peer is unknown.
 * - `protocol`: bytes that are not a valid frame or message (bad checksum,
 *   oversized frame, malformed header), or a message of the wrong direction.
 *   The link is closed: nothing after a bad frame can be trusted.
 * - `connect`: the connection could not be established (refused, timed out).
 */
export type PeerErrorCode = 'timeout' | 'closed' | 'protocol' | 'connect'

export class PeerError extends Error {
  readonly code: PeerErrorCode
  /** `host:port` of the peer, when known (the codec alone does not know it). */
  readonly address: string | undefined

  constructor(code: PeerErrorCode, message: string, options: { address?: string; cause?: unknown } = {}) {
    super(options.address === undefined ? message : `${message} (peer ${options.address})`, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'PeerError'
    this.code = code
    this.address = options.address
  }
}

/** A `protocol` error from the codec or frame reader, re-issued with the peer's address in its message. */
export function withAddress(err: unknown, address: string): PeerError {
  if (err instanceof PeerError) {
    if (err.address !== undefined) return err
    return new PeerError(err.code, err.message, { address, cause: err.cause })
  }
  return new PeerError('protocol', err instanceof Error ? err.message : String(err), { address, cause: err })
}
