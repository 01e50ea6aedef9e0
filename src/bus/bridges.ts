/**
 * The hub's bridges to other hubs: the multicast group and NATS. What local clients publish goes
 * out one MSG per message; what comes in is checked (a MSG, a valid topic, not claiming one of this
 * hub's own clients) and handed to the hub to route to local clients only, so nothing loops.
 * @module
 */
import { multicast, type MulticastChannel } from '../multicast/index.js'
import { ProtocolError } from '../errors.js'
import { startNatsBridge, type BridgeHandle } from './nats/bridge.js'
import { decodeFrame, singleMsgs } from './protocol.js'
import { validateTopic } from './topics.js'
import type { HubEvent, HubOptions, HubStats } from './hub-options.js'

/** What the bridges need of their hub. */
export interface BridgeHost {
  readonly stats: HubStats
  event(e: HubEvent): void
  /** Every pattern of the hub's clients now. */
  patterns(): string[]
  /** True for an origin only this hub may speak for (one of its clients). */
  speaksFor(origin: string): boolean
  /** Routes a checked MSG from a bridge to the local clients. */
  route(topic: string, msg: Uint8Array, origin: string): void
}

/** The multicast and NATS bridges of one hub (either, both or none). */
export class HubBridges {
  multicast: MulticastChannel | null = null
  nats: BridgeHandle | null = null

  constructor(private readonly host: BridgeHost) {}

  /** Starts the bridges `options` ask for; throws what they throw (the hub closes then). */
  async start(options: Pick<HubOptions, 'multicast' | 'nats'>): Promise<void> {
    if (options.multicast !== undefined) {
      const mc = options.multicast
      this.multicast = multicast({ ...mc, overflow: mc.overflow ?? 'drop-oldest' }) // an explicit `overflow: undefined` keeps this default too
      this.multicast.source.subscribe({
        next: ({ data }) => this.onMessage(data),
        error: (error) => this.host.event({ type: 'bridge-error', error }),
      })
      await this.multicast.ready
    }
    if (options.nats !== undefined) {
      this.nats = startNatsBridge(options.nats, { patterns: () => this.host.patterns(), deliver: (frame) => this.onMessage(frame) })
    }
  }

  /** A local client's MSG / MSGS, out to the bridges one MSG per message. */
  forward(frame: Uint8Array): void {
    if (this.nats === null && this.multicast === null) return
    const stats = this.host.stats
    for (const msg of singleMsgs(frame)) {
      this.nats?.forward(msg)
      const b = this.multicast
      if (b === null) continue
      if (msg.length > b.maxMessageSize) {
        stats.bridgeTooLarge++
        continue
      }
      b.send(msg)
      stats.bridgedOut++
    }
  }

  /** The clients' interests changed: the NATS bridge resubscribes. */
  resync(): void {
    this.nats?.resync()
  }

  async close(): Promise<void> {
    await Promise.all([this.multicast?.close(), this.nats?.close()])
  }

  private onMessage(data: Uint8Array): void {
    const stats = this.host.stats
    let f
    try {
      f = decodeFrame(data)
      if (f.type !== 'msg') throw new ProtocolError(`unexpected ${f.type.toUpperCase()} on the bridge`)
      validateTopic(f.topic)
    } catch {
      stats.bridgeBad++
      return
    }
    // Only this hub speaks for its own clients: a datagram claiming one of them (connected, or
    // gone but still remembered) is forged, e.g. by another process on an unsealed group.
    if (this.host.speaksFor(f.origin)) {
      stats.bridgeSpoofed++
      return
    }
    stats.bridgedIn++
    this.host.route(f.topic, data, f.origin)
  }
}
