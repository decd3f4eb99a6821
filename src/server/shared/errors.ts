/**
 * Error codes of the server and their HTTP statuses. Engine errors keep
 * their StrataError code; the server adds its own STRATA_… codes for what
 * only a network front end can get wrong (authentication, limits, overload).
 */
import { StrataError, type StrataErrorCode } from '../../index.js'

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
  if (err instanceof StrataError) {
    const status = STATUS_OF_ENGINE_CODE[err.code] ?? 500
    const code = err.code === 'STRATA_NOT_OPEN' ? 'STRATA_SHUTTING_DOWN' : err.code
    return new HttpError(status, code, err.message, undefined, status === 503 ? { 'Retry-After': '1' } : undefined)
  }
  return new HttpError(500, 'STRATA_INTERNAL', 'internal error')
}

/** The Redis error line (without the leading `-`) for an engine error. */
export function respErrorLine(err: unknown): string {
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
  return err instanceof HttpError ? err.status < 500 : err instanceof StrataError && STATUS_OF_ENGINE_CODE[err.code] < 500
}
