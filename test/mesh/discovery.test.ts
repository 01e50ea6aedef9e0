// Discovery details against a foreign DNS-SD publisher (bonjour-service used directly, as another
// implementation would): idempotent service-up, service-down stops the redials, TXT filtering.
import { Bonjour } from 'bonjour-service'
import { randomBytes } from 'node:crypto'
import { afterEach, expect, it } from 'vitest'
import { createMesh, SERVICE_TYPE, type Mesh, type MeshEvent } from 'rxnet'

let mesh: Mesh | undefined
let bonjour: Bonjour | undefined
afterEach(async () => {
  await mesh?.close()
  await new Promise<void>((r) => (bonjour ? bonjour.destroy(() => r()) : r()))
})

it('a service of another mesh is ignored; a matching one is dialled until it says goodbye', async () => {
  const name = `disc-${randomBytes(3).toString('hex')}`
  mesh = createMesh({ name, id: 'me', interface: '127.0.0.1', maxReconnectDelay: 200 })
  const events: MeshEvent[] = []
  mesh.events$.subscribe((e) => events.push(e))
  await mesh.listen()
  // multicast-dns options (bonjour-service passes them through; its type only lists ServiceConfig)
  bonjour = new Bonjour({ interface: '127.0.0.1', bind: '0.0.0.0' } as Record<string, unknown>, () => {})
  // Nothing listens on these ports: the mesh keeps dialling the matching one (and never the other).
  bonjour.publish({ name: 'other-mesh', type: SERVICE_TYPE, port: 9, txt: { mesh: 'not-ours', id: 'x' }, probe: false })
  const ghost = bonjour.publish({ name: 'ghost', type: SERVICE_TYPE, port: 9, txt: { mesh: name, id: 'ghost' }, probe: false })
  const failures = (): number => events.filter((e) => e.type === 'dial-failed').length
  const until = async (cond: () => boolean, ms: number): Promise<void> => {
    const deadline = Date.now() + ms
    while (!cond()) {
      if (Date.now() > deadline) throw new Error('condition not met')
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  await until(() => failures() >= 3, 10_000)
  expect(events.filter((e) => e.type === 'discovered').every((e) => e.type === 'discovered' && e.id === 'ghost')).toBe(true)
  expect(events.some((e) => e.type === 'discovered' && e.addresses.includes('127.0.0.1'))).toBe(true)
  // Goodbye (TTL 0): the target is dropped, the redials stop.
  await new Promise<void>((r) => ghost.stop!(() => r()))
  await new Promise((r) => setTimeout(r, 300)) // one in-flight dial may still finish
  const after = failures()
  await new Promise((r) => setTimeout(r, 1000)) // several backoff periods (max 200 ms)
  expect(failures()).toBe(after)
  expect(mesh.members.size).toBe(0)
}, 20_000)
