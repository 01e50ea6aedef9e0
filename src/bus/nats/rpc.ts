/**
 * Request / reply on the bus on NATS, as NATS does it: a request is its body with a NATS reply
 * subject (what a plain `nc.request()` sends), a reply is its body on that subject, a failure the
 * NATS service-error headers. The rxnet envelopes (`$rx: 'req' | 'res'`) that the `request()` /
 * `reply()` operators emit and expect are mapped to and from that here.
 * @module
 */
import type { Msg, MsgHdrs } from '@nats-io/transport-node'
import type { Codec } from '../../codec/index.js'
import { isReply, isRequest } from '../../rpc.js'
import type { BusStats } from '../options.js'
import { decodeBody, hasReply, readMeta, ERROR_CODE_HEADER, ERROR_HEADER, MSG_ID_HEADER } from './wire.js'

/** Requests awaiting a reply on this client (oldest forgotten beyond this). */
const MAX_PENDING_REPLIES = 100_000

/** What an emitted envelope is on the wire. */
export interface Outgoing {
  readonly body: unknown
  readonly reply: string | undefined
  /** A failed reply's service-error headers (its payload is empty). */
  readonly headers: MsgHdrs | undefined
}

/** A reply to one of this client's requests, as the reply envelope `request()` waits for. */
export interface IncomingReply {
  readonly data: unknown
  readonly origin: string
  readonly seq: number
}

/** The request / reply state of one NATS bus: the reply subjects of its requests in flight. */
export class NatsRpc {
  /** Reply subject (`<inbox>.<n>`) -> the request's id. */
  private readonly pending = new Map<string, string>()
  private n = 0

  /**
   * The subscription a pattern needs besides its own: replies to this client's requests come on
   * `<inbox>.<n>` (one wildcard per inbox); null for any other pattern.
   */
  static replyPattern(pattern: string): string | null {
    return pattern.startsWith('_inbox.') && !pattern.includes('*') && !pattern.includes('>') ? `${pattern}.*` : null
  }

  /** The NATS form of an emitted request or reply envelope; null for any other value (sent as it is). */
  outgoing(data: unknown, makeHeaders: (() => MsgHdrs) | null): Outgoing | null {
    if (isRequest(data) && typeof data.to === 'string') {
      const reply = `${data.to}.${++this.n}`
      if (this.pending.size >= MAX_PENDING_REPLIES) this.pending.delete(this.pending.keys().next().value!)
      this.pending.set(reply, data.id)
      return { body: data.body, reply, headers: undefined }
    }
    if (isReply(data)) {
      let headers: MsgHdrs | undefined
      if (data.error !== undefined) {
        headers = makeHeaders?.() ?? undefined
        headers?.set(ERROR_HEADER, String(data.error.message))
        if (data.error.code !== undefined) headers?.set(ERROR_CODE_HEADER, String(data.error.code))
      }
      return { body: data.body, reply: undefined, headers }
    }
    return null
  }

  /**
   * A received message with a NATS reply subject is a request (rxnet's or a plain `nc.request()`):
   * its data as the envelope `reply()` answers. A durable emit is a JetStream publish (its reply
   * subject is for the stream's ack): not a request.
   */
  incoming(msg: Msg, data: unknown): unknown {
    if (hasReply(msg) && msg.headers?.has(MSG_ID_HEADER) !== true) return { $rx: 'req', id: msg.reply, body: data, to: msg.reply }
    return data
  }

  /** A message on `<inbox>.<n>`: the reply to the request it answers, or undefined (not ours, no responders, undecodable: counted). */
  reply(msg: Msg, codec: Codec<unknown>, stats: BusStats): IncomingReply | undefined {
    const { origin, seq, noResponders, error } = readMeta(msg.headers)
    if (noResponders) return undefined // nobody listens on the request's topic: the request times out, as on the local bus
    const id = this.pending.get(msg.subject)
    if (id === undefined) return undefined
    this.pending.delete(msg.subject)
    if (error !== undefined) return { data: { $rx: 'res', id, error }, origin, seq }
    try {
      return { data: { $rx: 'res', id, body: decodeBody(codec, msg.data) }, origin, seq }
    } catch {
      stats.undecodable++
      return undefined
    }
  }
}
