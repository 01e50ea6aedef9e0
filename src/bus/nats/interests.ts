/**
 * What a bus on NATS listens to: one NATS subscription per pattern subscribed (shared by all its
 * subscribers), made again on every new connection, and the delivery of what arrives on it:
 * once per sender seq (the duplicate filter), decoded, requests and replies as rxnet envelopes.
 * @module
 */
import type { Msg, NatsConnection, Subscription as NatsSubscription } from '@nats-io/transport-node'
import type { Codec } from '../../codec/index.js'
import type { BusStats } from '../options.js'
import { NatsRpc } from './rpc.js'
import { decodeBody, readMessageMeta, SenderFilter, Verdict } from './wire.js'

/** Hands one message to one subscriber. */
export type Deliver = (topic: string, data: unknown, origin: string, seq: number) => void

/** How to end one subscriber (close, or a fatal error). */
export interface Listener {
  readonly complete: () => void
  readonly error: (e: unknown) => void
  /** Reads the topic it is given (`envelopes$`, a raw watch); `messages$` does not, and then nats.js's subject is not decoded. @default true */
  readonly topic?: boolean
}

interface Interest {
  readonly listeners: Map<Deliver, Listener>
  /** The listeners' delivery functions, as an array (the per-message loop), rebuilt on every change. */
  delivers: Deliver[]
  /** Listeners that read the topic. */
  topics: number
  readonly filter: SenderFilter
  /** Payloads handed over undecoded (a hub's bridge), requests not unwrapped. */
  readonly raw: boolean
  /** The NATS subject pattern (the map key differs for raw watches). */
  readonly pattern: string
  subs: NatsSubscription[]
}

const IGNORE: Listener = { complete: () => {}, error: () => {} }

function changed(interest: Interest): void {
  interest.delivers = [...interest.listeners.keys()]
  interest.topics = 0
  for (const l of interest.listeners.values()) if (l.topic !== false) interest.topics++
}

/** The interests of one bus and their NATS subscriptions on the current connection. */
export class Interests {
  private readonly map = new Map<string, Interest>()
  /** The duplicate filter of every raw watch (one per bridge). */
  private readonly rawFilter = new SenderFilter()
  private nc: NatsConnection | null = null

  constructor(
    private readonly codec: Codec<unknown>,
    private readonly stats: BusStats,
    private readonly rpc: NatsRpc,
  ) {}

  /** A new connection: every interest subscribes on it. */
  attach(nc: NatsConnection): void {
    this.nc = nc
    for (const interest of this.map.values()) this.subscribe(interest)
  }

  /** The connection is gone, and its subscriptions with it. */
  detach(): void {
    this.nc = null
    for (const i of this.map.values()) i.subs = []
  }

  /** Adds a subscriber of `pattern` (the first one subscribes on NATS); returns its removal (the last one unsubscribes). */
  add(pattern: string, deliver: Deliver, listener: Listener): () => void {
    let interest = this.map.get(pattern)
    if (interest === undefined) {
      interest = { listeners: new Map(), delivers: [], topics: 0, filter: new SenderFilter(), raw: false, pattern, subs: [] }
      this.map.set(pattern, interest)
      if (this.nc !== null) this.subscribe(interest)
    }
    interest.listeners.set(deliver, listener)
    changed(interest)
    const own = interest
    return () => {
      own.listeners.delete(deliver)
      changed(own)
      if (own.listeners.size === 0 && this.map.get(pattern) === own) {
        this.map.delete(pattern)
        for (const s of own.subs) s.unsubscribe()
        own.subs = []
      }
    }
  }

  /**
   * Calls `deliver` with every message on `pattern`, payload undecoded, once per sender seq over
   * all raw watches (a message two overlapping patterns match comes once). Returns the unsubscribe.
   */
  watchRaw(pattern: string, deliver: (topic: string, payload: Uint8Array, origin: string, seq: number) => void): () => void {
    const interest: Interest = { listeners: new Map([[deliver as Deliver, IGNORE]]), delivers: [deliver as Deliver], topics: 1, filter: this.rawFilter, raw: true, pattern, subs: [] }
    const key = `raw:${pattern}`
    this.map.get(key)?.subs.forEach((s) => s.unsubscribe())
    this.map.set(key, interest)
    if (this.nc !== null) this.subscribe(interest)
    return () => {
      if (this.map.get(key) !== interest) return
      this.map.delete(key)
      for (const s of interest.subs) s.unsubscribe()
    }
  }

  /** Every subscriber's listener. */
  listeners(): Listener[] {
    return [...this.map.values()].flatMap((i) => [...i.listeners.values()])
  }

  /** Forgets every interest (close(): the connection goes with its subscriptions). */
  clear(): void {
    this.map.clear()
  }

  private subscribe(interest: Interest): void {
    const nc = this.nc!
    interest.subs = [nc.subscribe(interest.pattern, { callback: (err, msg) => void (err === null && this.onMessage(interest, msg)) })]
    const replies = NatsRpc.replyPattern(interest.pattern)
    if (replies !== null) interest.subs.push(nc.subscribe(replies, { callback: (err, msg) => void (err === null && this.onReply(interest, msg)) }))
  }

  private onMessage(interest: Interest, msg: Msg): void {
    const { origin, seq, noResponders } = readMessageMeta(msg)
    if (noResponders) return
    if (origin !== '') {
      const verdict = interest.filter.check(origin, seq)
      if (verdict !== Verdict.NEW) {
        if (verdict === Verdict.DUPLICATE) this.stats.duplicates++
        else this.stats.implausible++
        return
      }
    }
    const delivers = interest.delivers
    if (interest.raw) {
      this.stats.received++
      for (let i = 0; i < delivers.length; i++) delivers[i]!(msg.subject, msg.data, origin, seq)
      return
    }
    let data: unknown
    try {
      data = decodeBody(this.codec, msg.data)
    } catch {
      this.stats.undecodable++
      return
    }
    data = this.rpc.incoming(msg, data)
    this.stats.received++
    const topic = interest.topics > 0 ? msg.subject : ''
    for (let i = 0; i < delivers.length; i++) delivers[i]!(topic, data, origin, seq)
  }

  private onReply(interest: Interest, msg: Msg): void {
    const r = this.rpc.reply(msg, this.codec, this.stats)
    if (r === undefined) return
    this.stats.received++
    for (const deliver of interest.listeners.keys()) deliver(interest.pattern, r.data, r.origin, r.seq)
  }
}
