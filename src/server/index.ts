/**
 * The stratadb network server (`strata serve`): HTTP/1.1 and the Redis
 * protocol in front of one database. See docs/server.md.
 */
export { registerServeCommand, runServe, serve, serverOptionsFromCli, type ServeCliOptions } from './serve.js'
export { startServer, type StrataServer } from './server.js'
export { DEFAULT_LIMITS, DEFAULT_SERVER_OPTIONS, resolveServerOptions, type ServerLimits, type ServerOptions, type ServerOptionsInput } from './options.js'
export { RespParser, RespProtocolError, splitInline, type RespParserLimits } from './resp-parser.js'
export { globMatch } from './glob.js'
export { KeyLocks } from './key-locks.js'
export { WriteGate } from './write-gate.js'
export { parseListenAddress, isLoopbackHost } from './address.js'
export { readTokenFile, checkExposure } from './auth.js'
