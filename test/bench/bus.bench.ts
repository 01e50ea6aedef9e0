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
import { fileURLToPath } from 'node:url'
import { connectBus, startHub } from 'rxnet'
import type { BenchContext } from './harness.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const peer = fileURLToPath(new URL('./bus.peer.ts', import.meta.url))
const N = 200_000
const SAMPLE_DEADLINE_MS = 30_000

function startPeer(args: string[]): Promise<ChildProcess> {
  const child = fork(peer, args, { cwd: root, execArgv: ['--import', 'tsx'], env: { ...process.env, N: String(N) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
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

/** One sample: says 'go', resolves with msg/s once `N` values arrived through `onValue`, in order. */
function sample(child: ChildProcess, arm: (onValue: (v: { i: number }) => void) => () => void): Promise<number> {
  return new Promise((resolve, reject) => {
    let next = 0
    const t0 = performance.now()
    const timer = setTimeout(() => {
      disarm()
      reject(new Error(`sample took over ${SAMPLE_DEADLINE_MS} ms (${next} of ${N} received)`))
    }, SAMPLE_DEADLINE_MS)
    const disarm = arm((v) => {
      if (v.i !== next) {
        clearTimeout(timer)
        disarm()
        reject(new Error(`value ${v.i} arrived when ${next} was expected (lost or reordered)`))
        return
      }
      if (++next === N) {
        const rate = N / ((performance.now() - t0) / 1000)
        clearTimeout(timer)
        disarm()
        resolve(rate)
      }
    })
    child.send('go')
  })
}

export default async function (ctx: BenchContext): Promise<void> {
  // --- baseline: cluster IPC, process.send from a forked child
  const ipc = await startPeer(['ipc'])
  let ipcResult
  try {
    ipcResult = await ctx.measure(() =>
      sample(ipc, (onValue) => {
        const h = (m: unknown): void => {
          if (typeof m === 'object' && m !== null) onValue(m as { i: number })
        }
        ipc.on('message', h)
        return () => ipc.off('message', h)
      }),
    )
  } finally {
    await stopPeer(ipc)
  }
  ctx.report({ name: 'process.send json 100B child->parent', unit: 'msg/s', ...ipcResult, params: { n: N } })

  // --- the bus: child client -> hub (here) -> client (here)
  const path = `${os.tmpdir()}/rxnet-bench-${randomBytes(4).toString('hex')}.sock`
  const hub = await startHub({ path })
  const receiver = connectBus(path)
  try {
    const sender = await startPeer(['bus', path])
    try {
      const busResult = await ctx.measure(() =>
        sample(sender, (onValue) => {
          const sub = receiver.messages$<{ i: number }>('bench.>').subscribe(onValue)
          return () => sub.unsubscribe()
        }),
      )
      ctx.report({
        name: 'bus json 100B client->hub->client',
        unit: 'msg/s',
        ...busResult,
        baseline: 'process.send json 100B child->parent',
        params: { n: N, hubClients: 2, duplicates: receiver.stats.duplicates, hubDropped: hub.stats.dropped },
      })
    } finally {
      await stopPeer(sender)
    }
  } finally {
    await receiver.close()
    await hub.close()
  }
}
