/**
 * The sending process of the framing bench (forked by framing.bench.ts: compiled, or under tsx with `npm run bench:tsx`).
 * On each IPC command it connects to the given loopback port, sends `size`-byte messages with the
 * given implementation until `maxCount` messages or `durationMs` have passed, ends the
 * connection, and answers `{ sent }`.
 */
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import * as lp from 'it-length-prefixed'
import { pipe } from 'it-pipe'
import { codecs, socketChannel, type SocketChannelOptions } from '../../src/index.js'
import { varintLength, writeVarint } from '../../src/framing/varint.js'

export type Impl = 'baseline' | 'channel' | 'lp' | 'channel-json'
export interface SendCommand {
  impl: Impl
  size: number
  port: number
  durationMs: number
  maxCount: number
}

/** A ~100-byte JSON object (as the JSON case asks). */
export const jsonObject = { id: 123456, kind: 'tick', at: 1732363200000, ok: true, tags: ['a', 'b'], pos: { x: 1.25, y: -3.5 }, note: 'hello' }

export const connect = (port: number): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => resolve(s))
    s.once('error', reject)
  })

export const drained = (s: net.Socket): Promise<void> => new Promise((r) => s.once('drain', r))
export const ended = (s: net.Socket): Promise<void> =>
  new Promise((r) => {
    s.end()
    s.once('close', () => r())
  })

/** The hand-written batched sender: copies small frames into one buffer per batch, writev for large ones (the mesh bench's baseline too; it passes a connected TLS `socket` for its TLS baseline). */
export async function baseline(cmd: SendCommand, socket?: net.Socket): Promise<number> {
  const s = socket ?? (await connect(cmd.port))
  const payload = Buffer.alloc(cmd.size, 0x61)
  const frameLen = varintLength(cmd.size) + cmd.size
  const deadline = Date.now() + cmd.durationMs
  let sent = 0
  if (cmd.size < 16 * 1024) {
    const perBatch = Math.max(1, Math.floor((256 * 1024) / frameLen))
    while (sent < cmd.maxCount && Date.now() < deadline) {
      let ok = true
      while (ok && sent < cmd.maxCount) {
        const n = Math.min(perBatch, cmd.maxCount - sent)
        const batch = Buffer.allocUnsafe(n * frameLen)
        let o = 0
        for (let i = 0; i < n; i++) {
          o = writeVarint(batch, o, cmd.size)
          payload.copy(batch, o)
          o += cmd.size
        }
        ok = s.write(batch)
        sent += n
      }
      if (!ok) await drained(s)
    }
  } else {
    const header = Buffer.allocUnsafe(varintLength(cmd.size))
    writeVarint(header, 0, cmd.size)
    while (sent < cmd.maxCount && Date.now() < deadline) {
      s.cork()
      let ok = true
      for (let i = 0; i < 64 && ok && sent < cmd.maxCount; i++) {
        s.write(header)
        ok = s.write(payload)
        sent++
      }
      s.uncork()
      if (!ok) await drained(s)
    }
  }
  await ended(s)
  return sent
}

/** The Channel API: send, wait on whenWritable when the buffer is half full. */
async function channel(cmd: SendCommand, json: boolean): Promise<number> {
  // RXNET_BENCH_CHANNEL_OPTIONS='{"copyThreshold":4096}' tries other SocketChannelOptions on the sender
  const ch = socketChannel(await connect(cmd.port), JSON.parse(process.env.RXNET_BENCH_CHANNEL_OPTIONS ?? '{}') as SocketChannelOptions)
  const payload = new Uint8Array(cmd.size).fill(0x61)
  const deadline = Date.now() + cmd.durationMs
  let sent = 0
  while (sent < cmd.maxCount && Date.now() < deadline) {
    const stop = Math.min(cmd.maxCount, sent + 4096)
    if (json) {
      for (; sent < stop; sent++) {
        ch.send(codecs.json.encode(jsonObject))
        if (!ch.writable) await ch.whenWritable()
      }
    } else {
      for (; sent < stop; sent++) {
        ch.send(payload)
        if (!ch.writable) await ch.whenWritable()
      }
    }
    await new Promise((r) => setImmediate(r))
  }
  await ch.close()
  return sent
}

/** it-length-prefixed + it-pipe with a naive sink: one socket write per encoded chunk. */
async function itlp(cmd: SendCommand): Promise<number> {
  const s = await connect(cmd.port)
  const payload = new Uint8Array(cmd.size).fill(0x61)
  const deadline = Date.now() + cmd.durationMs
  let sent = 0
  await pipe(
    async function* () {
      while (sent < cmd.maxCount && (sent % 1024 !== 0 || Date.now() < deadline)) {
        sent++
        yield payload
      }
    },
    (src) => lp.encode(src),
    async (src) => {
      for await (const chunk of src) if (!s.write(chunk)) await drained(s)
    },
  )
  await ended(s)
  return sent
}

// Serve commands only when forked as the sender (the mesh bench imports `baseline` from here).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.on('message', (cmd: SendCommand) => {
    const cpu = process.cpuUsage()
    const run = cmd.impl === 'baseline' ? baseline(cmd) : cmd.impl === 'lp' ? itlp(cmd) : channel(cmd, cmd.impl === 'channel-json')
    run.then(
      (sent) => {
        const used = process.cpuUsage(cpu)
        process.send!({ sent, cpuMs: (used.user + used.system) / 1000 })
      },
      (e: unknown) => process.send!({ error: String((e as Error)?.stack ?? e) }),
    )
  })
  process.on('disconnect', () => process.exit(0))
}
