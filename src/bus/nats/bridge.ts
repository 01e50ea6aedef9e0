/**
 * A hub bridged through NATS (`startHub({ path, nats: { servers } })`): one NATS connection per
 * hub, like a leaf node. Local clients' messages go to NATS (their origin and seq in the headers,
 * through the same confirmed outbox as a NATS bus); the hub subscribes on NATS to the union of its
 * clients' patterns and hands what arrives to the hub as bridge messages, so the hub's own checks
 * apply (a message claiming one of its clients is refused). The connection is `noEcho`: this
 * hub's own messages never come back; messages from NATS are never forwarded again: nothing loops.
 * @module
 */
import { randomBytes } from 'node:crypto'
import type { Observable } from 'rxjs'
import { checkKeys } from '../../options.js'
import { InvalidArgumentError } from '../../errors.js'
import { decodeFrame, encodeMsg } from '../protocol.js'
import type { BusStats, BusStatus } from '../options.js'
import { NatsBusImpl } from './client.js'
import type { HubNatsOptions } from './options.js'

/**
 * Default outbox of a hub's NATS bridge, 32 MiB (oldest dropped, counted, beyond it).
 * @example
 * ```ts
 * await startHub({ path: '/tmp/app.sock', nats: { servers: 'nats://127.0.0.1:4222', highWaterMark: 2 * DEFAULT_BRIDGE_HIGH_WATER_MARK } })
 * ```
 */
export const DEFAULT_BRIDGE_HIGH_WATER_MARK = 32 * 1024 * 1024

/**
 * The NATS side of a hub.
 * @example
 * ```ts
 * const hub = await startHub({ path: '/tmp/app.sock', nats: { servers: ['nats://127.0.0.1:4222'] } })
 * hub.nats?.status$.subscribe((s) => console.log('nats', s.type))
 * ```
 */
export interface NatsBridge {
  /** Counters of the NATS connection (emitted = forwarded out, received = handed to the hub). */
  readonly stats: BusStats
  /** The NATS connection's status. */
  readonly status$: Observable<BusStatus>
  /** The origin given to messages from plain NATS publishers (no rxnet headers) on this hub. */
  readonly plainOrigin: string
  /** Patterns subscribed on NATS now (the union of the local clients'). */
  readonly patterns: ReadonlySet<string>
  /** Resolves once NATS has confirmed everything forwarded and subscribed so far. */
  flush(options?: { timeout?: number }): Promise<void>
}

/** What the bridge needs of its hub. */
export interface BridgeHost {
  /** Every pattern of every local client now. */
  patterns(): Iterable<string>
  /** A message from NATS, as a hub MSG frame (the hub checks and routes it to local clients). */
  deliver(frame: Uint8Array): void
}

/** The bridge and what the hub calls on it. */
export interface BridgeHandle extends NatsBridge {
  /** A local client's message (a hub MSG frame): publish it on NATS. */
  forward(msg: Uint8Array): void
  /** The local clients' patterns changed: subscribe / unsubscribe on NATS (batched in a microtask). */
  resync(): void
  close(): Promise<void>
}

/** Starts the NATS side of a hub (returns at once; connects and reconnects by itself). */
export function startNatsBridge(options: HubNatsOptions, host: BridgeHost): BridgeHandle {
  checkKeys('startHub nats', options, ['servers', 'options', 'highWaterMark'])
  const servers = typeof options.servers === 'string' ? options.servers : Array.isArray(options.servers) ? options.servers.join(',') : ''
  if (servers === '') throw new InvalidArgumentError('startHub: nats.servers must be a NATS URL or a list of them')
  const bus = new NatsBusImpl(servers, {
    echo: false,
    overflow: 'drop-oldest',
    highWaterMark: options.highWaterMark ?? DEFAULT_BRIDGE_HIGH_WATER_MARK,
    ...(options.options === undefined ? {} : { nats: options.options }),
  })
  const plainOrigin = `nats.${randomBytes(6).toString('hex')}`
  let plainSeq = 0
  const watches = new Map<string, () => void>()
  let scheduled = false
  const onMessage = (topic: string, payload: Uint8Array, origin: string, seq: number): void => {
    // A plain NATS publisher has no id: this hub numbers its messages for the local clients' dedupe.
    host.deliver(origin === '' ? encodeMsg(++plainSeq, plainOrigin, topic, payload) : encodeMsg(seq, origin, topic, payload))
  }
  const sync = (): void => {
    scheduled = false
    const want = new Set(host.patterns())
    for (const [p, stop] of watches) {
      if (want.has(p)) continue
      stop()
      watches.delete(p)
    }
    for (const p of want) if (!watches.has(p)) watches.set(p, bus.watchRaw(p, onMessage))
  }
  return {
    stats: bus.stats,
    status$: bus.status$,
    plainOrigin,
    get patterns() {
      return new Set(watches.keys())
    },
    flush: (o) => bus.flush(o),
    forward(msg) {
      const f = decodeFrame(msg)
      if (f.type === 'msg') bus.forward(f.topic, f.payload, f.origin, f.seq)
    },
    resync() {
      if (scheduled) return
      scheduled = true
      queueMicrotask(sync)
    },
    async close() {
      for (const stop of watches.values()) stop()
      watches.clear()
      await bus.close()
    },
  }
}
