/**
 * Framing suite: messages/s over loopback TCP between two processes (a forked sender,
 * framing.peer.ts, and the receiver here), for 64 B, 1 KiB and 64 KiB raw payloads and for
 * JSON-coded ~100 B objects. Every figure sits beside a baseline measured in the same run:
 * - `baseline <size>`: hand-written batched sender + hand-written decoder;
 * - `socketChannel <size>`: the Channel API on both ends (send / whenWritable, source.subscribe);
 * - `it-length-prefixed <size>`: lp.encode + it-pipe with a naive sink, lp.decode;
 * - `json loop`: bare JSON.stringify + JSON.parse in one process; `socketChannel json`: the same
 *   objects through codecs.json over the Channel.
 * Each sample sends for at most `durationMs` and at most `maxCount` messages.
 */
import { fork, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import * as lp from 'it-length-prefixed'
import { codecs, socketChannel } from '../../src/index.js'
import { decode } from '../../operators/index.js'
import { median, root, script, type BenchContext } from './harness.js'
import { jsonObject, type Impl, type SendCommand } from './framing.peer.js'

const DURATION_MS = Number(process.env.RXNET_BENCH_MS ?? 400)
const MAX_COUNT = 20_000_000
const SAMPLE_TIMEOUT_MS = 30_000

export type Receiver = (socket: net.Socket, done: (count: number) => void, fail: (e: unknown) => void) => void

/** Hand-written decoder: counts frames, assembling the ones split across chunks (the mesh bench's baseline too). */
export const baselineReceiver: Receiver = (socket, done) => {
  let count = 0
  let need = -1 // payload bytes still missing of the current frame, -1 while reading a prefix
  let len = 0
  let shift = 0
  let partial: Buffer | null = null
  let filled = 0
  let sink = 0
  socket.on('data', (chunk: Buffer) => {
    let o = 0
    const end = chunk.length
    while (o < end) {
      if (need < 0) {
        const b = chunk[o++]!
        len += (b & 0x7f) * 2 ** shift
        shift += 7
        if (b >= 0x80) continue
        need = len
        len = 0
        shift = 0
        if (end - o >= need) {
          sink ^= chunk[o + need - 1] ?? 0 // touch the frame, as a consumer would
          o += need
          need = -1
          count++
        } else {
          partial = Buffer.allocUnsafe(need)
          filled = 0
        }
        continue
      }
      const take = Math.min(need - filled, end - o)
      chunk.copy(partial!, filled, o, o + take)
      filled += take
      o += take
      if (filled === need) {
        sink ^= partial![need - 1] ?? 0
        partial = null
        need = -1
        count++
      }
    }
  })
  socket.on('end', () => done(count + (sink & 0)))
}

const channelReceiver: Receiver = (socket, done, fail) => {
  let count = 0
  socketChannel(socket).source.subscribe({ next: () => void count++, error: fail, complete: () => done(count) })
}

const jsonReceiver: Receiver = (socket, done, fail) => {
  let count = 0
  let sink = 0
  socketChannel(socket)
    .source.pipe(decode<typeof jsonObject>('json'))
    .subscribe({ next: (v) => void ((sink ^= v.id), count++), error: fail, complete: () => done(count + (sink & 0)) })
}

const lpReceiver: Receiver = (socket, done, fail) => {
  void (async () => {
    let count = 0
    let sink = 0
    // .subarray(): the contiguous message a consumer needs (copies only frames split across chunks)
    for await (const m of lp.decode(socket as AsyncIterable<Uint8Array>, { maxDataLength: 1 << 22 })) sink ^= m.subarray().length + count++
    count += sink & 0
    done(count)
  })().catch(fail)
}

const receivers: Record<Impl, Receiver> = { baseline: baselineReceiver, channel: channelReceiver, lp: lpReceiver, 'channel-json': jsonReceiver }

interface Sample {
  rate: number
  cpuRate: number
}

class Rig {
  private constructor(
    private readonly server: net.Server,
    private readonly child: ChildProcess,
    private readonly port: number,
  ) {}

  static async start(): Promise<Rig> {
    const server = net.createServer()
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const peer = script(import.meta.url, './framing.peer')
    const child = fork(peer.file, [], { cwd: root, execArgv: peer.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    return new Rig(server, child, (server.address() as net.AddressInfo).port)
  }

  /**
   * One sample: messages/s received, from the connection to the end of the stream (`rate`), and
   * the same count over the CPU time of the busier of the two processes (`cpuRate`: what the code
   * costs, much less sensitive to load from elsewhere on a shared machine).
   */
  sample(impl: Impl, size: number): Promise<Sample> {
    return new Promise((resolve, reject) => {
      let started = 0
      let elapsed = -1
      let received = -1
      let sent = -1
      let senderCpuMs = 0
      let receiverCpuMs = 0
      let cpu0 = process.cpuUsage()
      const end = (e?: unknown): void => {
        clearTimeout(timer)
        this.child.off('message', onMessage)
        if (e !== undefined) reject(e)
        else if (received !== sent) reject(new Error(`${impl} ${size}B: sent ${sent}, received ${received}`))
        else resolve({ rate: received / (elapsed / 1000), cpuRate: received / (Math.max(senderCpuMs, receiverCpuMs) / 1000) })
      }
      const timer = setTimeout(() => end(new Error(`${impl} ${size}B sample timed out`)), SAMPLE_TIMEOUT_MS)
      const onMessage = (m: { sent?: number; cpuMs?: number; error?: string }): void => {
        if (m.error !== undefined) return end(new Error(m.error))
        sent = m.sent!
        senderCpuMs = m.cpuMs!
        if (received >= 0) end()
      }
      this.child.on('message', onMessage)
      this.server.once('connection', (socket) => {
        started = performance.now()
        cpu0 = process.cpuUsage()
        receivers[impl](
          socket,
          (count) => {
            elapsed = performance.now() - started
            const used = process.cpuUsage(cpu0)
            receiverCpuMs = (used.user + used.system) / 1000
            received = count
            if (sent >= 0) end()
          },
          end,
        )
      })
      const cmd: SendCommand = { impl, size, port: this.port, durationMs: DURATION_MS, maxCount: MAX_COUNT }
      this.child.send(cmd)
    })
  }

  async stop(): Promise<void> {
    const exited = new Promise((r) => this.child.once('exit', r))
    this.child.disconnect()
    await exited
    await new Promise((r) => this.server.close(r))
  }
}

/** Bare JSON.stringify + JSON.parse of the same object, one process, bounded in count and time. */
function jsonLoop(): Sample {
  const deadline = performance.now() + DURATION_MS
  const start = performance.now()
  const cpu0 = process.cpuUsage()
  let n = 0
  let sink = 0
  while (n < MAX_COUNT && (n % 1024 !== 0 || performance.now() < deadline)) {
    sink ^= (JSON.parse(JSON.stringify(jsonObject)) as typeof jsonObject).id
    n++
  }
  const used = process.cpuUsage(cpu0)
  return { rate: (n + (sink & 0)) / ((performance.now() - start) / 1000), cpuRate: n / ((used.user + used.system) / 1e6) }
}

const SIZES: [string, number, number | undefined][] = [
  ['64B', 64, 0.4],
  ['1KiB', 1024, undefined],
  ['64KiB', 64 * 1024, 0.9],
]

/** Medians of one case: wall-clock rate and CPU-bound rate. */
interface Measured {
  wall: { median: number; samples: number[] }
  cpu: { median: number; samples: number[] }
  /** Per round, this case over the group's first case (adjacent in time, so load hits both). */
  paired: number[]
}

/**
 * Samples every case of a group in turn, `runs` times (after one warm-up round), so that load
 * from elsewhere on the machine hits the baseline and the rows compared with it alike.
 */
async function interleaved(ctx: BenchContext, cases: (() => Promise<Sample>)[]): Promise<Measured[]> {
  for (const c of cases) await c()
  const samples: Sample[][] = cases.map(() => [])
  for (let r = 0; r < ctx.runs; r++) for (let i = 0; i < cases.length; i++) samples[i]!.push(await cases[i]!())
  return samples.map((s) => {
    const wall = s.map((x) => x.rate)
    const cpu = s.map((x) => x.cpuRate)
    return { wall: { median: median(wall), samples: wall }, cpu: { median: median(cpu), samples: cpu }, paired: s.map((x, r) => x.rate / samples[0]![r]!.rate) }
  })
}

function reportGroup(ctx: BenchContext, names: string[], measured: Measured[], target: number | undefined, params: Record<string, unknown>): void {
  const [base] = names
  measured.forEach((m, i) => {
    const baseline = i === 0 ? undefined : base
    const paired = i === 0 ? {} : { pairedRatio: Number(median(m.paired).toFixed(3)) }
    ctx.report({ name: names[i]!, unit: 'msg/s', ...m.wall, baseline, minRatio: i === 1 ? target : undefined, params: { ...params, ...paired } })
  })
  // The same, per CPU-second of the busier process: the cost of the code itself.
  measured.forEach((m, i) => {
    ctx.report({ name: `${names[i]} (cpu)`, unit: 'msg/cpu-s', ...m.cpu, baseline: i === 0 ? undefined : `${base} (cpu)`, params })
  })
}

export default async function framing(ctx: BenchContext): Promise<void> {
  const rig = await Rig.start()
  try {
    const only = process.env.RXNET_BENCH_SIZES?.split(',') // e.g. RXNET_BENCH_SIZES=64B,1KiB (and json)
    for (const [label, size, target] of SIZES) {
      if (only !== undefined && !only.includes(label)) continue
      const measured = await interleaved(ctx, [() => rig.sample('baseline', size), () => rig.sample('channel', size), () => rig.sample('lp', size)])
      reportGroup(ctx, [`baseline ${label}`, `socketChannel ${label}`, `it-length-prefixed ${label}`], measured, target, { size })
    }
    if (only !== undefined && !only.includes('json')) return
    const bytes = codecs.json.encode(jsonObject).length
    const measured = await interleaved(ctx, [async () => jsonLoop(), () => rig.sample('channel-json', 0)])
    reportGroup(ctx, ['json loop', 'socketChannel json'], measured, 0.7, { bytes })
  } finally {
    await rig.stop()
  }
}
