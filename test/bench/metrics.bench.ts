/**
 * Metrics overhead (loopback / Unix socket only; every loop bounded in count and time): throughput
 * with metrics enabled and an observer attached against the same transport without, interleaved in
 * the same run (target >= 0.95x).
 * - Mesh, 1 KiB raw messages from a forked sender (mesh.peer.ts) to a node here. "observed": the
 *   node has meshMetrics (1 s), a Prometheus exporter scraped every second, and an observer
 *   (observeMesh, the dashboard's source) attached, so it also sends a stats summary every second.
 * - Bus, ~100 B JSON client -> hub -> client (bus.peer.ts). "observed": busMetrics and hubMetrics
 *   (1 s) exported to Prometheus and scraped every second, and a second client asking the hub for
 *   its `$SYS` stats every second (hubStats$).
 */
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import { filter, firstValueFrom, timeout, type Subscription } from 'rxjs'
import { busMetrics, connectBus, hubMetrics, hubStats$, meshMetrics, observeMesh, prometheusExporter, startHub, type Mesh, type PrometheusExporter } from '../../src/index.js'
import { median, type BenchContext } from './harness.js'
import { meshSample, startSender } from './mesh.bench.js'
import { sample, startPeer, stopPeer } from './bus.bench.js'

const DURATION_MS = Number(process.env.RXNET_BENCH_MS ?? 2000)
const SIZE = 1024

/** What "observed" adds to a process: a Prometheus exporter scraped every second, plus `extra` subscriptions. */
async function observe(exporterOf: () => Promise<PrometheusExporter>, extra: Subscription[]): Promise<() => void> {
  const exporter = await exporterOf()
  const scrape = setInterval(() => void exporter.metrics(), 1000)
  return () => {
    clearInterval(scrape)
    exporter.close()
    for (const s of extra) s.unsubscribe()
  }
}

/** The observed mesh case: meshMetrics to a Prometheus exporter scraped every second, and an observer attached (it gets a summary every second). */
async function observeNode(mesh: Mesh, port: number): Promise<() => void> {
  const watched = observeMesh(mesh.name, { interface: '127.0.0.1', discovery: false, seeds: [`127.0.0.1:${port}`] })
  const first = firstValueFrom(watched.pipe(filter((s) => s.node === mesh.id), timeout(10_000)))
  const sub = watched.subscribe()
  const stop = await observe(() => prometheusExporter(meshMetrics(mesh)), [sub])
  await first // the observer is attached and receiving summaries
  return stop
}

/** Runs both cases `runs` times, alternating which goes first (the machine is shared). */
async function interleaved(ctx: BenchContext, what: string, cases: Record<'plain' | 'observed', () => Promise<number>>): Promise<Record<'plain' | 'observed', number[]>> {
  const samples = { plain: [] as number[], observed: [] as number[] }
  await cases.plain() // warm-up
  await cases.observed()
  for (let i = 0; i < ctx.runs; i++) {
    for (const k of i % 2 === 0 ? (['plain', 'observed'] as const) : (['observed', 'plain'] as const)) {
      const rate = await cases[k]()
      samples[k].push(rate)
      ctx.log(`${what} ${k}: ${Math.round(rate).toLocaleString('en')} msg/s`)
    }
  }
  return samples
}

export default async function (ctx: BenchContext): Promise<void> {
  // Mesh.
  const sender = await startSender()
  let mesh
  try {
    mesh = await interleaved(ctx, 'mesh', { plain: () => meshSample(sender, SIZE, undefined, undefined, DURATION_MS), observed: () => meshSample(sender, SIZE, undefined, observeNode, DURATION_MS) })
  } finally {
    sender.kill()
  }
  ctx.report({ name: `mesh ${SIZE}B`, unit: 'msg/s', median: median(mesh.plain), samples: mesh.plain, params: { durationMs: DURATION_MS } })
  ctx.report({ name: `mesh ${SIZE}B, metrics + observer`, unit: 'msg/s', median: median(mesh.observed), samples: mesh.observed, baseline: `mesh ${SIZE}B`, minRatio: 0.95 })

  // Bus.
  const path = `${os.tmpdir()}/rxnet-bench-metrics-${randomBytes(4).toString('hex')}.sock`
  const hub = await startHub({ path })
  const receiver = connectBus(path)
  const peer = await startPeer(['bus', path])
  const busSample = async (observed: boolean): Promise<number> => {
    let stop = (): void => {}
    let watcher: ReturnType<typeof connectBus> | undefined
    if (observed) {
      watcher = connectBus(path)
      const stats = hubStats$(watcher)
      const first = firstValueFrom(stats.pipe(timeout(10_000)))
      const sub = stats.subscribe()
      stop = await observe(() => prometheusExporter([busMetrics(receiver), hubMetrics(hub)]), [sub])
      await first
    }
    try {
      return await sample(peer, (onValue) => {
        const sub = receiver.messages$<{ i: number }>('bench.>').subscribe(onValue)
        return () => sub.unsubscribe()
      })
    } finally {
      stop()
      await watcher?.close()
    }
  }
  let bus
  try {
    bus = await interleaved(ctx, 'bus', { plain: () => busSample(false), observed: () => busSample(true) })
  } finally {
    await stopPeer(peer)
    await receiver.close()
    await hub.close()
  }
  ctx.report({ name: 'bus json 100B', unit: 'msg/s', median: median(bus.plain), samples: bus.plain })
  ctx.report({ name: 'bus json 100B, metrics + $SYS observer', unit: 'msg/s', median: median(bus.observed), samples: bus.observed, baseline: 'bus json 100B', minRatio: 0.95 })
}
