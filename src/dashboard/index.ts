/**
 * The live dashboard: a page with the topology of nodes and links, their rates and troubles,
 * served with `/metrics` from one HTTP server on 127.0.0.1.
 * @module
 */
export { startDashboard, type Dashboard, type DashboardOptions, DEFAULT_DASHBOARD_OPTIONS } from './server.js'
export { buildView, type View, type ViewNode, type ViewLink } from './view.js'
