/**
 * The stats summary a mesh node sends to its observers: a compact, bounded encoding of one
 * {@link MetricsSnapshot} (JSON; at most {@link MAX_SUMMARY_LINKS} links and
 * {@link MAX_SUMMARY_BYTES} bytes; no rates: the observer derives them; `at`: the origin's clock
 * when taken, decoded as `sentAt`). Pure encoder / decoder.
 * @module
 */
import { DecodeError } from '../errors.js'
import type { LinkSnapshot, MetricsSnapshot } from './snapshot.js'

/**
 * Summary format version.
 * @example
 * ```ts
 * import { SUMMARY_VERSION } from 'rxnet'
 * console.log(`summary format v${SUMMARY_VERSION}`)
 * ```
 */
export const SUMMARY_VERSION = 1
/**
 * Most links one summary carries (the rest are left out; `links_omitted` says how many).
 * @example
 * ```ts
 * import { MAX_SUMMARY_LINKS } from 'rxnet'
 * console.log(MAX_SUMMARY_LINKS) // 256 links per summary at most
 * ```
 */
export const MAX_SUMMARY_LINKS = 256
/**
 * Largest summary accepted or sent, bytes.
 * @example
 * ```ts
 * import { MAX_SUMMARY_BYTES } from 'rxnet'
 * console.log(MAX_SUMMARY_BYTES) // 65536
 * ```
 */
export const MAX_SUMMARY_BYTES = 64 * 1024

const LINK_COUNTERS = ['messages_received', 'messages_sent', 'received_bytes', 'sent_bytes', 'dropped_messages', 'overflows'] as const
const STATES = new Set(['up', 'suspect', 'down'])
const KINDS = new Set(['peer', 'link', 'client'])

/**
 * Encodes `s` as a summary; links past the bound are left out and counted in `gauges.links_omitted`.
 * @example
 * ```ts
 * import { encodeSummary, decodeSummary } from 'rxnet'
 * const bytes = encodeSummary(snapshot)
 * console.log(decodeSummary(bytes).node === snapshot.node) // true
 * ```
 */
export function encodeSummary(s: MetricsSnapshot): Uint8Array {
  const links = s.links.slice(0, MAX_SUMMARY_LINKS).map((l) => ({ kind: l.kind, from: l.from, to: l.to, state: l.state, rtt: l.rttSeconds, counters: l.counters, gauges: l.gauges }))
  const omitted = s.links.length - links.length
  const gauges = omitted > 0 ? { ...s.gauges, links_omitted: omitted } : s.gauges
  const body = { v: SUMMARY_VERSION, transport: s.transport, node: s.node, name: s.name, at: s.sentAt ?? s.time, counters: s.counters, gauges, links, ...(s.workers === undefined ? {} : { workers: s.workers }) }
  let bytes = Buffer.from(JSON.stringify(body))
  // Too big (long ids): drop links from the end until it fits.
  while (bytes.length > MAX_SUMMARY_BYTES && body.links.length > 0) {
    body.links.length = Math.floor(body.links.length / 2)
    body.gauges = { ...s.gauges, links_omitted: s.links.length - body.links.length }
    bytes = Buffer.from(JSON.stringify(body))
  }
  return bytes
}

function isNumberRecord(v: unknown): v is Record<string, number> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'number' && Number.isFinite(x))
}

/**
 * Decodes a summary received at `time` (the observer's clock, not the sender's). Throws
 * `ERR_DECODE` on anything that is not a well-formed summary of this version.
 * @example
 * ```ts
 * import { decodeSummary } from 'rxnet'
 * peer.source.subscribe((bytes) => console.log(decodeSummary(bytes).links.length))
 * ```
 */
export function decodeSummary(bytes: Uint8Array, time = Date.now()): MetricsSnapshot {
  if (bytes.length > MAX_SUMMARY_BYTES) throw new DecodeError('stats summary', new RangeError(`${bytes.length} bytes exceeds ${MAX_SUMMARY_BYTES}`))
  let b: Record<string, unknown>
  try {
    b = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as Record<string, unknown>
  } catch (e) {
    throw new DecodeError('stats summary', e)
  }
  const bad = (what: string): never => {
    throw new DecodeError('stats summary', new TypeError(`malformed ${what}`))
  }
  if (typeof b !== 'object' || b === null || b.v !== SUMMARY_VERSION) bad('version')
  if (b.transport !== 'mesh' || typeof b.node !== 'string' || typeof b.name !== 'string') bad('header')
  if (!isNumberRecord(b.counters) || !isNumberRecord(b.gauges) || !Array.isArray(b.links) || b.links.length > MAX_SUMMARY_LINKS) bad('counters')
  const links: LinkSnapshot[] = (b.links as Record<string, unknown>[]).map((l) => {
    if (typeof l !== 'object' || l === null || !KINDS.has(l.kind as string) || typeof l.from !== 'string' || typeof l.to !== 'string' || !STATES.has(l.state as string)) bad('link')
    if (!isNumberRecord(l.counters) || !isNumberRecord(l.gauges) || !LINK_COUNTERS.every((k) => k in (l.counters as object))) bad('link counters')
    if (l.rtt !== undefined && (typeof l.rtt !== 'number' || !(l.rtt >= 0))) bad('rtt')
    const snap: LinkSnapshot = { kind: l.kind as LinkSnapshot['kind'], from: l.from as string, to: l.to as string, state: l.state as LinkSnapshot['state'], counters: l.counters as unknown as LinkSnapshot['counters'], gauges: l.gauges as Record<string, number> }
    if (l.rtt !== undefined) snap.rttSeconds = l.rtt as number
    return snap
  })
  const out: MetricsSnapshot = { transport: 'mesh', node: b.node as string, name: b.name as string, time, counters: b.counters as Record<string, number>, gauges: b.gauges as Record<string, number>, links }
  if (b.at !== undefined) {
    if (typeof b.at !== 'number' || !Number.isFinite(b.at)) bad('time')
    out.sentAt = b.at as number
  }
  return out
}
