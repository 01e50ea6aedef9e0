/**
 * Conformance kinds of the cluster and multicast transports (added to KINDS in ./kinds.ts): a
 * cluster `Link` over a Unix socket (the json codec, batching included) and a multicast channel
 * on a loopback group.
 * @module
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createLink } from '../../src/cluster/link.js'
import { json } from '../../src/codec/index.js'
import { multicast, type MulticastMessage } from '../../src/multicast/index.js'
import { notApplicable, until, type ConnectionKind } from './kinds.js'

const LINK_FAR_END = fileURLToPath(new URL('./fixtures/link-far-end.ts', import.meta.url))

interface Msg {
  seq: number
  pad: string
}

async function unixServer(): Promise<{ server: net.Server; path: string; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'rxnet-conf-link-'))
  const path = join(dir, 'link.sock')
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(path, r))
  return { server, path, close: () => new Promise((r) => server.close(() => (rmSync(dir, { recursive: true, force: true }), r()))) }
}

/** A cluster Link (json codec) over a Unix socket (a function: ./kinds.ts imports this module before its own helpers exist). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a Link carries unknown values; these are Msg
export const clusterLinkKind = (): ConnectionKind<any> => ({
  name: 'cluster Link (json, Unix socket)',
  async setup() {
    const ep = await unixServer()
    const accepted = new Promise<net.Socket>((r) => ep.server.once('connection', r))
    const client = net.connect(ep.path)
    await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject))
    const a = createLink(client, 1, process.pid, json)
    const b = createLink(await accepted, 0, process.pid, json)
    return {
      a,
      b,
      async teardown() {
        a.abort()
        b.abort()
        await Promise.all([a.closed, b.closed])
        await ep.close()
      },
    }
  },
  async crash() {
    const ep = await unixServer()
    const accepted = new Promise<net.Socket>((r) => ep.server.once('connection', r))
    const child: ChildProcess = fork(LINK_FAR_END, [ep.path], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const exited = new Promise<void>((r) => child.once('exit', () => r()))
    await new Promise<void>((resolve, reject) => child.once('message', () => resolve()).once('exit', (code) => reject(new Error(`far end exited (${code})`))))
    const a = createLink(await accepted, 1, child.pid!, json)
    return {
      a,
      async crashB() {
        // Leave data unread in the far end's kernel buffer, so its death is a reset, not a clean
        // end: Node reads ahead into the paused stream (up to ~80 KiB), so well more than that.
        for (let i = 0; i < 512; i++) a.send({ seq: i, pad: 'x'.repeat(1000) })
        await until(() => a.stats.bytesOut - a.stats.bufferedBytes >= 160 * 1024, 'the messages to leave')
        child.kill('SIGKILL')
        await exited
      },
      async teardown() {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        await exited
        a.abort()
        await a.closed
        await ep.close()
      },
    }
  },
  message: (seq: number): Msg => ({ seq, pad: 'x'.repeat(1000) }),
  seqOf: (v: Msg) => v.seq,
  refused: () => undefined, // json has no encoding of undefined
  farSideSeesAbort: notApplicable('a Unix stream socket has no reset: the far side sees its end as a clean EOF'),
})

let nextPort = 46_000 + (process.pid % 1000) * 8

/** A multicast channel on a loopback group; `b` is another member of the same group. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- sends Uint8Array, receives MulticastMessage
export const multicastKind = (): ConnectionKind<any> => ({
  name: 'multicast channel (loopback group)',
  async setup() {
    const group = { group: '239.255.77.1', port: nextPort++, interface: '127.0.0.1' }
    const a = multicast(group)
    const b = multicast(group)
    await Promise.all([a.ready, b.ready])
    // UDP: a receiver that closes the moment the sender has closed drops datagrams still in its
    // socket buffer. The suite's "far side closes once a has" waits here until they were read (bounded).
    const closeB = b.close.bind(b)
    b.close = async (options) => {
      await until(() => b.stats.messagesIn + b.stats.droppedIn >= a.stats.messagesOut, 'the datagrams in flight to b', 2_000).catch(() => {})
      return closeB(options)
    }
    return {
      a,
      b,
      async teardown() {
        a.abort()
        b.abort()
        await Promise.all([a.closed, b.closed])
      },
    }
  },
  crash: notApplicable('connectionless: a member that dies is not seen by the others (its absence shows as silence)'),
  message: (seq: number) => {
    const m = new Uint8Array(1024)
    new DataView(m.buffer).setUint32(0, seq)
    return m
  },
  seqOf: (v: MulticastMessage | Uint8Array) => {
    const d = v instanceof Uint8Array ? v : v.data
    return new DataView(d.buffer, d.byteOffset, 4).getUint32(0)
  },
  refused: () => 'not bytes',
  farSideSeesAbort: notApplicable('connectionless: the other members never see one member end'),
  farSide: notApplicable('connectionless: one member closing does not end the others (a channel ends by its own close() / abort())'),
  backpressure: notApplicable('connectionless: sending never waits for a reader (UDP has no flow control; loss shows in stats.gaps)'),
})
