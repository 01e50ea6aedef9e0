/**
 * Where the mesh dials, and when: the table of dial targets (mDNS services, seeds, and the listen
 * ports peers announced), their expiry, the dial queue bounded by `maxConcurrentDials` and the
 * `maxDialsPerSecond` token bucket, and redials with jittered exponential backoff. The state
 * machine (`./mesh.ts`) makes one attempt at a time ({@link DialHost.dialOnce}) and says when a
 * peer left; choosing targets and timing attempts is all here.
 * @module
 */
import { backoffDelay } from '../backoff.js'
import { ConnectionError, DuplicateIdError, NameMismatchError, RxnetError, VersionMismatchError } from '../errors.js'
import { type MeshEvent, type MeshStats, parseSeed, type Resolved } from './options.js'

/** A place to dial (mDNS service, seed, or an inbound peer's announced listen port) and its backoff state. */
export interface Target {
  key: string
  kind: 'mdns' | 'seed' | 'learned'
  addresses: string[]
  port: number
  /** The node's id, once known (a seed's is learned from its answer). */
  id: string | undefined
  /** Dials that failed in a row. */
  attempt: number
  timer: NodeJS.Timeout | undefined
  dialing: boolean
  /** `'mdns'` only: when the announcement runs out (ms since the epoch), and how long one holds. */
  expires: number
  ttl: number
}

/** What the dialer needs from the mesh. */
export interface DialHost {
  /** True once the mesh is closing: nothing new is dialled. */
  readonly closing: boolean
  /** A link to `id` is up. */
  connected(id: string): boolean
  /** An outbound dial to `id` is in its handshake. */
  handshaking(id: string): boolean
  /** One attempt at `host`: resolves once established (or superseded by the tie-break), rejects on failure. */
  dialOnce(t: Target, host: string): Promise<void>
  /** A `discovered` or `dial-failed` event. */
  event(e: Extract<MeshEvent, { type: 'discovered' | 'dial-failed' }>): void
  /** An error worth a human's attention (`errors$`). */
  error(e: RxnetError): void
}

/** How often discovered targets are checked for expiry, ms. */
const SWEEP_INTERVAL = 5_000

/** The dial targets of one mesh node and the scheduling of their dials. */
export class Dialer {
  private readonly targets = new Map<string, Target>()
  /** Targets due for a dial, waiting for a slot (concurrency and rate bounded). */
  private readonly queue = new Set<Target>()
  private mdnsTargets = 0
  private dialing = 0
  private tokens: number
  private tokensAt = Date.now()
  private pumpTimer: NodeJS.Timeout | undefined
  private sweepTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly host: DialHost,
    private readonly o: Resolved,
    private readonly stats: MeshStats,
    /** True when an address is reachable through the mesh's interface. */
    private readonly reachable: (address: string) => boolean,
  ) {
    this.tokens = o.maxConcurrentDials
  }

  /** Dial targets known now. */
  get size(): number {
    return this.targets.size
  }

  /** Dials in flight now. */
  get inFlight(): number {
    return this.dialing
  }

  /** Dials a seed (`host:port`, validated by createMesh) now, and again after every failure. */
  seed(seed: string): void {
    const { host, port } = parseSeed(seed)
    this.scheduleDial(this.add(`seed:${seed}`, 'seed', [host], port, undefined), 0)
  }

  /** Starts forgetting discovered nodes whose announcement ran out. */
  startSweep(): void {
    this.sweepTimer = setInterval(this.sweep, SWEEP_INTERVAL)
    this.sweepTimer.unref()
  }

  /** An mDNS answer for node `id`. */
  discovered(id: string, addresses: string[], port: number, ttl: number): void {
    if (this.host.closing || addresses.length === 0) return
    let t = this.targets.get(id)
    if (t === undefined && this.mdnsTargets >= this.o.maxTargets && !this.evict()) {
      this.stats.targetsRefused++
      return
    }
    this.host.event({ type: 'discovered', id, addresses, port })
    t = this.add(id, 'mdns', addresses, port, id)
    t.ttl = ttl
    t.expires = Date.now() + ttl
    if (this.host.connected(id) || t.dialing || t.timer !== undefined || this.queue.has(t)) return
    // The smaller id dials first; the larger one waits a little so simultaneous dials are rare.
    this.scheduleDial(t, this.o.id < id ? 0 : jitter(this.o.reconnectDelay * 3))
  }

  /** Node `id` said goodbye over mDNS. */
  serviceDown(id: string): void {
    const t = this.targets.get(id)
    if (t !== undefined && t.kind === 'mdns') this.forget(t)
  }

  /** A peer that dialled us announced its listen port: redial it there if it leaves (unless a target has its id). */
  learned(id: string, address: string, port: number): void {
    if (port > 0 && ![...this.targets.values()].some((t) => t.id === id)) this.add(`peer:${id}`, 'learned', [address], port, id)
  }

  /** The link to `id` ended: redial its targets (later, and never a learned one, after a goodbye). */
  peerLeft(id: string, saidGoodbye: boolean): void {
    if (this.host.closing) return
    for (const t of [...this.targets.values()]) {
      if (t.id !== id) continue
      if (saidGoodbye && t.kind === 'learned') {
        this.forget(t)
        continue
      }
      t.attempt = 0
      const base = saidGoodbye ? this.o.maxReconnectDelay : this.o.reconnectDelay
      this.scheduleDial(t, jitter(this.o.id < id ? base : base * 3))
    }
  }

  /** Stops every timer and forgets every target. */
  close(): void {
    for (const t of this.targets.values()) clearTimeout(t.timer)
    this.targets.clear()
    this.queue.clear()
    clearTimeout(this.pumpTimer)
    clearInterval(this.sweepTimer)
  }

  /** Makes room for a newly discovered node: forgets the discovered target that failed most (never a fresh one). */
  private evict(): boolean {
    let worst: Target | undefined
    for (const t of this.targets.values()) {
      if (t.kind !== 'mdns' || t.dialing || t.attempt === 0 || (t.id !== undefined && this.host.connected(t.id))) continue
      if (worst === undefined || t.attempt > worst.attempt) worst = t
    }
    if (worst !== undefined) this.forget(worst)
    return worst !== undefined
  }

  /** Drops a target and whatever dial it had pending; a discovered one is counted in `targetsExpired`. */
  private forget(t: Target): void {
    if (this.targets.get(t.key) !== t) return
    clearTimeout(t.timer)
    t.timer = undefined
    this.queue.delete(t)
    this.targets.delete(t.key)
    if (t.kind === 'mdns') {
      this.mdnsTargets--
      this.stats.targetsExpired++
    }
  }

  /** Forgets discovered nodes whose announcement ran out (those connected now are kept fresh). */
  private readonly sweep = (): void => {
    const now = Date.now()
    for (const t of [...this.targets.values()]) {
      if (t.kind !== 'mdns') continue
      if (t.id !== undefined && this.host.connected(t.id)) t.expires = now + t.ttl
      else if (t.expires < now && !t.dialing) this.forget(t)
    }
  }

  private add(key: string, kind: Target['kind'], addresses: string[], port: number, id: string | undefined): Target {
    let t = this.targets.get(key)
    if (t === undefined) {
      t = { key, kind, addresses, port, id, attempt: 0, timer: undefined, dialing: false, expires: Infinity, ttl: 0 }
      this.targets.set(key, t)
      if (kind === 'mdns') this.mdnsTargets++
    } else if (kind !== 'learned') {
      if (kind === 'mdns' && t.kind !== 'mdns') this.mdnsTargets++
      else if (kind !== 'mdns' && t.kind === 'mdns') this.mdnsTargets--
      t.kind = kind
      t.addresses = addresses
      t.port = port
    }
    return t
  }

  /** Queues a dial of `t` after `delay` ms; it starts when a dial slot and the rate allow. */
  private scheduleDial(t: Target, delay: number): void {
    if (this.host.closing) return
    clearTimeout(t.timer)
    t.timer = setTimeout(() => {
      t.timer = undefined
      if (this.host.closing || this.targets.get(t.key) !== t) return
      this.queue.add(t)
      this.pump()
    }, delay)
    t.timer.unref()
  }

  /**
   * Starts queued dials while fewer than `maxConcurrentDials` are in flight and the token bucket
   * (`maxDialsPerSecond`, burst `maxConcurrentDials`) allows; targets that never failed go first.
   */
  private pump(): void {
    clearTimeout(this.pumpTimer)
    this.pumpTimer = undefined
    const { maxConcurrentDials: slots, maxDialsPerSecond: rate } = this.o
    while (this.queue.size > 0 && this.dialing < slots && !this.host.closing) {
      const now = Date.now()
      this.tokens = Math.min(slots, this.tokens + ((now - this.tokensAt) * rate) / 1000)
      this.tokensAt = now
      if (this.tokens < 1) {
        this.pumpTimer = setTimeout(() => this.pump(), Math.ceil(((1 - this.tokens) * 1000) / rate))
        this.pumpTimer.unref()
        return
      }
      let next: Target | undefined
      for (const t of this.queue) {
        next ??= t
        if (t.attempt === 0) {
          next = t
          break
        }
      }
      this.queue.delete(next!)
      this.tokens--
      void this.dial(next!)
    }
  }

  /** Tries each address of `t` in turn; after a failure, counts it and schedules the redial. */
  private async dial(t: Target): Promise<void> {
    if (this.host.closing || this.targets.get(t.key) !== t || t.dialing) return
    if (t.id !== undefined && (this.host.connected(t.id) || this.host.handshaking(t.id))) return
    if (t.expires < Date.now()) return this.forget(t)
    // Seeds are the user's own choice (checked against a loopback interface by createMesh).
    const hosts = t.kind === 'seed' ? t.addresses : t.addresses.filter(this.reachable)
    if (hosts.length === 0) return this.forget(t)
    t.dialing = true
    this.dialing++
    this.stats.peakDialsInFlight = Math.max(this.stats.peakDialsInFlight, this.dialing)
    let error: RxnetError | undefined
    try {
      for (const host of hosts) {
        try {
          await this.host.dialOnce(t, host)
          t.attempt = 0
          return
        } catch (e) {
          error = e instanceof RxnetError ? e : new ConnectionError(String(e), e)
          if (error instanceof NameMismatchError || error instanceof VersionMismatchError || error instanceof DuplicateIdError) break
        }
      }
    } finally {
      t.dialing = false
      this.dialing--
      this.pump()
    }
    if (this.host.closing || this.targets.get(t.key) !== t) return
    this.stats.dialFailures++
    if (error !== undefined) {
      this.host.event({ type: 'dial-failed', error, target: `${t.addresses.join('|')}:${t.port}` })
      if (!(error instanceof ConnectionError) && !(error instanceof DuplicateIdError)) this.host.error(error)
    }
    if (t.id !== undefined && this.host.connected(t.id)) return
    t.attempt++
    if (t.kind === 'mdns' && t.attempt >= this.o.maxDialFailures) return this.forget(t)
    this.scheduleDial(t, backoff(t.attempt, this.o.reconnectDelay, this.o.maxReconnectDelay))
  }
}

function jitter(ms: number, random = Math.random): number {
  return Math.round(ms * (0.5 + random()))
}

/**
 * @internal Delay before redial number `attempt` (1, 2, ...): `base` doubled per failure, jittered
 * ±50%, never above `max` (the jitter is applied before the cap, so `maxReconnectDelay` holds).
 */
export function backoff(attempt: number, base: number, max: number, random = Math.random): number {
  // The shared backoffDelay: 1.5 base 2^attempt less up to 2/3 of it is base 2^attempt ±50%; capped after the jitter.
  return Math.min(max, backoffDelay(attempt, { initialDelay: base * 1.5, maxDelay: Infinity, jitter: 2 / 3, random: () => 1 - random() }))
}
