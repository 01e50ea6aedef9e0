/**
 * Conformance kinds of the cluster and multicast transports (added to KINDS in ./kinds.ts): a
 * cluster `Link` over a Unix socket (the json codec, batching included; a socket kind with
 * {@link linkOver}) and a multicast channel on a loopback group.
 * @module
 */
import { createLink } from '../../src/cluster/link.js'
import type { Connection } from '../../src/connection.js'
import { json } from '../../src/codec/index.js'
import { multicast, type MulticastMessage } from '../../src/multicast/index.js'
import { notApplicable, until, type ConnectionKind, type SocketOver } from './kinds.js'

interface Msg {
  seq: number
  pad: string
}

/** A cluster Link (json codec) on each socket of a socket kind; the far-end fixture in its 'link' mode. */
export const linkOver: SocketOver<Msg> = {
  wrap: (socket) => createLink(socket, 1, process.pid, json) as Connection<unknown> as Connection<Msg>,
  farEnd: ['link'],
  message: (seq) => ({ seq, pad: 'x'.repeat(1000) }),
  seqOf: (v) => v.seq,
  refused: () => undefined, // json has no encoding of undefined
}

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
