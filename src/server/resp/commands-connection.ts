/** The connection commands: PING, ECHO, AUTH, HELLO, SELECT, CLIENT. */
import type { RespContext } from './context.js'
import { NOT_INTEGER, lower, parseInteger } from './arguments.js'
import type { Call, ConnectionState, DefineCommand } from './command-spec.js'
import { REDIS_COMPAT_VERSION, STRATA_VERSION } from './commands-server.js'
import { unsupported } from './commands-unsupported.js'
import { ErrorReply, MapReply, OK, PONG, err, type Protocol, type Reply } from './reply.js'

const CLIENT_NAME_OK = /^[!-~]*$/

function clientCommand(call: Call): Reply {
  const { args, conn } = call
  const sub = lower(args[1])
  switch (sub) {
    case 'setname': {
      if (args.length !== 3) return err(`wrong number of arguments for 'client|setname' command`)
      const name = args[2].toString('latin1')
      if (!CLIENT_NAME_OK.test(name)) return err('Client names cannot contain spaces, newlines or special characters.')
      conn.name = name.length === 0 ? null : name
      return OK
    }
    case 'getname':
      return conn.name
    case 'id':
      return conn.id
    case 'setinfo': {
      if (args.length !== 4) return err(`wrong number of arguments for 'client|setinfo' command`)
      const attr = lower(args[2])
      const value = args[3].toString('latin1')
      if (!CLIENT_NAME_OK.test(value)) return err(`${attr} cannot contain spaces, newlines or special characters.`)
      if (attr === 'lib-name') conn.libName = value
      else if (attr === 'lib-ver') conn.libVersion = value
      else return err(`Unrecognized option '${args[2].toString('latin1')}'`)
      return OK
    }
    case 'info':
      return clientInfoLine(conn) + '\n'
    case 'list':
      return clientInfoLine(conn) + '\n'
    case 'no-evict':
    case 'no-touch':
      return OK
    case 'reply':
      return args.length === 3 && lower(args[2]) === 'on' ? OK : unsupported('CLIENT REPLY OFF/SKIP', 'every command is answered')
    default:
      return err(`unknown subcommand '${args[1].toString('latin1').slice(0, 64)}'. Try CLIENT HELP.`)
  }
}

function clientInfoLine(conn: ConnectionState): string {
  const age = Math.floor((performance.now() - conn.createdAtMs) / 1000)
  return (
    `id=${conn.id} addr=${conn.remoteAddress} name=${conn.name ?? ''} age=${age} db=0 ` +
    `resp=${conn.protocol} lib-name=${conn.libName ?? ''} lib-ver=${conn.libVersion ?? ''} cmd=${conn.lastCommand}`
  )
}

function helloCommand(call: Call): Reply {
  const { args, conn, server } = call
  let protocol: Protocol = conn.protocol
  let i = 1
  if (args.length > 1) {
    const v = parseInteger(args[1])
    if (v === undefined) return err('Protocol version is not an integer or out of range')
    if (v !== 2n && v !== 3n) return new ErrorReply('NOPROTO unsupported protocol version')
    protocol = Number(v) as Protocol
    i = 2
  }
  let authenticated = conn.authenticated
  let name: string | undefined
  for (; i < args.length; i++) {
    const opt = lower(args[i])
    if (opt === 'auth' && i + 2 < args.length) {
      const r = checkAuth(server, args[i + 1], args[i + 2])
      if (r !== undefined) return r
      authenticated = true
      i += 2
    } else if (opt === 'setname' && i + 1 < args.length) {
      const n = args[++i].toString('latin1')
      if (!CLIENT_NAME_OK.test(n)) return err('Client names cannot contain spaces, newlines or special characters.')
      name = n
    } else {
      return err(`Syntax error in HELLO option '${args[i].toString('latin1').slice(0, 64)}'`)
    }
  }
  if (!authenticated) {
    return new ErrorReply(
      'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time',
    )
  }
  conn.authenticated = true
  conn.protocol = protocol
  if (name !== undefined) conn.name = name.length === 0 ? null : name
  return new MapReply([
    ['server', 'redis'],
    ['version', REDIS_COMPAT_VERSION],
    ['proto', protocol],
    ['id', conn.id],
    ['mode', 'standalone'],
    ['role', 'master'],
    ['modules', []],
    ['strata', STRATA_VERSION],
  ])
}

/** undefined when `password` (for `user`) is right; else the error reply. */
function checkAuth(server: RespContext, user: Buffer | undefined, password: Buffer): ErrorReply | undefined {
  if (server.auth === undefined) {
    return err('AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?')
  }
  const userOk = user === undefined || user.toString('latin1') === 'default'
  // Always compare, so timing does not reveal whether the user name was right.
  const passOk = server.auth.matches(password)
  if (!userOk || !passOk) return new ErrorReply('WRONGPASS invalid username-password pair or user is disabled.')
  return undefined
}

function authCommand(call: Call): Reply {
  const { args, conn, server } = call
  if (args.length > 3) return new ErrorReply('ERR syntax error')
  const r = args.length === 3 ? checkAuth(server, args[1], args[2]) : checkAuth(server, undefined, args[1])
  if (r !== undefined) return r
  conn.authenticated = true
  return OK
}

/** What CLIENT does, as COMMAND lists it (`client|list`…); arities and flags as Redis 7. */
const CLIENT_SUBCOMMANDS = [
  { name: 'getname', arity: 2, flags: ['noscript', 'loading', 'stale'] },
  { name: 'id', arity: 2, flags: ['noscript', 'loading', 'stale'] },
  { name: 'info', arity: 2, flags: ['noscript', 'loading', 'stale'] },
  { name: 'list', arity: -2, flags: ['admin', 'noscript', 'loading', 'stale'] },
  { name: 'no-evict', arity: 3, flags: ['admin', 'noscript', 'loading', 'stale'] },
  { name: 'no-touch', arity: 3, flags: ['noscript', 'loading', 'stale'] },
  { name: 'reply', arity: 3, flags: ['noscript', 'loading', 'stale'] },
  { name: 'setinfo', arity: 4, flags: ['noscript', 'loading', 'stale'] },
  { name: 'setname', arity: 3, flags: ['noscript', 'loading', 'stale'] },
] as const

/** Adds the connection commands to the table, in order. */
export function defineConnectionCommands(def: DefineCommand): void {
  def({ name: 'ping', arity: -1, kind: 'conn', flags: ['fast'], run: ({ args }) => (args.length > 2 ? err("wrong number of arguments for 'ping' command") : args.length === 2 ? args[1] : PONG) })
  def({ name: 'echo', arity: 2, kind: 'conn', flags: ['fast'], run: ({ args }) => args[1] })
  def({ name: 'auth', arity: -2, kind: 'conn', flags: ['noscript', 'loading', 'stale', 'fast', 'no-auth'], run: authCommand })
  def({ name: 'hello', arity: -1, kind: 'conn', flags: ['noscript', 'loading', 'stale', 'fast', 'no-auth'], run: helloCommand })
  def({ name: 'select', arity: 2, kind: 'conn', flags: ['loading', 'stale', 'fast'], run: ({ args }) => (parseInteger(args[1]) === undefined ? NOT_INTEGER : parseInteger(args[1]) === 0n ? OK : err('DB index is out of range')) })
  def({ name: 'client', arity: -2, kind: 'conn', flags: ['admin', 'noscript', 'loading', 'stale'], run: clientCommand, subcommands: CLIENT_SUBCOMMANDS })
}
