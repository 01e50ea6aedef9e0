/**
 * The emit side of the bus on NATS: an emitted value becomes an outbox entry (a request or reply
 * envelope mapped to NATS request / reply, the payload encoded, a core JSON message built as its
 * whole NATS command), and an outbox entry becomes a publish: a JetStream publish for a durable
 * topic, the ready-made command or `nc.publish()` with rxnet's headers otherwise.
 * @module
 */
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node'
import type { JetStreamClient } from '@nats-io/jetstream'
import { encodeWith, json } from '../../codec/index.js'
import { compileTopic, validateTopic, type TopicMatcher } from '../topics.js'
import { ORIGIN_HEADER, SEQ_HEADER, type NatsBusSettings } from './options.js'
import type { NatsRpc } from './rpc.js'
import { Outbox, type Extra, type WireFormat } from './outbox.js'
import { commandSender, headerPrefix, jsonText, seqHeaders, SeqHeaderWriter } from './wire.js'

const EMPTY = new Uint8Array(0)
/** Topics whose wire format is kept (emit's hot path); the cache starts over beyond. */
const MAX_TOPICS = 1000

/** What a JetStream publish of a durable entry reports back. */
export interface SenderHooks {
  /** Stored (the entry is marked acked). */
  acked(): void
  /** Not stored (a timeout while the stream elects a leader ...): publish the unacked ones again later. */
  notStored(): void
}

/** Emits of one bus into its outbox, and outbox entries onto its current connection. */
export class Sender {
  /** `Message.headers()` of @nats-io/transport-node, once loaded (failed replies, durable publishes). */
  makeHeaders: (() => MsgHdrs) | null = null
  /** Topics already validated, with the wire format of their core messages. */
  private readonly topics = new Map<string, WireFormat>()
  /** Our header block up to the seq. */
  private readonly ourHeaders: Buffer
  /** The header block of our publishes through nc.publish(), only the seq written per message. */
  private readonly seqHeaders: SeqHeaderWriter
  /** The options of every nc.publish() (nats.js does not keep them). */
  private readonly publishOptions: { headers: MsgHdrs | undefined; reply: string | undefined } = { headers: undefined, reply: undefined }
  private readonly durableMatchers: TopicMatcher[]
  private nc: NatsConnection | null = null
  private js: JetStreamClient | null = null
  /** Sends the outbox's ready-made commands on the current connection (null: nc.publish() only). */
  private sendCommand: ((cmd: Uint8Array) => boolean) | null = null

  constructor(
    private readonly id: string,
    private readonly outbox: Outbox,
    private readonly o: NatsBusSettings,
    durableSubjects: string[],
    private readonly rpc: NatsRpc,
    private readonly hooks: SenderHooks,
  ) {
    this.ourHeaders = headerPrefix(id)
    this.seqHeaders = new SeqHeaderWriter(id)
    this.durableMatchers = durableSubjects.map((s) => compileTopic(s))
  }

  /** Publishes on `nc` from now on (`js`: the JetStream client of durable topics, if any). */
  attach(nc: NatsConnection, js: JetStreamClient | null): void {
    this.nc = nc
    this.js = js
    this.sendCommand = commandSender(nc)
  }

  detach(): void {
    this.nc = null
    this.js = null
    this.sendCommand = null
  }

  /** Adds an emit to the outbox: its slot, or -1 when the overflow policy dropped it (throws what `emit` throws). */
  emit(topic: string, data: unknown): number {
    let wire = this.topics.get(topic)
    if (wire === undefined) {
      validateTopic(topic)
      if (this.topics.size >= MAX_TOPICS) this.topics.clear()
      wire = { pub: Buffer.from(`HPUB ${topic} `, 'utf8'), headers: this.ourHeaders }
      this.topics.set(topic, wire)
    }
    let body = data
    let reply: string | undefined
    let headers: MsgHdrs | undefined
    const rpc = this.rpc.outgoing(data, this.makeHeaders)
    if (rpc !== null) ({ body, reply, headers } = rpc)
    const durable = reply === undefined && this.isDurable(topic)
    const extra: Extra | undefined = reply !== undefined || headers !== undefined || durable ? { reply, headers, durable, acked: false } : undefined
    const max = this.o.maxMessageSize
    if (body === undefined || headers !== undefined) return this.outbox.pushBytes(topic, EMPTY, extra, max)
    if (this.o.codec === json) return this.outbox.pushText(topic, jsonText(body), extra, max, extra === undefined ? wire : undefined)
    return this.outbox.pushBytes(topic, encodeWith(this.o.codec, body), extra, max)
  }

  private isDurable(topic: string): boolean {
    for (const m of this.durableMatchers) if (m.matches(topic)) return true
    return false
  }

  /** Adds a message forwarded for `origin` (a hub's client; its seq in the headers): its slot, or -1 when dropped. */
  forward(topic: string, payload: Uint8Array, origin: string, seq: number): number {
    return this.outbox.pushBytes(topic, payload, { as: { origin, seq } })
  }

  /** Publishes the outbox entry in `slot`: a JetStream publish for a durable one, a core publish with our headers otherwise. */
  publish(slot: number): void {
    const q = this.outbox
    const x = q.extraOf(slot)
    const seq = q.seqOf(slot)
    if (x?.durable === true && this.js !== null) {
      const h = this.makeHeaders!()
      h.set(ORIGIN_HEADER, this.id)
      h.set(SEQ_HEADER, String(seq))
      this.js.publish(q.subjectOf(slot), q.payloadOf(slot), { msgID: `${this.id}-${seq}`, headers: h }).then(
        () => {
          x.acked = true
          this.hooks.acked()
        },
        // Not stored (a timeout while the stream elects a leader ...): the outbox keeps it and
        // publishes it again, with the same message id, after a reconnect or RETRY_DELAY.
        () => this.hooks.notStored(),
      )
      return
    }
    if (x === undefined && this.sendCommand !== null) {
      const cmd = q.commandOf(slot)
      if (cmd !== undefined && this.sendCommand(cmd)) return
    }
    const o = this.publishOptions
    if (x === undefined) o.headers = this.seqHeaders.next(seq)
    else if (x.headers === undefined) o.headers = x.as === undefined ? this.seqHeaders.next(seq) : seqHeaders(x.as.origin, x.as.seq)
    else {
      o.headers = x.headers // a failed reply's service-error headers, plus ours
      x.headers.set(ORIGIN_HEADER, this.id)
      x.headers.set(SEQ_HEADER, String(seq))
    }
    o.reply = x?.reply
    try {
      // nats.js reads the options (and the headers' encode()) during the call only: one object for every publish.
      this.nc!.publish(q.subjectOf(slot), q.payloadOf(slot), o)
    } catch {
      // Closed under us, or refused (a subject NATS does not accept): kept, sent again on reconnect.
    }
  }
}
