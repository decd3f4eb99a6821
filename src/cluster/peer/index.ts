/** The replication peer protocol (docs/replication.md, "Peer protocol"): messages, framing, server and client over TCP. */
export { PeerError, type PeerErrorCode } from './peer-error.js'
export {
  decodeMessage,
  encodeMessage,
  frameMessage,
  isPeerReply,
  isPeerRequest,
  type EpochStart,
  type PeerMessage,
  type PeerReply,
  type PeerRequest,
} from './messages.js'
export { DEFAULT_MAX_FRAME_BYTES, FrameReader } from './frame-reader.js'
export { PeerServer, type PeerConnectionInfo, type PeerHandler, type PeerServerOptions } from './peer-server.js'
export { PeerClient, type PeerClientOptions, type PeerRequestOptions } from './peer-client.js'
