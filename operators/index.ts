/**
 * `rxnet/operators`: framing, codecs, membership, fan-out and routing as RxJS operators.
 * One operator per file; this file only re-exports.
 * @module rxnet/operators
 */
export { frame } from './frame.js'
export { unframe, type UnframeOptions } from './unframe.js'
export { encode } from './encode.js'
export { decode } from './decode.js'
export { membership, type MemberLike } from './membership.js'
export { broadcast, type BroadcastOptions, type ByteSink, DEFAULT_BROADCAST_OPTIONS } from './broadcast.js'
export { fromPeers, type PeerMessage } from './fromPeers.js'
export { topic } from './topic.js'
export { request, type RequestOptions, DEFAULT_REQUEST_TIMEOUT } from './request.js'
export { reply, type ReplyResult } from './reply.js'
export { type RequestEnvelope, type ReplyEnvelope, type BusLike } from '../src/rpc.js'
