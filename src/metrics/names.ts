/**
 * The metric names table: every stem a snapshot may carry, what it means, and its Prometheus and
 * OpenTelemetry names. The exporters and the table in docs/observability.md ("Prometheus";
 * test/docs/readme.test.ts holds it to this list) come from here.
 * @module
 */

/**
 * One row of the names table.
 * @example
 * ```ts
 * import { METRICS } from 'rxnet'
 * for (const m of METRICS) console.log(m.prometheus, m.type, m.help)
 * ```
 */
export interface MetricName {
  /** Key in a snapshot's `counters` / `gauges` (or `rttSeconds` for the RTT). */
  stem: string
  /** `'node'`: one per transport instance; `'link'`: one per connection. */
  level: 'node' | 'link'
  type: 'counter' | 'gauge' | 'histogram'
  /** Prometheus name (with the `rxnet_` prefix, `_total` on counters, base units). */
  prometheus: string
  /** OpenTelemetry instrument name (messaging semantic conventions where one exists). */
  otel: string
  /** OpenTelemetry unit (UCUM). */
  unit: string
  help: string
}

function counter(level: MetricName['level'], stem: string, help: string, otel?: string, unit = '{message}'): MetricName {
  const base = level === 'link' ? `rxnet_link_${stem}` : `rxnet_${stem}`
  return { stem, level, type: 'counter', prometheus: `${base}_total`, otel: otel ?? `rxnet.${level === 'link' ? 'link.' : ''}${stem.replace(/_/g, '.')}`, unit, help }
}

function gauge(level: MetricName['level'], stem: string, help: string, unit = '1'): MetricName {
  const base = level === 'link' ? `rxnet_link_${stem}` : `rxnet_${stem}`
  return { stem, level, type: 'gauge', prometheus: base, otel: `rxnet.${level === 'link' ? 'link.' : ''}${stem.replace(/_/g, '.')}`, unit, help }
}

/**
 * Every metric rxnet exports. Node metrics carry the labels `transport`, `node` and `name`; link
 * metrics `transport`, `node` (near end), `peer` (far end) and `kind`.
 * @example
 * ```ts
 * import { METRICS } from 'rxnet'
 * console.log(METRICS.find((m) => m.stem === 'rtt_seconds')?.prometheus) // rxnet_link_rtt_seconds
 * ```
 */
export const METRICS: readonly MetricName[] = [
  counter('node', 'messages_received', 'Messages delivered to the application (mesh, cluster: over every link, ended ones included).', 'messaging.client.consumed.messages'),
  counter('node', 'messages_sent', 'Messages handed to the wire.', 'messaging.client.sent.messages'),
  counter('node', 'received_bytes', 'Payload bytes delivered.', undefined, 'By'),
  counter('node', 'sent_bytes', 'Payload bytes handed to the wire.', undefined, 'By'),
  counter('node', 'dropped_messages', 'Outbound messages discarded by an overflow policy, sent after close, or queued at close.'),
  counter('node', 'overflows', 'Times a send buffer was full when a message arrived.', undefined, '{event}'),
  counter('node', 'duplicate_messages', 'Bus: messages received twice (hub restart, two paths) and dropped.'),
  counter('node', 'undecodable_messages', 'Bus: messages the codec could not decode, dropped.'),
  counter('node', 'implausible_messages', 'Bus: messages whose sequence number jumped implausibly far, dropped.'),
  counter('node', 'reconnects', 'Bus: successful connections after the first.', undefined, '{connection}'),
  counter('node', 'accepted_connections', 'Mesh: inbound TCP connections accepted (before the handshake).', undefined, '{connection}'),
  counter('node', 'dial_attempts', 'Mesh: outbound connection attempts.', undefined, '{connection}'),
  counter('node', 'dial_failures', 'Mesh: outbound attempts that failed.', undefined, '{connection}'),
  counter('node', 'refused_connections', 'Mesh: inbound connections refused (bad handshake, wrong mesh, version or secret, duplicate id).', undefined, '{connection}'),
  counter('node', 'tiebreaks', 'Mesh: simultaneous dials resolved by the id tie-break.', undefined, '{connection}'),
  counter('node', 'link_failures', 'Mesh: links that ended with an error.', undefined, '{connection}'),
  counter('node', 'link_timeouts', 'Mesh: links dropped by failure detection.', undefined, '{connection}'),
  counter('node', 'peer_summaries_sent', 'Mesh: stats summaries sent to peers (a control message, every 2 s jittered).'),
  counter('node', 'peer_summaries_received', 'Mesh: well-formed stats summaries received from peers (the latest of each is forwarded to observers).'),
  counter('node', 'peer_summaries_garbage', 'Mesh: summary control messages from peers that did not decode or named another node (ignored; the link stays).'),
  counter('node', 'peer_summaries_dropped', 'Mesh: summaries not sent to a peer (send buffer full, too big) or not kept (too many peers).'),
  counter('node', 'summaries_skipped', 'Mesh (in the summaries observers get): stats summaries not sent to an observer whose send buffer was full.'),
  counter('node', 'messages_published', 'Hub: messages published by local clients.'),
  counter('node', 'messages_delivered', 'Hub: copies of messages written to local clients.'),
  counter('node', 'clients_dropped', 'Hub: clients dropped for bad input, overflow or slowness.', undefined, '{connection}'),
  counter('node', 'messages_bridged_out', 'Hub: messages sent to the multicast group.'),
  counter('node', 'messages_bridged_in', 'Hub: messages received from the multicast group.'),
  counter('node', 'too_large_messages', 'Hub: local messages too large for one datagram (not bridged).'),
  counter('node', 'datagrams_received', 'Multicast: datagrams accepted.', undefined, '{datagram}'),
  counter('node', 'datagrams_sent', 'Multicast: datagrams sent.', undefined, '{datagram}'),
  counter('node', 'echo_datagrams', 'Multicast: own datagrams looped back, dropped.', undefined, '{datagram}'),
  counter('node', 'duplicate_datagrams', 'Multicast: plain datagrams received twice, dropped.', undefined, '{datagram}'),
  counter('node', 'replayed_datagrams', 'Multicast: sealed datagrams received twice, dropped.', undefined, '{datagram}'),
  counter('node', 'bad_datagrams', 'Multicast and hub bridge: malformed, foreign or forged datagrams, dropped.', undefined, '{datagram}'),
  counter('node', 'gaps', 'Multicast: sequence numbers skipped (lost datagrams unless they arrive late).', undefined, '{datagram}'),
  counter('node', 'reordered_datagrams', 'Multicast: datagrams that arrived after a later one.', undefined, '{datagram}'),
  counter('node', 'send_errors', 'Multicast: datagrams the socket failed to send.', undefined, '{datagram}'),
  counter('node', 'worker_restarts', 'Cluster primary: worker restarts.', undefined, '{restart}'),
  counter('node', 'worker_exits', 'Cluster primary: worker exits seen.', undefined, '{exit}'),
  gauge('node', 'members', 'Mesh: connected members.', '{node}'),
  gauge('node', 'clients', 'Hub: connected clients.', '{connection}'),
  gauge('node', 'connected', 'Bus: 1 while connected to a hub.'),
  gauge('node', 'buffered_messages', 'Bus: messages in the outbox, not yet acknowledged.', '{message}'),
  gauge('node', 'buffered_bytes', 'Multicast: bytes waiting in the send queue.', 'By'),
  gauge('node', 'senders', 'Multicast: senders tracked.', '{sender}'),
  gauge('node', 'links', 'Cluster: open links to other processes.', '{connection}'),
  gauge('node', 'workers_online', 'Cluster primary: workers online or listening.', '{process}'),
  counter('link', 'messages_received', 'Messages received on the link (mesh: frames, heartbeats included).'),
  counter('link', 'messages_sent', 'Messages sent on the link.'),
  counter('link', 'received_bytes', 'Bytes received on the link.', undefined, 'By'),
  counter('link', 'sent_bytes', 'Bytes sent on the link.', undefined, 'By'),
  counter('link', 'dropped_messages', 'Outbound messages of the link discarded.'),
  counter('link', 'overflows', 'Times the link send buffer was full.', undefined, '{event}'),
  gauge('link', 'buffered_bytes', 'Bytes waiting in the link send buffer.', 'By'),
  gauge('link', 'up', '1 while the link is up or suspect, 0 once down.'),
  gauge('link', 'suspect', '1 while nothing arrived on the link for longer than suspectAfter.'),
  { stem: 'rtt_seconds', level: 'link', type: 'histogram', prometheus: 'rxnet_link_rtt_seconds', otel: 'rxnet.link.rtt', unit: 's', help: 'Heartbeat round-trip time of the link, sampled at every snapshot.' },
]

/**
 * Default buckets of `rxnet_link_rtt_seconds`: 100 µs to 1 s (LAN round trips).
 * @example
 * ```ts
 * import { DEFAULT_RTT_BUCKETS } from 'rxnet'
 * console.log(DEFAULT_RTT_BUCKETS.at(-1)) // 1 (second)
 * ```
 */
export const DEFAULT_RTT_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
