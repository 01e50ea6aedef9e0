// A frozen (SIGSTOPped) consumer never grows the sender past its high-water mark; drops are counted.
import { randomBytes } from 'node:crypto'
import { firstValueFrom, filter } from 'rxjs'
import { afterEach, expect, it } from 'vitest'
import { createMesh, type Mesh } from 'rxnet'
import { Child } from './helpers.js'

let child: Child | undefined
let mesh: Mesh | undefined
afterEach(async () => {
  child?.proc.kill('SIGCONT')
  await child?.close()
  await mesh?.close()
})

it('a frozen consumer holds the per-peer send buffer at its high-water mark and counts what it drops', async () => {
  const name = `frozen-${randomBytes(3).toString('hex')}`
  const hwm = 256 * 1024
  mesh = createMesh({ name, id: 'sender', interface: '127.0.0.1', discovery: false, highWaterMark: hwm, overflow: 'drop-newest', failureTimeout: 60_000 })
  const { port } = await mesh.listen(0, '127.0.0.1')
  child = new Child({ name, id: 'frozen', interface: '127.0.0.1', discovery: false, seeds: [`127.0.0.1:${port}`], failureTimeout: 60_000 })
  const members = await firstValueFrom(mesh.members$.pipe(filter((m) => m.size === 1)))
  const peer = members.get('frozen')!
  child.proc.kill('SIGSTOP')
  const payload = Buffer.alloc(1024, 1)
  let peak = 0
  for (let i = 0; i < 32 * 1024; i++) {
    // 32 MiB into a consumer that reads nothing
    peer.send(payload)
    if (i % 512 === 0) {
      await new Promise((r) => setImmediate(r))
      peak = Math.max(peak, peer.stats.bufferedBytes)
    }
  }
  expect(peak).toBeLessThanOrEqual(hwm)
  expect(peer.stats.dropped).toBeGreaterThan(0)
  expect(mesh.stats.dropped).toBe(peer.stats.dropped)
  expect(mesh.members.size).toBe(1) // drop-newest keeps the link; the sender is fine
}, 30_000)
