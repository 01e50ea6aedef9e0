// A 3-server NATS cluster with routes: the publisher is on server 1, subscribers on servers 2 and
// 3; server 1 is SIGKILLed mid-stream. The publisher fails over and republishes its outbox:
// every subscriber gets every message exactly once, in order.
import { afterEach, describe, expect, it } from 'vitest'
import { connectBus, type BusMessage, type NatsBus } from 'rxnet'
import { NATS_SERVER, SKIP_REASON, startNats, type NatsCluster } from './harness.js'

const open: { close(): Promise<unknown> }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
})
const track = <T extends { close(): Promise<unknown> }>(x: T): T => {
  open.push(x)
  return x
}

/** Per sender: lost (gaps), duplicated and reordered values of `n` as a subscriber saw them. */
class Tally {
  count = 0
  lost = 0
  dup = 0
  reordered = 0
  private last = 0
  private readonly seen = new Set<number>()
  add(n: number): void {
    this.count++
    if (this.seen.has(n)) this.dup++
    else if (n < this.last) this.reordered++
    else this.lost += n - this.last - 1
    this.seen.add(n)
    this.last = Math.max(this.last, n)
  }
}

describe.skipIf(NATS_SERVER === null)(`bus on a 3-server NATS cluster${NATS_SERVER === null ? ` (skipped: ${SKIP_REASON})` : ''}`, () => {
  it('SIGKILL of the publisher\'s server mid-stream: subscribers on the other servers get 100,000 messages, 0 lost, 0 duplicated, 0 reordered', { timeout: 120_000 }, async () => {
    const N = 100_000
    const nats: NatsCluster = track(await startNats(3))
    const [s1, s2, s3] = nats.servers as [NatsCluster['servers'][0], NatsCluster['servers'][0], NatsCluster['servers'][0]]
    const subs = [s2, s3].map((s) => track(connectBus(s.url as `nats://${string}`)))
    const tallies = subs.map(() => new Tally())
    const done = subs.map(
      (b, i) =>
        new Promise<void>((resolve) =>
          b.envelopes$<{ n: number }>('stream.>').subscribe((m: BusMessage<{ n: number }>) => {
            tallies[i]!.add(m.data.n)
            if (m.data.n === N) resolve()
          }),
        ),
    )
    await Promise.all(subs.map((b) => b.flush()))
    // Server 1 first, the others to fail over to.
    const pub: NatsBus = track(connectBus(nats.url as `nats://${string}`, { highWaterMark: 512 * 1024, nats: { noRandomize: true } }))
    await pub.flush()
    const servedBy: string[] = []
    pub.status$.subscribe((s) => s.type === 'connected' && servedBy.push(s.hubId))
    let killed: Promise<void> | null = null
    for (let n = 1; n <= N; n++) {
      if (!pub.writable) await pub.whenWritable()
      pub.emit(`stream.${n % 7}`, { n, pad: 'x'.repeat(60) })
      // Kill once the subscribers are well into the stream (and the publisher has more to send).
      if (killed === null && tallies[0]!.count > N / 4) killed = s1.kill()
    }
    expect(killed).not.toBeNull()
    await killed
    await pub.flush({ timeout: 30_000 })
    await Promise.all(done)
    expect(new Set(servedBy).size).toBe(2) // server 1, then another one
    expect(pub.stats.reconnects).toBe(1)
    for (const t of tallies) expect({ count: t.count, lost: t.lost, dup: t.dup, reordered: t.reordered }).toEqual({ count: N, lost: 0, dup: 0, reordered: 0 })
    // The republished outbox overlapped what had gone through: those copies were dropped.
    console.log(`failover: publisher republished; subscribers dropped ${subs.map((b) => b.stats.duplicates).join(' / ')} duplicate copies`)
  })
})
