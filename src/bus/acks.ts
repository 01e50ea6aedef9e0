/**
 * The hub's acknowledgements: ACKs (a sender may forget its messages up to that seq) and PONGs
 * (what `flush()` waits for) are held in barriers until every copy of every message routed before
 * them is out of the hub's hands — in the receiver's kernel buffer, which survives a hub crash, or
 * held for a ghost that has since been adopted or given up — so a hub crash cannot lose anything a
 * sender was told to forget. One barrier per turn of the event loop; a client that holds one up for
 * `slowClientTimeout` is dropped.
 * @module
 */
import { TimeoutError, type RxnetError } from '../errors.js'
import { encodeAck } from './protocol.js'
import type { Ghost, Ghosts } from './recovery.js'
import { sendTo, type Session, type Sessions } from './sessions.js'

/** What the acknowledgements need of their hub. */
export interface AckHost {
  readonly sessions: Sessions
  readonly ghosts: Ghosts
  readonly slowClientTimeout: number
  /** True while some client is over its budget (nothing is acknowledged then; {@link Acks.schedule} again when it is not). */
  congested(): boolean
  /** Called before a barrier's frames go out (the roster the ACKs rely on is written first). */
  beforeRelease(): void
  drop(s: Session, error: RxnetError): void
}

/** ACKs and PONGs waiting for what was routed before them (see the module doc). */
interface Barrier {
  readonly marks: { t: Session | Ghost; at: number }[]
  readonly frames: { s: Session; frame: Uint8Array }[]
  /** When it was raised (ms): a client holding it up for `slowClientTimeout` is dropped. */
  readonly since: number
}

/** The acknowledgements of one hub. */
export class Acks {
  private readonly pending = new Set<Session>()
  private pongs: { s: Session; frame: Uint8Array }[] = []
  private scheduled = false
  private readonly barriers: Barrier[] = []
  private timer: NodeJS.Timeout | null = null

  constructor(private readonly host: AckHost) {}

  /** `s` (if any) has something new to acknowledge: a barrier is raised at the next turn. */
  schedule(s: Session | null): void {
    if (s !== null) this.pending.add(s)
    if (this.scheduled || (this.pending.size === 0 && this.pongs.length === 0)) return
    this.scheduled = true
    setImmediate(this.raise)
  }

  /** A PING from `s`: its PONG goes after the ACKs of what came before it. */
  pong(s: Session, frame: Uint8Array): void {
    this.pongs.push({ s, frame })
    this.schedule(null)
  }

  /** `ghost`'s client is back as `s`: what the barriers waited for from the ghost is now waited for from `s`. */
  adopt(ghost: Ghost, s: Session): void {
    for (const b of this.barriers) {
      for (const m of b.marks) {
        if (m.t !== ghost) continue
        m.t = s
        m.at = s.sent
      }
    }
    this.check()
  }

  forget(s: Session): void {
    this.pending.delete(s)
  }

  close(): void {
    if (this.timer !== null) clearTimeout(this.timer)
  }

  /**
   * Turns the pending ACKs and PONGs into a barrier released once everything routed so far is out
   * of this process: an ACK lets the sender forget a message, so a hub crash must not be able to
   * lose any copy of it after that.
   */
  private readonly raise = (): void => {
    this.scheduled = false
    if (this.host.congested()) return // scheduled again once nobody is
    const frames: Barrier['frames'] = []
    for (const s of this.pending) {
      if (!s.closed && s.ackSeq > s.acked) {
        s.acked = s.ackSeq
        frames.push({ s, frame: encodeAck(s.ackSeq) })
      }
    }
    this.pending.clear()
    for (const p of this.pongs) frames.push(p)
    this.pongs = []
    if (frames.length === 0) return
    const marks: Barrier['marks'] = []
    for (const t of this.host.sessions.all) if (t.sent > 0 && t.ch.stats.bufferedBytes > 0) marks.push({ t, at: t.sent })
    for (const g of this.host.ghosts.waiting.values()) if (g.held.length > 0) marks.push({ t: g, at: 0 })
    this.barriers.push({ marks, frames, since: Date.now() })
    this.check()
  }

  private released(b: Barrier): boolean {
    for (const m of b.marks) if (this.holdsUp(m)) return false
    return true
  }

  private holdsUp({ t, at }: Barrier['marks'][number]): boolean {
    if ('ch' in t) return !t.closed && t.sent - t.ch.stats.bufferedBytes < at
    return this.host.ghosts.waiting.get(t.id) === t // given up by recoveryTimeout
  }

  /** Releases every barrier whose copies are out, in order. */
  readonly check = (): void => {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    const { slowClientTimeout } = this.host
    while (this.barriers.length > 0) {
      const b = this.barriers[0]!
      if (!this.released(b) && Date.now() - b.since >= slowClientTimeout) {
        // A client that has not taken its messages in that long holds every sender's ACKs up: drop it.
        for (const m of b.marks) if ('ch' in m.t && this.holdsUp(m)) this.host.drop(m.t, new TimeoutError('client reading its messages', slowClientTimeout))
      }
      if (!this.released(b)) {
        // Write completions have no public event: look again shortly (only while something waits).
        this.timer = setTimeout(this.check, 1)
        return
      }
      this.host.beforeRelease()
      this.barriers.shift()
      for (const { s, frame } of b.frames) if (!s.closed) sendTo(s, frame)
    }
  }
}
