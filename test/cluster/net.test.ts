import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { Fixture } from './harness.js'

let fx: Fixture | null = null
afterEach(async () => {
  await fx?.stop()
  fx = null
})

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

function readLine(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = ''
    net
      .connect(port, '127.0.0.1')
      .setEncoding('utf8')
      .on('data', (c: string) => (data += c))
      .on('end', () => resolve(data.trim()))
      .on('error', reject)
  })
}

describe('rxnet/net in cluster workers', () => {
  it('gives each of 4 workers its own port for every any-port listen form, shares a fixed port, keeps the listener', async () => {
    const fixed = await freePort()
    fx = new Fixture({ FX: 'net', WORKERS: '4', FIXED_PORT: String(fixed) })
    const reports = await fx.waitCount((r) => r.ev === 'ports', 4, 30_000, 'port reports')
    const byWorker = reports.map((r) => ({ id: r.id, ports: r.ports as Record<string, number> }))
    expect(new Set(byWorker.map((w) => w.id))).toEqual(new Set([1, 2, 3, 4]))
    const forms = Object.keys(byWorker[0]!.ports)
    expect(forms.length).toBe(9)
    const allAnyPorts = new Set<number>()
    for (const form of forms) {
      const ports = byWorker.map((w) => w.ports[form]!)
      if (form.startsWith(`listen(${fixed}`)) {
        expect(new Set(ports)).toEqual(new Set([fixed])) // shared, as in node:cluster
      } else {
        expect(new Set(ports).size, form).toBe(4) // 4 workers, 4 distinct ports
        for (const p of ports) allAnyPorts.add(p)
      }
    }
    expect(allAnyPorts.size).toBe(4 * (forms.length - 1)) // no two servers share a port
    // createServer(listener) kept its listener: the worker that owns the port answers with its id.
    for (const w of byWorker) expect(await readLine(w.ports['listen(0, host, cb)']!)).toBe(String(w.id))
    const answers = new Set<string>()
    for (let i = 0; i < 40 && answers.size < 2; i++) answers.add(await readLine(fixed))
    expect(answers.size).toBeGreaterThanOrEqual(1)
    for (const a of answers) expect(['1', '2', '3', '4']).toContain(a)
  })
})
