// Mesh Peer rows of the Connection conformance suite (test/conformance): plain TCP and TLS-PSK.
import { firstValueFrom } from 'rxjs'
import { createMesh, type Mesh, type Peer } from '../../src/index.js'
import { Child } from './helpers.js'

/** The parts of a conformance kind the mesh provides (see test/conformance/kinds.ts). */
interface MeshKindParts {
  setup(): Promise<{ a: Peer; b: Peer; teardown(): Promise<void> }>
  crash(): Promise<{ a: Peer; crashB(): Promise<void>; teardown(): Promise<void> }>
}

let n = 0

/** Two meshes in this process, joined by a seed: `a` is A's peer for B, `b` is B's peer for A. */
export function meshPeerKind(secret?: string): MeshKindParts {
  const base = { interface: '127.0.0.1', discovery: false, secret }
  return {
    async setup() {
      const name = `conf-${process.pid}-${n++}`
      const ma: Mesh = createMesh({ ...base, name, id: 'a' })
      const { port } = await ma.listen(0, '127.0.0.1')
      const mb: Mesh = createMesh({ ...base, name, id: 'b', seeds: [`127.0.0.1:${port}`] })
      const [a, b] = await Promise.all([firstValueFrom(ma.peers$), firstValueFrom(mb.peers$), mb.listen(0, '127.0.0.1')])
      return { a, b, teardown: () => Promise.all([ma.close(), mb.close()]).then(() => undefined) }
    },
    async crash() {
      const name = `conf-${process.pid}-${n++}`
      const ma: Mesh = createMesh({ ...base, name, id: 'a' })
      const { port } = await ma.listen(0, '127.0.0.1')
      const joined = firstValueFrom(ma.peers$)
      const far = new Child({ ...base, name, id: 'b', seeds: [`127.0.0.1:${port}`] })
      const a = await joined
      return {
        a,
        async crashB() {
          far.proc.kill('SIGKILL')
          await far.exited
        },
        async teardown() {
          far.proc.kill('SIGKILL')
          await far.exited
          await ma.close()
        },
      }
    },
  }
}
