/**
 * The receiving side of a bus client: the patterns its subscribers watch (registered with the hub
 * while someone subscribes), duplicate detection per sender (by sender id and sequence number), and
 * delivery of what the hub sends (MSG, or a MSGS batch) to every matching subscriber.
 * @module
 */
import { Observable, type Subscriber } from 'rxjs'
import { InvalidArgumentError } from '../errors.js'
import { decodeWith, type Codec } from '../codec/index.js'
import { SequenceWindow } from '../multicast/window.js'
import { encodeSub, encodeUnsub, forEachEntry, MAX_PATTERNS, type Batch } from './protocol.js'
import { compileTopic, type TopicMatcher } from './topics.js'
import type { BusStats } from './options.js'

/** Sequence numbers per sender remembered for duplicate detection (anything older is dropped as a duplicate). */
const DEDUPE_WINDOW = 4096
/**
 * Farthest a sender's sequence number may be from the highest seen from it, ahead or behind
 * (2^24): a message further away is refused and counted (`stats.implausible`) instead of moving
 * the window, so one forged message (e.g. from an unsealed bridge) cannot make the sender's real
 * messages look old. A sender that really skipped more than this on topics we do not watch loses
 * one message (counted); its next one is followed again.
 */
export const MAX_SEQ_JUMP = 1 << 24

/** A subscriber's delivery callback. */
export type Deliver = (topic: string, data: unknown, origin: string, seq: number, bytes: number) => void

interface Interest {
  readonly matcher: TopicMatcher
  /** Each subscriber's delivery callback, and how to complete it (used by close()). */
  readonly listeners: Map<Deliver, () => void>
}

/** Interests, dedupe and delivery of one bus client. */
export class Inbox {
  private readonly interests = new Map<string, Interest>()
  private routes = new Map<string, Interest[]>()
  /** Counts changes of {@link interests} (a batch's later entries go to the interests of then). */
  private changes = 0
  /** Per sender: which of its recent sequence numbers were delivered (late arrivals over multicast are still new). */
  private readonly seen = new Map<string, SequenceWindow>()
  private closed = false

  /** @param control - sends SUB / UNSUB to the hub (dropped while not connected: the next attach sends {@link patterns}). */
  constructor(
    private readonly stats: BusStats,
    private readonly codec: Codec<unknown>,
    private readonly control: (frame: Uint8Array) => void,
  ) {}

  /** The patterns watched now (registered again on every connection). */
  patterns(): IterableIterator<string> {
    return this.interests.keys()
  }

  /** Messages on topics matching `pattern`, each turned into a delivery to `subscriber` by `make`. */
  watch<T>(pattern: string, make: (subscriber: Subscriber<T>) => Deliver): Observable<T> {
    return new Observable<T>((subscriber) => {
      let matcher: TopicMatcher
      try {
        matcher = compileTopic(pattern)
      } catch (e) {
        subscriber.error(e)
        return
      }
      if (this.closed) {
        subscriber.complete()
        return
      }
      const deliver = make(subscriber)
      let interest = this.interests.get(pattern)
      if (interest === undefined) {
        if (this.interests.size >= MAX_PATTERNS) {
          // The hub would drop this client for it (and it would reconnect with the same SUBs forever).
          subscriber.error(new InvalidArgumentError(`a bus client can watch at most ${MAX_PATTERNS} distinct patterns`))
          return
        }
        interest = { matcher, listeners: new Map() }
        this.interests.set(pattern, interest)
        this.routes.clear()
        this.changes++
        this.control(encodeSub(pattern))
      }
      interest.listeners.set(deliver, () => subscriber.complete())
      const own = interest
      return () => {
        own.listeners.delete(deliver)
        if (own.listeners.size === 0 && this.interests.get(pattern) === own) {
          this.interests.delete(pattern)
          this.routes.clear()
          this.changes++
          if (!this.closed) this.control(encodeUnsub(pattern))
        }
      }
    })
  }

  /** A MSG. */
  onMessage(topic: string, payload: Uint8Array, origin: string, seq: number): void {
    this.deliver(topic, payload, origin, seq, this.targets(topic))
  }

  /** A MSGS: consecutive messages of one sender on one topic. */
  onMessages(frame: Uint8Array, f: Batch<'msgs'> & { origin: string }): void {
    const { topic, origin } = f
    let changes = this.changes
    let targets = this.targets(topic)
    forEachEntry(frame, f, (seq, from, to) => {
      // A handler (un)subscribed during the batch: the rest goes where single MSGs would go now.
      if (changes !== this.changes) {
        changes = this.changes
        targets = this.targets(topic)
      }
      this.deliver(topic, frame.subarray(from, to), origin, seq, targets)
    })
  }

  /** Completes every subscriber (the bus closed); later subscribers complete at once. */
  close(): void {
    this.closed = true
    const completers = [...this.interests.values()].flatMap((i) => [...i.listeners.values()])
    for (const complete of completers) complete()
    this.interests.clear()
    this.routes.clear()
  }

  /** The interests `topic` matches (cached until interests change). */
  private targets(topic: string): Interest[] {
    let targets = this.routes.get(topic)
    if (targets === undefined) {
      targets = []
      for (const i of this.interests.values()) if (i.matcher.matches(topic)) targets.push(i)
      if (this.routes.size > 1000) this.routes.clear()
      this.routes.set(topic, targets)
    }
    return targets
  }

  private deliver(topic: string, payload: Uint8Array, origin: string, seq: number, targets: Interest[]): void {
    const w = this.seen.get(origin)
    if (w === undefined) {
      if (this.seen.size >= 10_000) this.seen.delete(this.seen.keys().next().value!)
      this.seen.set(origin, new SequenceWindow(DEDUPE_WINDOW, seq, MAX_SEQ_JUMP))
    } else {
      const verdict = w.check(seq)
      if (verdict === 'implausible') {
        w.refuse(seq)
        this.stats.implausible++
        return
      }
      if (verdict !== 'new') {
        this.stats.duplicates++
        return
      }
      w.accept(seq)
    }
    if (targets.length === 0) return // interest just withdrawn
    let data: unknown
    try {
      data = decodeWith(this.codec, payload)
    } catch {
      this.stats.undecodable++
      return
    }
    this.stats.received++
    for (const interest of targets) for (const deliver of interest.listeners.keys()) deliver(topic, data, origin, seq, payload.length)
  }
}
