/**
 * stratadb as an abstract-level database (`import { StrataLevel } from 'stratadb/level'`):
 * a drop-in for classic-level in the Level ecosystem. See docs/level.md.
 */
export { StrataLevel } from './strata-level.js'
export type { StrataLevelOptions, StrataLevelOpenOptions, StrataLevelWriteOptions } from './strata-level.js'
export type { ClassicLevelOptions } from './options.js'
export { StrataLevelError } from './errors.js'
export { StrataLevelIterator, StrataLevelKeyIterator, StrataLevelValueIterator } from './iterator.js'
export { StrataLevelSnapshot } from './snapshot.js'
