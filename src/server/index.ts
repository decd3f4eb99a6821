/**
 * The stratadb network server (`strata serve`): HTTP/1.1 and the Redis
 * protocol in front of one database. See docs/server.md.
 *
 * The package entry `stratadb/server`: what an embedder uses, nothing of the
 * internals (those are imported from their files: http/, resp/, shared/).
 */
export { startServer, type StrataServer } from './start-server.js'
export type { ServerLimits, ServerOptions, ServerOptionsInput } from './shared/options.js'
export { registerServeCommand, runServe } from './serve.js'
