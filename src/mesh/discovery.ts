/**
 * DNS-SD over mDNS for the mesh, on bonjour-service: advertises this node as `_rxnet._tcp` with TXT
 * `mesh=<name> id=<id>` and browses for the others. Emits plain `up` / `down` events; the mesh
 * state machine decides what to dial.
 * @module
 */
import { isIPv4 } from 'node:net'
import os from 'node:os'
import { Bonjour } from 'bonjour-service'
import { Subject } from 'rxjs'
import { ConnectionError, type RxnetError } from '../errors.js'
import { waitFor } from '../wait.js'

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
  /** Addresses to try, in order (advertised ones, then the packet's source address), each reachable through the interface. */
  addresses: string[]
  /** How long the announcement holds, in ms (its record TTL, at most {@link MAX_DISCOVERY_TTL}). */
  ttl: number
}

export type DiscoveryEvent = { type: 'up'; node: DiscoveredNode } | { type: 'down'; id: string }

/** Longest time a discovered node is kept without being heard again, whatever TTL it announces, ms. */
export const MAX_DISCOVERY_TTL = 300_000

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

/** The part of multicast-dns a browser needs. */
interface MdnsSocket {
  on(event: 'response', listener: (packet: DnsPacket, rinfo: { address: string }) => void): void
  removeListener(event: 'response', listener: (packet: DnsPacket, rinfo: { address: string }) => void): void
  query(name: string, type: string): void
}
interface DnsRecord {
  name: string
  type: string
  ttl?: number
  data: unknown
}
interface DnsPacket {
  answers?: DnsRecord[]
  additionals?: DnsRecord[]
}

/** Instance names remembered for goodbyes (oldest forgotten first). */
const MAX_INSTANCES = 4096
const FQDN_TYPE = `_${SERVICE_TYPE}._tcp.local`

/**
 * Owns one bonjour-service instance for publishing, and browses on its mDNS socket itself
 * (bonjour-service's browser keeps every service it ever saw, with no expiry and a linear search
 * per record). Answers from a source not reachable through the interface are ignored and counted.
 */
export class Discovery {
  readonly events = new Subject<DiscoveryEvent>()
  readonly errors = new Subject<RxnetError>()
  /** mDNS answers ignored because their source is not reachable through the interface. */
  ignored = 0
  private readonly bonjour: Bonjour
  private readonly mdns: MdnsSocket
  private readonly reachable: (address: string) => boolean
  private queryTimer: NodeJS.Timeout | undefined
  private queryDelay = 1000
  private closed: Promise<void> | undefined
  /** Instance name → node id of services seen (the most recent {@link MAX_INSTANCES}), for goodbyes without TXT. */
  private readonly instances = new Map<string, string>()

  constructor(private readonly opts: DiscoveryOptions) {
    const mdns: Record<string, unknown> = {}
    if (opts.interface !== undefined) {
      // mDNS runs over IPv4: a loopback interface of either family means 127.0.0.1.
      mdns.interface = isLoopback(opts.interface) ? '127.0.0.1' : opts.interface
      mdns.bind = '0.0.0.0'
    }
    if (opts.mdnsPort !== undefined) mdns.port = opts.mdnsPort
    this.reachable = reachableThrough(opts.interface)
    this.bonjour = new Bonjour(mdns, (err: Error) => this.errors.next(new ConnectionError(`mDNS: ${err.message}`, err)))
    if (opts.advertise !== false) {
      const txt: Record<string, string> = { mesh: opts.name, id: opts.id, v: '1' }
      if (opts.listenAddress !== undefined) txt.ip = opts.listenAddress
      this.bonjour.publish({
        name: `${opts.name}-${opts.id}`.slice(0, 63),
        type: SERVICE_TYPE,
        port: opts.port,
        txt,
        probe: false,
        disableIPv6: isLoopback(opts.interface),
      })
    }
    this.mdns = (this.bonjour as unknown as { server: { mdns: MdnsSocket } }).server.mdns
    this.mdns.on('response', this.onResponse)
    this.mdns.query(FQDN_TYPE, 'PTR')
    this.scheduleQuery()
  }

  private readonly onResponse = (packet: DnsPacket, rinfo: { address: string }): void => {
    const records = [...(packet.answers ?? []), ...(packet.additionals ?? [])]
    if (!records.some((r) => r.type === 'PTR' && sameName(r.name, FQDN_TYPE))) return
    if (!this.reachable(rinfo.address)) {
      this.ignored++
      return
    }
    for (const ptr of records) {
      if (ptr.type !== 'PTR' || !sameName(ptr.name, FQDN_TYPE) || typeof ptr.data !== 'string') continue
      const instance = ptr.data.toLowerCase()
      const node = this.nodeOf(ptr.data, records, rinfo.address)
      if ((ptr.ttl ?? 0) === 0) {
        // Goodbye: it may come without its TXT, so the id is also looked up by instance name.
        const id = node?.id ?? this.instances.get(instance)
        this.instances.delete(instance)
        if (id !== undefined) this.events.next({ type: 'down', id })
        continue
      }
      if (node === undefined || node.port === 0) continue
      this.instances.delete(instance)
      this.instances.set(instance, node.id)
      if (this.instances.size > MAX_INSTANCES) this.instances.delete(this.instances.keys().next().value!)
      this.events.next({ type: 'up', node: { ...node, ttl: Math.min(MAX_DISCOVERY_TTL, 1000 * Math.min(ptr.ttl ?? 0, node.ttl)) } })
    }
  }

  /** The node an instance name stands for, if its TXT names this mesh and another node. */
  private nodeOf(instance: string, records: DnsRecord[], referer: string): DiscoveredNode | undefined {
    let txt: Record<string, string> | undefined
    let srv: { port: number; target: string; ttl: number } | undefined
    for (const r of records) {
      if (!sameName(r.name, instance)) continue
      if (r.type === 'TXT') txt = decodeTxt(r.data)
      else if (r.type === 'SRV' && r.data !== null && typeof r.data === 'object') {
        const d = r.data as { port?: unknown; target?: unknown }
        srv = { port: Number(d.port), target: String(d.target ?? ''), ttl: r.ttl ?? 0 }
      }
    }
    if (txt === undefined || txt.mesh !== this.opts.name) return undefined
    const id = txt.id ?? ''
    if (id === '' || id === this.opts.id || Buffer.byteLength(id) > 48) return undefined
    const port = srv !== undefined && Number.isInteger(srv.port) && srv.port > 0 && srv.port < 65536 ? srv.port : 0
    const advertised: string[] = []
    for (const r of records) if ((r.type === 'A' || r.type === 'AAAA') && srv !== undefined && sameName(r.name, srv.target) && typeof r.data === 'string') advertised.push(r.data)
    return { id, port, addresses: this.addressesOf(txt, advertised, referer), ttl: srv?.ttl ?? 0 }
  }

  /** The TXT `ip`, else advertised addresses, then the packet source: each only if reachable through the interface. */
  private addressesOf(txt: Record<string, string>, advertised: string[], referer: string): string[] {
    const out: string[] = []
    const add = (a: string | undefined): void => {
      if (a && !out.includes(a) && this.reachable(a)) out.push(a)
    }
    if (txt.ip !== undefined && txt.ip !== '' && !isWildcard(txt.ip)) {
      // A node bound to one address: only that address reaches it (loopback ones only from this host).
      if (!isLoopback(txt.ip) || isLoopback(referer)) add(txt.ip)
      return out
    }
    if (isLoopback(this.opts.interface)) {
      // Loopback only: the peer is on this machine; reach it where its packet came from.
      add(referer)
      return out
    }
    if (this.opts.interface !== undefined) add(referer)
    for (const a of advertised) {
      if (a.toLowerCase().startsWith('fe80:')) continue // link-local needs a scope id we do not get
      add(a)
    }
    add(referer)
    return out
  }

  private scheduleQuery(): void {
    this.queryTimer = setTimeout(() => {
      this.mdns.query(FQDN_TYPE, 'PTR')
      this.queryDelay = Math.min(this.queryDelay * 2, 30_000)
      this.scheduleQuery()
    }, this.queryDelay)
    this.queryTimer.unref()
  }

  /** Sends goodbyes, stops browsing, closes the mDNS socket. Idempotent. */
  close(): Promise<void> {
    if (this.closed !== undefined) return this.closed
    clearTimeout(this.queryTimer)
    this.mdns.removeListener('response', this.onResponse)
    const bonjour = this.bonjour
    // Goodbyes get at most 1 s, then the socket goes either way.
    const unpublished = new Promise<void>((resolve) => bonjour.unpublishAll(() => resolve()))
    this.events.complete()
    this.errors.complete()
    this.closed = waitFor(unpublished, { timeout: 1000 })
      .catch(() => {}) // timed out: go on
      .then(() => waitFor(new Promise<void>((resolve) => bonjour.destroy(() => resolve())), { timeout: 1000 })) // bounded too: close() must end
      .catch(() => {})
    return this.closed
  }
}

function sameName(a: string, b: string): boolean {
  return a.length === b.length && a.toLowerCase() === b.toLowerCase()
}

/** TXT rdata (a list of `key=value` strings) as a map; the first value of a key wins, as RFC 6763 says. */
function decodeTxt(data: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  for (const item of Array.isArray(data) ? data : [data]) {
    const s = Buffer.isBuffer(item) ? item.toString('utf8') : typeof item === 'string' ? item : ''
    const eq = s.indexOf('=')
    const key = (eq < 0 ? s : s.slice(0, eq)).toLowerCase()
    if (key !== '' && !(key in out)) out[key] = eq < 0 ? '' : s.slice(eq + 1)
  }
  return out
}

/**
 * @internal Whether an address can be reached through `iface`: loopback addresses for a loopback
 * interface; addresses in the subnet of that NIC (its address and netmask) for a NIC address;
 * anything when no interface is set.
 */
export function reachableThrough(iface: string | undefined, interfaces = os.networkInterfaces()): (address: string) => boolean {
  if (iface === undefined) return () => true
  if (isLoopback(iface)) return (a) => isLoopback(a)
  const nic = Object.values(interfaces)
    .flatMap((l) => l ?? [])
    .find((a) => a.family === 'IPv4' && a.address === iface)
  if (nic === undefined) return (a) => a === iface
  const mask = ipv4ToInt(nic.netmask)
  const net = ipv4ToInt(iface) & mask
  return (a) => {
    const v = a.startsWith('::ffff:') ? a.slice(7) : a
    return isIPv4(v) && (ipv4ToInt(v) & mask) === net
  }
}

function ipv4ToInt(a: string): number {
  return a.split('.').reduce((n, part) => ((n << 8) | Number(part)) >>> 0, 0)
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
