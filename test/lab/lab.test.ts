import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLab, labAvailable, labUnavailableReason, LabError, type Lab, type LabProcess } from './lab.js'
import { createTcpProxy } from './faults.js'
import { describeLab } from './vitest.js'

const FIXTURE = 'test/lab/fixtures/netnode.ts'
const PORT = 7000

/** True while `pid` runs (a zombie adopted by isolate.mjs's PID 1 has released its namespaces: dead). */
function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z'
  } catch {
    return false
  }
}

function ipLines(args: string[]): string[] {
  return execFileSync('ip', args, { encoding: 'utf8' }).split('\n').filter(Boolean)
}

describe('lab availability', () => {
  it('explains itself consistently', () => {
    expect(labAvailable()).toBe(labUnavailableReason() === undefined)
    if (process.env.RXNET_NETNS === 'isolated' && process.env.RXNET_LAB === 'ready' && process.geteuid?.() === 0) {
      expect(labAvailable()).toBe(true)
    }
  })

  it('createLab refuses bad input with a typed error', async () => {
    await expect(createLab({ hosts: 0 })).rejects.toBeInstanceOf(LabError)
  })
})

describeLab('lab: 3 hosts on a bridge', () => {
  let lab: Lab
  let nodes: LabProcess[]

  beforeAll(async () => {
    lab = await createLab({ hosts: 3 })
    nodes = lab.hosts.map((h) => h.spawn(FIXTURE, ['--port', String(PORT)]))
    await Promise.all(nodes.map((p) => p.waitFor('ready', 20_000)))
  }, 40_000)

  afterAll(async () => {
    await lab?.close()
  })

  /** Asks node `i` to connect to host `j`'s server; resolves with the reply or connect-error event. */
  async function probe(i: number, j: number, timeoutMs = 3000) {
    const host = lab.hosts[j].address
    const payload = `hello-${i}-${j}-${Math.random()}`
    nodes[i].send({ cmd: 'connect', host, port: PORT, payload, timeoutMs })
    return nodes[i].waitFor((e) => (e.type === 'reply' || e.type === 'connect-error') && e.id === payload, timeoutMs + 5000)
  }

  it('gives each host its own address, lo and eth0 only', async () => {
    const [a, b] = lab.subnet.split('.').slice(1, 3).map(Number)
    expect(lab.hosts.map((h) => h.address)).toEqual([1, 2, 3].map((i) => `10.${a}.${b}.${i}`))
    const links = await lab.hosts[0].run('ip', ['-br', 'link'], { check: true })
    expect(links.stdout.split('\n').filter(Boolean).map((l) => l.split(/[\s@]/)[0]).sort()).toEqual(['eth0', 'lo'])
  })

  it('refuses to build a lab where foreign interfaces exist, whatever the environment says', async () => {
    const code = "import('./test/lab/lab.ts').then((m) => console.log(m.labUnavailableReason()))"
    const r = await lab.hosts[0].run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      env: { RXNET_NETNS: 'isolated', RXNET_LAB: 'ready' },
      check: true,
    })
    expect(r.stdout).toMatch(/interfaces the lab did not make \(eth0\)/)
  })

  it('TCP: every host reaches every other host', async () => {
    const pairs = [0, 1, 2].flatMap((i) => [0, 1, 2].filter((j) => j !== i).map((j) => [i, j] as const))
    const replies = await Promise.all(pairs.map(([i, j]) => probe(i, j)))
    replies.forEach((r, k) => {
      expect(r.type).toBe('reply')
      expect(String(r.payload)).toMatch(new RegExp(`^${lab.hosts[pairs[k][1]].address.replace(/\./g, '\\.')}:`))
    })
  })

  it('the test process reaches the hosts through the gateway', async () => {
    const { connect } = await import('node:net')
    const reply = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: lab.hosts[2].address, port: PORT }, () => s.write('from-test'))
      let data = ''
      s.on('data', (d) => (data += d.toString()))
      s.on('end', () => resolve(data))
      s.on('error', reject)
    })
    expect(reply).toBe(`${lab.hosts[2].address}:from-test`)
  })

  it('UDP multicast: a datagram from h1 reaches h2 and h3', async () => {
    const group = '239.77.0.1'
    nodes[1].send({ cmd: 'join', group, port: 7001 })
    nodes[2].send({ cmd: 'join', group, port: 7001 })
    await Promise.all([nodes[1].waitFor('joined'), nodes[2].waitFor('joined')])
    const payload = `mc-${Date.now()}`
    // Multicast is unreliable by nature: resend until both got it (bounded), never sleep-and-hope.
    const got = Promise.all([1, 2].map((i) => nodes[i].waitFor((e) => e.type === 'mcast' && e.payload === payload, 8000)))
    const deadline = Date.now() + 8000
    let stop = false
    void got.finally(() => (stop = true))
    while (!stop && Date.now() < deadline) {
      nodes[0].send({ cmd: 'mcast', group, port: 7001, payload })
      await Promise.race([got, new Promise((r) => setTimeout(r, 200))])
    }
    const events = await got
    for (const e of events) expect(e.from).toBe(lab.hosts[0].address)
  })

  it('partition makes a host unreachable, heal restores it', async () => {
    await lab.partition(lab.hosts[2])
    const cut = await probe(0, 2, 800)
    expect(cut.type).toBe('connect-error')
    const cutOut = await probe(2, 1, 800)
    expect(cutOut.type).toBe('connect-error')
    expect((await probe(0, 1)).type).toBe('reply') // the others still talk
    await lab.heal(lab.hosts[2])
    expect((await probe(0, 2)).type).toBe('reply')
    expect((await probe(2, 0)).type).toBe('reply')
  })

  it('a TCP proxy on the gateway sits between two hosts (faults.ts in the lab)', async () => {
    const proxy = await createTcpProxy({ target: { host: lab.hosts[1].address, port: PORT }, listen: { host: lab.gateway } })
    try {
      const payload = `via-proxy-${Math.random()}`
      nodes[0].send({ cmd: 'connect', host: lab.gateway, port: proxy.port, payload, timeoutMs: 3000 })
      const r = await nodes[0].waitFor((e) => e.id === payload, 8000)
      expect(r).toMatchObject({ type: 'reply', payload: `${lab.hosts[1].address}:${payload}` })
      expect(proxy.stats.accepted).toBe(1)
    } finally {
      await proxy.close()
    }
  })

  it('split separates groups of hosts, merge joins them again', async () => {
    await lab.split([lab.hosts[0]], [lab.hosts[1], lab.hosts[2]])
    const [across, within] = await Promise.all([probe(0, 1, 800), probe(1, 2)])
    expect(across.type).toBe('connect-error')
    expect(within.type).toBe('reply')
    await lab.merge()
    expect((await probe(0, 1)).type).toBe('reply')
    expect(ipLines(['-br', 'link']).join('\n')).not.toContain(`${lab.bridge}s`)
    await expect(lab.split([lab.hosts[0]], [lab.hosts[0]])).rejects.toBeInstanceOf(LabError)
  })

  it('freeze stops a process, thaw resumes it', async () => {
    await lab.freeze(nodes[1])
    nodes[1].send({ cmd: 'tick' })
    await expect(nodes[1].waitFor('tock', 500)).rejects.toMatchObject({ code: 'ERR_LAB_TIMEOUT' })
    const frozen = await probe(0, 1, 800) // the kernel accepts, but nobody answers
    expect(frozen.type).toBe('connect-error')
    await lab.thaw(nodes[1])
    await nodes[1].waitFor('tock', 5000)
  })

  it('waitFor replays earlier events; next and request wait for new ones', async () => {
    const p = nodes[1]
    const tocks = () => p.events.filter((e) => e.type === 'tock').length
    await p.request({ cmd: 'tick' }, 'tock')
    const n = tocks()
    expect((await p.waitFor('tock', 100)).type).toBe('tock')
    await expect(p.next('tock', 300)).rejects.toMatchObject({ code: 'ERR_LAB_TIMEOUT' })
    await p.request({ cmd: 'tick' }, 'tock')
    expect(tocks()).toBe(n + 1)
    const ac = new AbortController()
    const aborted = p.next('never', 5000, { signal: ac.signal })
    ac.abort()
    await expect(aborted).rejects.toMatchObject({ code: 'ERR_LAB_ABORTED' })
  })

  it('crash kills a host with SIGKILL; waitFor reports the exit', async () => {
    const extra = lab.hosts[0].exec('sleep', ['60'])
    const waiting = expect(nodes[0].waitFor('never-sent', 10_000)).rejects.toMatchObject({ code: 'ERR_LAB_EXITED' })
    await lab.crash(lab.hosts[0])
    await waiting
    expect(nodes[0].exit).toEqual({ code: null, signal: 'SIGKILL' })
    expect((await extra.exited).signal).toBe('SIGKILL')
    expect((await probe(1, 0, 800)).type).toBe('connect-error')
  })

  it('close removes every namespace, link and process, and is idempotent', async () => {
    const netns = lab.hosts.map((h) => h.netns)
    const pids = nodes.map((p) => p.pid)
    await Promise.all([lab.close(), lab.close()])
    await lab.close()
    const left = ipLines(['netns', 'list']).map((l) => l.split(' ')[0])
    for (const n of netns) expect(left).not.toContain(n)
    const links = ipLines(['-br', 'link']).join('\n')
    expect(links).not.toContain(lab.bridge)
    expect(links).not.toMatch(new RegExp(`rxv-${lab.subnet.split('.')[1]}-${lab.subnet.split('.')[2]}-`))
    for (const p of nodes) expect(p.exit).toBeDefined()
    for (const pid of pids) expect(alive(pid)).toBe(false)
    await expect(lab.partition(lab.hosts[0])).rejects.toMatchObject({ code: 'ERR_LAB' })
  })
})

describeLab('lab: cleanup without close()', () => {
  /** Runs fixtures/orphan-lab.ts; returns what it built once it said so, and its exit. */
  async function orphan(mode: string, signal?: NodeJS.Signals) {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/lab/fixtures/orphan-lab.ts', mode], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const exited = once(child, 'exit')
    const rl = createInterface({ input: child.stdout })
    const [line] = (await Promise.race([once(rl, 'line'), exited.then(() => [''])])) as string[]
    expect(line, stderr).toContain('"built"')
    const built = JSON.parse(line) as { netns: string[]; bridge: string; pids: number[] }
    for (const pid of built.pids) expect(alive(pid)).toBe(true)
    if (signal) child.kill(signal)
    else child.stdin.write('go\n')
    const [code, sig] = await exited
    rl.close()
    return { built, code, sig }
  }

  function expectGone(built: { netns: string[]; bridge: string; pids: number[] }) {
    const left = ipLines(['netns', 'list']).map((l) => l.split(' ')[0])
    for (const n of built.netns) expect(left).not.toContain(n)
    expect(ipLines(['-br', 'link']).join('\n')).not.toContain(built.bridge)
    for (const pid of built.pids) expect(alive(pid)).toBe(false)
  }

  it('process.exit', async () => {
    const r = await orphan('--exit')
    expect(r.code).toBe(0)
    expectGone(r.built)
  }, 20_000)

  it('uncaught exception', async () => {
    const r = await orphan('--throw')
    expect(r.code).not.toBe(0)
    expectGone(r.built)
  }, 20_000)

  it('SIGTERM and SIGINT keep their default meaning (the process ends) after cleanup', async () => {
    for (const s of ['SIGTERM', 'SIGINT'] as const) {
      const r = await orphan('--wait', s)
      expect(r.sig).toBe(s)
      expectGone(r.built)
    }
  }, 30_000)

  it('labs built at the same time get different subnets', async () => {
    const labs = await Promise.all([createLab({ hosts: 1 }), createLab({ hosts: 1 }), createLab({ hosts: 1 })])
    try {
      expect(new Set(labs.map((l) => l.subnet)).size).toBe(3)
      await expect(createLab({ hosts: 1, subnet: labs[0].subnet })).rejects.toBeInstanceOf(LabError)
      await expect(createLab({ hosts: 1, subnet: '192.168.1.0/24' })).rejects.toMatchObject({ code: 'ERR_LAB' })
    } finally {
      await Promise.all(labs.map((l) => l.close()))
    }
  })
})
