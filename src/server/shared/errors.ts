/**
 * Error codes of the server and their HTTP statuses. Engine errors keep
 * their StrataError code; the server adds its own STRATA_… codes for what
 * only a network front end can get wrong (authentication, limits, overload).
 */
import { StrataError, type StrataErrorCode } from '../../index.js'
import { refusalOf, type ClusterRefusal } from '../../cluster/replication/cluster-refusal.js'

/** Every code an HTTP error body or log line may carry. */
export type ServerErrorCode =
  | StrataErrorCode
  | 'STRATA_BAD_REQUEST'
  | 'STRATA_UNAUTHORIZED'
  | 'STRATA_ROUTE_NOT_FOUND'
  | 'STRATA_METHOD_NOT_ALLOWED'
  | 'STRATA_PRECONDITION_FAILED'
  | 'STRATA_URI_TOO_LONG'
  | 'STRATA_HEADERS_TOO_LARGE'
  | 'STRATA_REQUEST_TIMEOUT'
  | 'STRATA_BUSY'
  | 'STRATA_SHUTTING_DOWN'
  | 'STRATA_TOO_MANY_CONNECTIONS'
  | 'STRATA_FORBIDDEN_HOST'
  | 'STRATA_FORBIDDEN_ORIGIN'
  | 'STRATA_UNSUPPORTED_MEDIA_TYPE'
  | 'STRATA_FORBIDDEN'
  | 'STRATA_CHECKPOINT_IN_PROGRESS'
  | 'STRATA_INTERNAL'
  | 'STRATA_NOT_LEADER'
  | 'STRATA_NO_LEADER'
  | 'STRATA_OUTCOME_UNKNOWN'

/** An error with its HTTP status and stable code; `details` are merged into the JSON body. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ServerErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    /** Extra response headers (Allow, Retry-After). */
    readonly headers?: Record<string, string>,
  ) {
    super(message)
    this.name = 'HttpError'
  }
}

const STATUS_OF_ENGINE_CODE: Record<StrataErrorCode, number> = {
  STRATA_INVALID_ARGUMENT: 400,
  STRATA_TOO_LARGE: 413,
  STRATA_NOT_FOUND: 404,
  STRATA_CONFLICT: 409,
  STRATA_EXISTS: 409,
  STRATA_NOT_OPEN: 503,
  STRATA_READ_ONLY: 503,
  STRATA_LOCKED: 500,
  STRATA_CORRUPTION: 500,
  STRATA_IO_ERROR: 500,
  STRATA_NOT_A_DATABASE: 500,
  STRATA_CHANGES_TRUNCATED: 410,
}

/** Converts anything thrown into an HttpError (unknown errors become a 500 without internals). */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err
  const refusal = refusalOf(err)
  if (refusal !== undefined) return clusterHttpError(refusal)
  if (err instanceof StrataError) {
    const status = STATUS_OF_ENGINE_CODE[err.code] ?? 500
    const code = err.code === 'STRATA_NOT_OPEN' ? 'STRATA_SHUTTING_DOWN' : err.code
    return new HttpError(status, code, err.message, undefined, status === 503 ? { 'Retry-After': '1' } : undefined)
  }
  return new HttpError(500, 'STRATA_INTERNAL', 'internal error')
}

/** The Redis error line (without the leading `-`) for an engine error. */
export function respErrorLine(err: unknown): string {
  const refusal = refusalOf(err)
  if (refusal !== undefined) return clusterRespError(refusal)
  if (err instanceof StrataError) {
    switch (err.code) {
      case 'STRATA_INVALID_ARGUMENT':
      case 'STRATA_TOO_LARGE':
        return `ERR ${err.message}`
      case 'STRATA_NOT_OPEN':
        return 'ERR server is shutting down'
      case 'STRATA_READ_ONLY':
        return `ERR database is read-only after a failure: ${err.message}`
      default:
        return `ERR ${err.code}: ${err.message}`
    }
  }
  return 'ERR internal error'
}

/** True for errors the server expects (bad input, conflicts), as opposed to bugs worth logging. */
export function isExpected(err: unknown): boolean {
  if (refusalOf(err) !== undefined) return true
  return err instanceof HttpError ? err.status < 500 : err instanceof StrataError && STATUS_OF_ENGINE_CODE[err.code] < 500
}

/**
 * A replica's refusal (docs/replication.md, "Clients"): 421 STRATA_NOT_LEADER
 * with the leader's addresses (body and `Strata-Leader` header), 503
 * STRATA_NO_LEADER with Retry-After, 503 STRATA_OUTCOME_UNKNOWN.
 */
function clusterHttpError(r: ClusterRefusal): HttpError {
  switch (r.kind) {
    case 'not-leader': {
      const leader = r.leader!
      return new HttpError(421, 'STRATA_NOT_LEADER', r.message, { leader }, leader.http === null ? undefined : { 'Strata-Leader': leader.http })
    }
    case 'no-leader':
      return new HttpError(503, 'STRATA_NO_LEADER', r.message, undefined, { 'Retry-After': '1' })
    case 'outcome-unknown':
      return new HttpError(503, 'STRATA_OUTCOME_UNKNOWN', `${r.message}; the write may or may not have been applied`)
  }
}

/** The RESP error of a refusal: `NOTLEADER host:port epoch` (as Redis Cluster's MOVED), `TRYAGAIN …`, `OUTCOMEUNKNOWN …`. */
function clusterRespError(r: ClusterRefusal): string {
  switch (r.kind) {
    case 'not-leader':
      return r.leader!.resp === null ? `TRYAGAIN the leader ${r.leader!.id} serves no RESP` : `NOTLEADER ${r.leader!.resp} ${r.leader!.epoch}`
    case 'no-leader':
      return `TRYAGAIN ${r.message}`
    case 'outcome-unknown':
      return `OUTCOMEUNKNOWN ${r.message}; the write may or may not have been applied`
  }
}
