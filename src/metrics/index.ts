/**
 * Metrics as data: every transport's counters as an Observable of snapshots, rates derived in one
 * place, and exporters (Prometheus text, OpenTelemetry observable instruments).
 * @module
 */
export { type MetricsSnapshot, type LinkSnapshot, type LinkCounters, type LinkState, type WorkerSnapshot, type MetricsTransport, withRates, deriveRates } from './snapshot.js'
export { meshMetrics, hubMetrics, busMetrics, multicastMetrics, clusterMetrics, type MetricsOptions, DEFAULT_METRICS_OPTIONS } from './sources.js'
export { METRICS, DEFAULT_RTT_BUCKETS, type MetricName } from './names.js'
export { type MetricsSources } from './store.js'
export { prometheusExporter, serveMetrics, type PrometheusExporter, type PrometheusOptions, type ServeMetricsOptions, type MetricsServer, DEFAULT_SERVE_METRICS_OPTIONS } from './prometheus.js'
export { otelBridge, type OtelBridge, type OtelBridgeOptions } from './otel.js'
export { observeMesh, type ObserveMeshOptions } from './observe.js'
export { encodeSummary, decodeSummary, SUMMARY_VERSION, MAX_SUMMARY_LINKS, MAX_SUMMARY_BYTES } from './summary.js'
export { hubStats$ } from './hub-stats.js'
export { SYS_HUB_STATS_REQUEST, SYS_HUB_STATS_PATTERN, SYS_LEASE, MAX_SYS_CLIENTS, MAX_SYS_PATTERNS, type HubStatsReply, type HubClientInfo } from '../bus/sys.js'
export { reportClusterMetrics, clusterView } from './cluster.js'
export { serveClusterView, watchCluster, findCluster, clusterSocketPath, clusterSocketDirectory, type ClusterViewServer } from './cluster-socket.js'
