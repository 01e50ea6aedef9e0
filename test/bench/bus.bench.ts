/**
 * Bus benchmark (loopback / Unix socket only; every loop bounded in count and time):
 * client -> hub -> client messages/s for ~100 B JSON values, beside cluster IPC (`process.send`
 * of the same values from a forked child to its parent) measured in the same run.
 *
 * Both senders are a forked child process; the receiver (and, for the bus, the hub) run in this
 * process. A sample is the time from 'go' to the N-th value received, in order.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import { connectBus, startHub } from 'rxnet'
import { inOrderRate, median, root, script, type BenchContext } from './harness.js'

const peer = script(import.meta.url, './bus.peer')
const N = 200_000
const SAMPLE_DEADLINE_MS = 30_000

export function startPeer(args: string[]): Promise<ChildProcess> {
  const child = fork(peer.file, args, { cwd: root, execArgv: peer.execArgv, env: { ...process.env, N: String(N) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    child.once('message', (m) => (m === 'ready' ? resolve(child) : reject(new Error(`peer said ${String(m)}`))))
    child.once('exit', (code) => reject(new Error(`peer exited with ${code}`)))
  })
}

export async function stopPeer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.send('stop')
  const t = setTimeout(() => child.kill('SIGKILL'), 5_000)
  await exited
  clearTimeout(t)
}

/** One sample: says 'go', resolves with msg/s once `N` values arrived through `onValue`, in order. */
export function sample(child: ChildProcess, arm: (onValue: (v: { i: number }) => void) => () => void): Promise<number> {
  return inOrderRate(N, arm, () => child.send('go'), SAMPLE_DEADLINE_MS)
}

export default async function (ctx: BenchContext): Promise<void> {
  const runs = 5
  const path = `${os.tmpdir()}/rxnet-bench-${randomBytes(4).toString('hex')}.sock`
  const hub = await startHub({ path })
  const receiver = connectBus(path)
  const ipc = await startPeer(['ipc'])
  const sender = await startPeer(['bus', path])
  // The machine is shared: samples of the two cases are interleaved (order alternating) so load
  // changes hit both alike.
  const cases = {
    ipc: () =>
      sample(ipc, (onValue) => {
        const h = (m: unknown): void => {
          if (typeof m === 'object' && m !== null) onValue(m as { i: number })
        }
        ipc.on('message', h)
        return () => ipc.off('message', h)
      }),
    bus: () =>
      sample(sender, (onValue) => {
        const sub = receiver.messages$<{ i: number }>('bench.>').subscribe(onValue)
        return () => sub.unsubscribe()
      }),
  }
  const samples: Record<keyof typeof cases, number[]> = { ipc: [], bus: [] }
  try {
    await cases.ipc() // warm-up
    await cases.bus()
    for (let i = 0; i < runs; i++) {
      for (const k of i % 2 === 0 ? (['ipc', 'bus'] as const) : (['bus', 'ipc'] as const)) {
        const rate = await cases[k]()
        samples[k].push(rate)
        ctx.log(`${k}: ${Math.round(rate).toLocaleString('en')} msg/s`)
      }
    }
  } finally {
    await Promise.all([stopPeer(ipc), stopPeer(sender)])
    await receiver.close()
    await hub.close()
  }
  ctx.report({ name: 'process.send json 100B child->parent', unit: 'msg/s', median: median(samples.ipc), samples: samples.ipc, params: { n: N } })
  ctx.report({
    name: 'bus json 100B client->hub->client',
    unit: 'msg/s',
    median: median(samples.bus),
    samples: samples.bus,
    baseline: 'process.send json 100B child->parent',
    params: { n: N, duplicates: receiver.stats.duplicates, hubDropped: hub.stats.dropped },
  })
}
