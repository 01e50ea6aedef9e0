// The tie-break keeps the connection dialled by the smaller id. It used to refuse the larger id's
// inbound connection as soon as the smaller id had a dial of its own in flight, without waiting to
// see that dial succeed; the larger id took the refusal as "connected elsewhere" and never dialled
// again. If the smaller id's dial could not get through (a stale or unreachable advertised address),
// the pair stayed apart forever. Now the smaller id holds the inbound connection until its own dial
// settles (at most handshakeTimeout / 2) and takes the inbound one if its dial has not won.
import net from 'node:net'
import { once } from 'node:events'
import { filter, firstValueFrom } from 'rxjs'
import { afterEach, expect, it } from 'vitest'
import { createMesh, type Mesh } from 'rxnet'

const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t!: NodeJS.Timeout
  return Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t))
}

it('the smaller id dialling an address that never answers does not keep the pair apart', async () => {
  // A "black hole": accepts TCP and never answers the handshake.
  const held: net.Socket[] = []
  const blackhole = net.createServer((s) => held.push(s))
  blackhole.listen(0, '127.0.0.1')
  await once(blackhole, 'listening')
  cleanup.push(() => (held.forEach((s) => s.destroy()), new Promise((r) => blackhole.close(r))))
  const options = { name: 'tiebreak', interface: '127.0.0.1', discovery: false, handshakeTimeout: 1000 }
  const a: Mesh = createMesh({ ...options, id: 'a' })
  cleanup.push(() => a.close())
  const { port } = await a.listen(0, '127.0.0.1')
  // As if mDNS had told "a" that "b" is at the black hole's address: "a" (smaller id) dials at once.
  ;(a as unknown as { dialer: { discovered(id: string, addresses: string[], port: number, ttl: number): void } }).dialer.discovered('b', ['127.0.0.1'], (blackhole.address() as net.AddressInfo).port, 60_000)
  const pending = (a as unknown as { pendingOut: Map<string, unknown> }).pendingOut
  while (!pending.has('b')) await new Promise((r) => setTimeout(r, 5))
  const b: Mesh = createMesh({ ...options, id: 'b', seeds: [`127.0.0.1:${port}`] })
  cleanup.push(() => b.close())
  const joined = firstValueFrom(b.members$.pipe(filter((m) => m.has('a'))))
  await b.listen(0, '127.0.0.1')
  await within(joined, 5000, 'b joins a')
  await within(firstValueFrom(a.members$.pipe(filter((m) => m.has('b')))), 1000, 'a has b')
  expect(a.members.size).toBe(1)
  expect(b.members.size).toBe(1)
  expect(a.members.get('b')!.outbound).toBe(false) // the link b dialled, the only one that could work
})
