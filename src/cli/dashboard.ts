/**
 * `rxnet dashboard [--mesh NAME] [--bus PATH] [--cluster [PID]] [--port N] [--secret-file F]`: a live
 * page of a running system on 127.0.0.1 (URL printed), with `/metrics` beside it. It watches the mesh
 * as an observer (never a member), asks the hub for its stats on the reserved `$SYS` topic, and reads
 * a cluster primary's view from its private socket (`cluster({ metricsSocket: true })`).
 * @module
 */
import type { Observable } from 'rxjs'
import { connectBus } from '../bus/client.js'
import { startDashboard } from '../dashboard/server.js'
import { InvalidArgumentError } from '../errors.js'
import { hubStats$ } from '../metrics/hub-stats.js'
import { findCluster, watchCluster } from '../metrics/cluster-socket.js'
import { observeMesh } from '../metrics/observe.js'
import type { MetricsSnapshot } from '../metrics/snapshot.js'
import { intFlag, parseCommand, readSecret, SECRET_ON_COMMAND_LINE, untilSignal } from './args.js'

const HELP = `usage: rxnet dashboard [--mesh NAME] [--bus PATH] [--cluster [PID]] [--port N] [--interface A] [--seed host:port ...] [--secret-file F]

Serves a live page of a running system on http://127.0.0.1:PORT/ (and Prometheus text on /metrics):
the nodes of mesh NAME and the links between them (state, RTT, msg/s, bytes/s, drops), the hub at
PATH with its clients, the workers of a cluster with their restarts and links. The dashboard is never
a member of what it watches.

  --mesh NAME        watch mesh NAME (discovered over mDNS on --interface, or through --seed)
  --bus PATH         watch the hub listening on PATH (its stats, its clients and their subscriptions)
  --cluster [PID]    watch the running cluster (the one, or the primary PID) started with
                     cluster({ metricsSocket: true }), through its socket in your private directory
  --port N           TCP port of the page (default 0: any free port; the URL is printed)
  --interface A      interface for mesh discovery (default 127.0.0.1: this machine)
  --seed host:port   dial this mesh node directly (repeatable)
  --secret-file F    file holding the mesh secret, or set RXNET_SECRET (a wrong secret sees nothing)`

/** Runs `rxnet dashboard`; resolves to the exit code. */
export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(
    {
      name: 'dashboard',
      usage: HELP,
      options: {
        mesh: { type: 'string' },
        bus: { type: 'string' },
        cluster: { type: 'boolean', default: false },
        port: { type: 'string' },
        interface: { type: 'string', default: '127.0.0.1' },
        seed: { type: 'string', multiple: true, default: [] },
        'secret-file': { type: 'string' },
      },
      positionals: ['[PID]'],
      required: 0,
      refused: { secret: SECRET_ON_COMMAND_LINE },
    },
    args,
  )
  if (parsed === undefined) return 0
  const { values, positionals } = parsed
  if (values.mesh === undefined && values.bus === undefined && !values.cluster) throw new InvalidArgumentError('name something to watch: --mesh NAME, --bus PATH and/or --cluster [PID]')
  if (positionals.length > 0 && !values.cluster) throw new InvalidArgumentError(`unexpected argument "${positionals[0]}" (a PID goes after --cluster)`)
  const pid = positionals.length === 0 ? undefined : intFlag('cluster', positionals[0], 0, 1, 2 ** 31 - 1)
  if (values['secret-file'] !== undefined && values.mesh === undefined) throw new InvalidArgumentError('--secret-file needs --mesh')
  const port = intFlag('port', values.port, 0, 0, 65535)
  const secret = values.mesh === undefined ? undefined : readSecret(values['secret-file'])
  const iface = values.interface === 'all' ? undefined : values.interface
  const sources: Observable<MetricsSnapshot>[] = []
  const titles: string[] = []
  if (values.mesh !== undefined) {
    sources.push(observeMesh(values.mesh, { interface: iface, seeds: values.seed, secret }))
    titles.push(`mesh "${values.mesh}"`)
  }
  if (values.cluster) {
    const path = findCluster(pid) // ERR_NO_CLUSTER (exit 1) before anything is started; several without a PID: usage (exit 2)
    sources.push(watchCluster(pid))
    titles.push(`cluster ${path}`)
  }
  const bus = values.bus === undefined ? undefined : connectBus(values.bus)
  if (bus !== undefined) {
    sources.push(hubStats$(bus))
    titles.push(`hub ${values.bus}`)
  }
  const stopped = untilSignal() // before the URL is printed: whoever waits for it may stop us at once
  const dashboard = await startDashboard({ sources, port, title: titles.join(' · ') })
  console.log(`dashboard: ${dashboard.url}`)
  await stopped
  await dashboard.close()
  await bus?.close()
  return 0
}
