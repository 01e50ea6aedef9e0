/**
 * DNS-SD over mDNS for the mesh, on bonjour-service: advertises this node as `_rxnet._tcp` with TXT
 * `mesh=<name> id=<id>` and browses for the others. Emits plain `up` / `down` events; the mesh
 * state machine decides what to dial.
 * @module
 */
import { Bonjour, type Browser, type Service } from 'bonjour-service'
import { Subject } from 'rxjs'
import { ConnectionError, type RxnetError } from '../errors.js'

/**
 * DNS-SD service type of rxnet mesh nodes (`_rxnet._tcp`), with TXT records `mesh=<name>` and `id=<node id>`.
 *
 * @example
 * ```ts
 * import { SERVICE_TYPE } from 'rxnet'
 * console.log(`avahi-browse -rpt _${SERVICE_TYPE}._tcp`) // lists every rxnet node on the LAN
 * ```
 */
export const SERVICE_TYPE = 'rxnet'

/** A mesh node seen on mDNS. */
export interface DiscoveredNode {
  id: string
  port: number
  /** Addresses to try, in order (advertised ones, then the packet's source address). */
  addresses: string[]
}

export type DiscoveryEvent = { type: 'up'; node: DiscoveredNode } | { type: 'down'; id: string }

export interface DiscoveryOptions {
  name: string
  id: string
  port: number
  /** `'127.0.0.1'`: loopback only; an address: that NIC; undefined: every interface. */
  interface?: string
  /** An address the node listens on explicitly (advertised in TXT `ip=`), when not a wildcard. */
  listenAddress?: string
  /** UDP port of mDNS. @default 5353 */
  mdnsPort?: number
  /** Publish this node (false: browse only). @default true */
  advertise?: boolean
}

/** Owns one bonjour-service instance: publish + browse, re-query with backoff, clean goodbye. */
export class Discovery {
  readonly events = new Subject<DiscoveryEvent>()
  readonly errors = new Subject<RxnetError>()
  private readonly bonjour: Bonjour
  private readonly browser: Browser
  private queryTimer: NodeJS.Timeout | undefined
  private queryDelay = 1000
  private closed: Promise<void> | undefined

  constructor(private readonly opts: DiscoveryOptions) {
    const mdns: Record<string, unknown> = {}
    if (opts.interface !== undefined) {
      // mDNS runs over IPv4: a loopback interface of either family means 127.0.0.1.
      mdns.interface = isLoopback(opts.interface) ? '127.0.0.1' : opts.interface
      mdns.bind = '0.0.0.0'
    }
    if (opts.mdnsPort !== undefined) mdns.port = opts.mdnsPort
    this.bonjour = new Bonjour(mdns, (err: Error) => this.errors.next(new ConnectionError(`mDNS: ${err.message}`, err)))
    const loopbackOnly = isLoopback(opts.interface)
    if (opts.advertise !== false) {
      const txt: Record<string, string> = { mesh: opts.name, id: opts.id, v: '1' }
      if (opts.listenAddress !== undefined) txt.ip = opts.listenAddress
      this.bonjour.publish({
        name: `${opts.name}-${opts.id}`.slice(0, 63),
        type: SERVICE_TYPE,
        port: opts.port,
        txt,
        probe: false,
        disableIPv6: loopbackOnly,
      })
    }
    this.browser = this.bonjour.find({ type: SERVICE_TYPE })
    this.browser.on('up', this.onUp)
    this.browser.on('srv-update', this.onUp)
    this.browser.on('txt-update', this.onUp)
    this.browser.on('down', this.onDown)
    this.scheduleQuery()
  }

  private readonly onUp = (s: Service): void => {
    const txt = (s.txt ?? {}) as Record<string, unknown>
    if (String(txt.mesh ?? '') !== this.opts.name) return
    const id = String(txt.id ?? '')
    if (id === '' || id === this.opts.id || !Number.isInteger(s.port) || s.port <= 0) return
    this.events.next({ type: 'up', node: { id, port: s.port, addresses: this.addressesOf(s, txt) } })
  }

  private readonly onDown = (s: Service): void => {
    const txt = (s.txt ?? {}) as Record<string, unknown>
    if (String(txt.mesh ?? '') !== this.opts.name) return
    const id = String(txt.id ?? '')
    if (id !== '' && id !== this.opts.id) this.events.next({ type: 'down', id })
  }

  /** Advertised addresses filtered for this node's interface, the TXT `ip`, then the packet source. */
  private addressesOf(s: Service, txt: Record<string, unknown>): string[] {
    const out: string[] = []
    const add = (a: string | undefined): void => {
      if (a && !out.includes(a)) out.push(a)
    }
    const referer = s.referer?.address
    const iface = this.opts.interface
    if (typeof txt.ip === 'string' && txt.ip !== '' && !isWildcard(txt.ip)) {
      // A node bound to one address: only that address reaches it (loopback ones only from this host).
      if (!isLoopback(txt.ip) || isLoopback(referer)) add(txt.ip)
      return out
    }
    if (isLoopback(iface)) {
      // Loopback only: the peer is on this machine; reach it where its packet came from.
      if (isLoopback(referer)) add(referer)
      return out
    }
    if (iface !== undefined) add(referer)
    for (const a of s.addresses ?? []) {
      if (a.toLowerCase().startsWith('fe80:')) continue // link-local needs a scope id we do not get
      if (iface !== undefined && iface.includes('.') !== a.includes('.')) continue // same family as the interface
      add(a)
    }
    add(referer)
    return out
  }

  private scheduleQuery(): void {
    this.queryTimer = setTimeout(() => {
      this.browser.update()
      this.queryDelay = Math.min(this.queryDelay * 2, 30_000)
      this.scheduleQuery()
    }, this.queryDelay)
    this.queryTimer.unref()
  }

  /** Sends goodbyes, stops browsing, closes the mDNS socket. Idempotent. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      clearTimeout(this.queryTimer)
      this.browser.off('up', this.onUp)
      this.browser.off('srv-update', this.onUp)
      this.browser.off('txt-update', this.onUp)
      this.browser.off('down', this.onDown)
      this.browser.stop()
      const guard = setTimeout(finish, 1000)
      let done = false
      const bonjour = this.bonjour
      function finish(): void {
        if (done) return
        done = true
        clearTimeout(guard)
        bonjour.destroy(() => resolve())
      }
      this.bonjour.unpublishAll(finish)
      this.events.complete()
      this.errors.complete()
    })
    return this.closed
  }
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopback(a: string | undefined): boolean {
  if (a === undefined) return false
  return a.startsWith('127.') || a === '::1' || a.startsWith('::ffff:127.') || a === 'localhost'
}

/** True for 0.0.0.0 and ::. */
export function isWildcard(a: string): boolean {
  return a === '0.0.0.0' || a === '::'
}
