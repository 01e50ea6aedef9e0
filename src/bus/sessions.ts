/**
 * The hub's client sessions: one per connection, with what the hub knows of the client (its id,
 * interests, how far its messages were forwarded), the registry by id, the highest seq forwarded
 * per client id after it left (so a reconnect's resends are not forwarded twice), and the
 * topic -> sessions routes cache. The hub's state machine (`./hub.ts`) drives them.
 * @module
 */
import type net from 'node:net'
import type { SocketChannel } from '../socket.js'
import { varintLength } from '../framing/varint.js'
import { encodeString } from './protocol.js'
import type { TopicMatcher } from './topics.js'

/** One client connection of the hub. */
export interface Session {
  readonly ch: SocketChannel
  readonly socket: net.Socket
  id: string | null
  origin: Uint8Array | null
  echo: boolean
  patterns: Map<string, TopicMatcher>
  ackSeq: number
  acked: number
  slowTimer: NodeJS.Timeout | null
  helloTimer: NodeJS.Timeout | null
  closed: boolean
  /** Bytes of frames given to `ch` so far (what it has written to the kernel: `sent - ch.stats.bufferedBytes`). */
  sent: number
  /** Patterns adopted from this client's ghost that it has not registered again yet (dropped at its first other frame). */
  adopted: Set<string> | null
}

/** Sends `frame` to a client, counting its bytes (see {@link Session.sent}). */
export function sendTo(s: Session, frame: Uint8Array): void {
  s.sent += frame.length + varintLength(frame.length)
  s.ch.send(frame)
}

/** Every session of a hub. */
export class Sessions {
  /** Open sessions, in connection order. */
  readonly all = new Set<Session>()
  private readonly byId = new Map<string, Session>()
  /** Highest seq forwarded per client id, kept after a client leaves so a reconnect's resends are not forwarded twice. */
  private readonly lastSeq = new Map<string, number>()
  /** topic -> sessions interested; cleared whenever interests change. */
  private routes = new Map<string, Session[]>()

  get size(): number {
    return this.all.size
  }

  /** A new connection, before its HELLO. */
  open(ch: SocketChannel, socket: net.Socket): Session {
    const s: Session = { ch, socket, id: null, origin: null, echo: false, patterns: new Map(), ackSeq: -1, acked: -1, slowTimer: null, helloTimer: null, closed: false, sent: 0, adopted: null }
    this.all.add(s)
    return s
  }

  /**
   * `s` said HELLO as `id`: it continues where that client's last connection left off. Returns the
   * older session still open with that id (the caller drops it: the new one wins), if any.
   */
  claim(s: Session, id: string, echo: boolean): Session | undefined {
    const old = this.byId.get(id)
    s.ackSeq = this.lastSeq.get(id) ?? -1
    s.id = id
    s.origin = encodeString(id)
    s.echo = echo
    this.byId.set(id, s)
    return old
  }

  /** `s` is gone: its id keeps how far it got. */
  forget(s: Session): void {
    this.all.delete(s)
    if (s.id === null) return
    if (this.byId.get(s.id) === s) this.byId.delete(s.id)
    this.lastSeq.delete(s.id)
    if (this.lastSeq.size >= 10_000) this.lastSeq.delete(this.lastSeq.keys().next().value!)
    this.lastSeq.set(s.id, s.ackSeq)
  }

  /** True when `origin` is (or was, and is remembered as) a client of this hub: nobody else may speak for it. */
  speaksFor(origin: string): boolean {
    return this.byId.has(origin) || this.lastSeq.has(origin)
  }

  /** The sessions (past HELLO) with a pattern matching `topic`, cached until {@link changed}. */
  targets(topic: string): Session[] {
    let targets = this.routes.get(topic)
    if (targets === undefined) {
      targets = []
      for (const t of this.all) {
        if (t.id === null) continue
        for (const m of t.patterns.values()) {
          if (m.matches(topic)) {
            targets.push(t)
            break
          }
        }
      }
      if (this.routes.size > 10_000) this.routes.clear()
      this.routes.set(topic, targets)
    }
    return targets
  }

  /** Some session's patterns changed. */
  changed(): void {
    this.routes.clear()
  }

  /** Every pattern of every session (what the NATS bridge subscribes to). */
  patterns(): string[] {
    return [...this.all].flatMap((t) => [...t.patterns.keys()])
  }

  /** The clients as the `$SYS` stats answer lists them. */
  info(): { id: string; patterns: Iterable<string>; slow: boolean; stats: SocketChannel['stats'] }[] {
    return [...this.all].flatMap((t) => (t.id === null || t.closed ? [] : [{ id: t.id, patterns: t.patterns.keys(), slow: t.slowTimer !== null, stats: t.ch.stats }]))
  }
}
