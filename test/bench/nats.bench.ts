/**
 * NATS benchmark (loopback only; a nats-server started here on 127.0.0.1 with JetStream in a temp
 * dir; every loop bounded in count and time). ~100 B JSON values, N per sample, sender in a forked
 * process, receiver in this one, samples of the cases interleaved:
 *   - raw nats.js publish -> nats-server -> raw nats.js subscribe (the baseline);
 *   - rxnet bus on NATS, emit -> nats-server -> messages$ (target >= 0.8x raw);
 *   - the local bus with its hub in its own process, emit -> hub -> messages$ (target >= 1.5x raw);
 *   - JetStream: durable emit -> stream -> messages$(p, { from: a Date just before }) (reported), vs
 *     plain nats.js js.publish (acks awaited per window) -> stream -> an ordered consumer from that Date.
 * A sample is the time from 'go' to the N-th value received, checked in order.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import { connect } from '@nats-io/transport-node'
import { jetstream } from '@nats-io/jetstream'
import { connectBus } from 'rxnet'
import { inOrderRate, median, root, script, type BenchContext } from './harness.js'
import { NATS_SERVER, startNats } from '../nats/harness.js'

const peer = script(import.meta.url, './nats.peer')
const N = 200_000
const N_DURABLE = 50_000
const SAMPLE_DEADLINE_MS = 60_000

function startPeer(args: string[], n = N, topic = 'bench.data'): Promise<ChildProcess> {
  const child = fork(peer.file, args, { cwd: root, execArgv: peer.execArgv, env: { ...process.env, N: String(n), TOPIC: topic }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    child.once('message', (m) => (m === 'ready' ? resolve(child) : reject(new Error(`peer said ${String(m)}`))))
    child.once('exit', (code) => reject(new Error(`peer exited with ${code}`)))
  })
}

async function stopPeer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.send('stop')
  const t = setTimeout(() => child.kill('SIGKILL'), 5_000)
  await exited
  clearTimeout(t)
}

/** One sample: once `subscribed` resolved, says 'go' to `child`; resolves with msg/s once `n` values arrived in order. */
function sample(child: ChildProcess, n: number, arm: (onValue: (v: { i: number }) => void) => () => void, subscribed: () => Promise<void>): Promise<number> {
  return inOrderRate(n, arm, () => child.send('go'), SAMPLE_DEADLINE_MS, subscribed) // the subscription is in place at the server before the sender starts
}

export default async function (ctx: BenchContext): Promise<void> {
  if (NATS_SERVER === null) {
    ctx.log('skipped: nats-server is not installed')
    return
  }
  const runs = ctx.runs
  const nats = await startNats(1, { jetstream: true })
  const url = nats.url as `nats://${string}`
  const path = `${os.tmpdir()}/rxnet-bench-${randomBytes(4).toString('hex')}.sock`
  const hubProc = await startPeer(['hub', path])
  const durable = { stream: 'BENCH', subjects: ['durable.>'] }
  const peers = {
    raw: await startPeer(['raw', url]),
    nats: await startPeer(['bus', url]),
    local: await startPeer(['bus', path]),
    durable: await startPeer(['bus', url, JSON.stringify({ durable })], N_DURABLE, 'durable.data'),
    rawjs: await startPeer(['rawjs', url], N_DURABLE, 'durable.raw'),
  }
  const rawNc = await connect({ servers: url })
  const natsBus = connectBus(url)
  const localBus = connectBus(path)
  const durableBus = connectBus(url, { durable })
  await Promise.all([natsBus.flush(), localBus.flush(), durableBus.flush()])
  const cases = {
    raw: () =>
      sample(peers.raw, N, (onValue) => {
        const sub = rawNc.subscribe('bench.>', { callback: (_e, m) => onValue(JSON.parse(m.string()) as { i: number }) })
        return () => sub.unsubscribe()
      }, () => rawNc.flush()),
    nats: () =>
      sample(peers.nats, N, (onValue) => {
        const sub = natsBus.messages$<{ i: number }>('bench.>').subscribe(onValue)
        return () => sub.unsubscribe()
      }, () => natsBus.flush()),
    local: () =>
      sample(peers.local, N, (onValue) => {
        const sub = localBus.messages$<{ i: number }>('bench.>').subscribe(onValue)
        return () => sub.unsubscribe()
      }, () => localBus.flush()),
  }
  const samples: Record<keyof typeof cases | 'durable' | 'rawjs', number[]> = { raw: [], nats: [], local: [], durable: [], rawjs: [] }
  try {
    const run = (k: keyof typeof cases): Promise<number> => cases[k]()
    for (const k of ['raw', 'nats', 'local'] as const) await run(k) // warm-up
    const order = ['raw', 'nats', 'local'] as const
    for (let i = 0; i < runs; i++) {
      for (let j = 0; j < order.length; j++) {
        const k = order[(i + j) % order.length]!
        const rate = await run(k)
        samples[k].push(rate)
        ctx.log(`${k}: ${Math.round(rate).toLocaleString('en')} msg/s`)
      }
    }
    const js = jetstream(rawNc)
    const durableCases = {
      // A Date has ms precision: the previous sample's last messages may be in that ms; both skip them.
      durable: (from: Date) =>
        sample(peers.durable, N_DURABLE, (onValue) => {
          let started = false
          const sub = durableBus.messages$<{ i: number }>('durable.data', { from }).subscribe((v) => {
            started ||= v.i === 0
            if (started) onValue(v)
          })
          return () => sub.unsubscribe()
        }, async () => {}),
      rawjs: (from: Date) =>
        sample(peers.rawjs, N_DURABLE, (onValue) => {
          let stopped = false
          let messages: { stop(): void } | undefined
          void (async () => {
            const consumer = await js.consumers.get('BENCH', { filter_subjects: 'durable.raw', deliver_policy: 'by_start_time' as never, opt_start_time: from.toISOString() })
            const it = await consumer.consume()
            messages = it
            if (stopped) return it.stop()
            let started = false
            for await (const m of it) {
              const v = m.json<{ i: number }>()
              started ||= v.i === 0
              if (started) onValue(v)
            }
          })()
          return () => {
            stopped = true
            messages?.stop()
          }
        }, async () => {}),
    }
    for (let i = 0; i <= runs; i++) {
      const pair: ('durable' | 'rawjs')[] = i % 2 === 0 ? ['durable', 'rawjs'] : ['rawjs', 'durable']
      for (const k of pair) {
        // Read from now on by time: what is stored while the consumer is being created is not missed.
        const rate = await durableCases[k](new Date())
        if (i > 0) samples[k].push(rate) // the first is the warm-up
        ctx.log(`${k}: ${Math.round(rate).toLocaleString('en')} msg/s`)
      }
    }
  } finally {
    await Promise.all(Object.values(peers).map(stopPeer))
    await Promise.all([natsBus.close(), localBus.close(), durableBus.close(), rawNc.close()])
    await stopPeer(hubProc)
    await nats.close()
  }
  const RAW = 'raw nats.js pub -> nats-server -> sub json 100B'
  ctx.report({ name: RAW, unit: 'msg/s', median: median(samples.raw), samples: samples.raw, params: { n: N } })
  ctx.report({ name: 'rxnet bus on NATS emit -> messages$', unit: 'msg/s', median: median(samples.nats), samples: samples.nats, baseline: RAW, minRatio: 0.8, params: { n: N, duplicates: natsBus.stats.duplicates } })
  ctx.report({ name: 'local bus, hub in its own process', unit: 'msg/s', median: median(samples.local), samples: samples.local, baseline: RAW, minRatio: 1.5, params: { n: N } })
  const RAWJS = 'raw nats.js js.publish -> stream -> ordered consumer'
  ctx.report({ name: RAWJS, unit: 'msg/s', median: median(samples.rawjs), samples: samples.rawjs, params: { n: N_DURABLE, window: 10_000 } })
  ctx.report({ name: 'JetStream durable emit -> messages$({ from })', unit: 'msg/s', median: median(samples.durable), samples: samples.durable, baseline: RAWJS, params: { n: N_DURABLE } })
}
