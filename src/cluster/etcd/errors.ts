/**
 * The one error the etcd client throws. Callers branch on `code`, never on
 * the message.
 *
 * - `unavailable`: no answer: connection refused or reset, or the call's
 *   deadline passed (`timedOut`), or etcd itself said UNAVAILABLE (no leader,
 *   request timed out inside etcd). Whether a write took effect is unknown.
 * - `canceled`: the caller's AbortSignal fired.
 * - `failed-precondition`: a guarded write's condition did not hold (e.g. the
 *   leader claim of an election), or etcd said FAILED_PRECONDITION.
 * - `lease-lost`: the lease's local deadline passed or etcd no longer knows
 *   the lease (keepalive answered TTL <= 0).
 * - `compacted`: a watch or read asked for a revision etcd has compacted
 *   (`compactRevision` says the oldest one left).
 * - `watch-canceled`: etcd canceled a watch for another reason.
 * - the rest mirror gRPC status codes etcd answers with.
 */
export type EtcdErrorCode =
  | 'unavailable'
  | 'canceled'
  | 'invalid-argument'
  | 'not-found'
  | 'already-exists'
  | 'permission-denied'
  | 'unauthenticated'
  | 'resource-exhausted'
  | 'failed-precondition'
  | 'aborted'
  | 'out-of-range'
  | 'compacted'
  | 'unimplemented'
  | 'internal'
  | 'lease-lost'
  | 'watch-canceled'
  | 'protocol'
  | 'unknown'

export interface EtcdErrorDetails {
  cause?: unknown
  /** The gRPC status code etcd answered with, when it answered. */
  grpcCode?: number
  /** The HTTP status of the gateway's answer, when there was one. */
  httpStatus?: number
  /** The endpoint the call went to. */
  endpoint?: string
  /** True when the call's own deadline ended it. */
  timedOut?: boolean
  /** For `compacted`: the oldest revision etcd still has. */
  compactRevision?: bigint
}

export class EtcdError extends Error {
  readonly code: EtcdErrorCode
  readonly grpcCode: number | undefined
  readonly httpStatus: number | undefined
  readonly endpoint: string | undefined
  readonly timedOut: boolean
  readonly compactRevision: bigint | undefined

  constructor(code: EtcdErrorCode, message: string, details: EtcdErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'EtcdError'
    this.code = code
    this.grpcCode = details.grpcCode
    this.httpStatus = details.httpStatus
    this.endpoint = details.endpoint
    this.timedOut = details.timedOut ?? false
    this.compactRevision = details.compactRevision
  }
}

const GRPC_CODES: Record<number, EtcdErrorCode> = {
  1: 'canceled',
  2: 'unknown',
  3: 'invalid-argument',
  4: 'unavailable', // DEADLINE_EXCEEDED inside etcd: no answer in time, like ours
  5: 'not-found',
  6: 'already-exists',
  7: 'permission-denied',
  8: 'resource-exhausted',
  9: 'failed-precondition',
  10: 'aborted',
  11: 'out-of-range',
  12: 'unimplemented',
  13: 'internal',
  14: 'unavailable',
  15: 'internal', // DATA_LOSS
  16: 'unauthenticated',
}

/** The error for a gRPC status etcd answered with (through the gateway). */
export function fromGrpcStatus(grpcCode: number, message: string, details: EtcdErrorDetails = {}): EtcdError {
  let code = GRPC_CODES[grpcCode] ?? 'unknown'
  if (code === 'out-of-range' && /compacted/.test(message)) code = 'compacted'
  return new EtcdError(code, `etcd: ${message}`, { ...details, grpcCode })
}
