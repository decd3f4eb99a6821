/**
 * stratadb: a log-structured merge-tree key-value store for Node.js.
 * This is the only public entry point; everything else is internal.
 */
export { open, Database } from './db.js'
export type { BatchOp, ChangeBatch, CheckpointResult, ChangeOp, ChangeStream, ChangesOptions, DeleteRangeOp, Entry, IteratorOptions, PutOptions, Snapshot, StrataIterator, WriteOptions } from './db.js'
export type { Transaction, TransactionOptions } from './txn/transaction.js'
export type { OpenOptions } from './options.js'
export { DEFAULT_OPTIONS } from './options.js'
export { StrataError, ConflictError } from './base/errors.js'
export type { StrataErrorCode } from './base/errors.js'
export type { Bytes } from './base/keys.js'
export type { BlobStats, ChangeStats, EngineStats, FailureReport, RecoveryReport, WaitCause, WaitStats } from './engine/stats.js'
export type { BackgroundErrorInfo, FailureSite } from './base/background-error.js'
export type { File, FileStat, FileSystem, OpenFlags } from './vfs/file-system.js'
