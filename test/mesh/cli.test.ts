import { execFileSync, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../../', import.meta.url))

function run(args: string[], ms = 25_000, onOut?: (out: string, pid: number) => void, detached = false): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], detached })
    let out = ''
    p.stdout.on('data', (d) => {
      out += d
      onOut?.(out, p.pid!)
    })
    const t = setTimeout(() => (detached ? process.kill(-p.pid!, 'SIGKILL') : p.kill('SIGKILL')), ms)
    p.on('exit', (code) => {
      clearTimeout(t)
      resolve({ code, out })
    })
  })
}

describe('mesh CLI arguments', () => {
  it('usage errors say what was wrong (main prints the reason on one line and exits 2); no secret on the command line', async () => {
    const { run: peers } = await import('../../src/cli/peers.js')
    await expect(peers(['x', '--once', 'abc'])).rejects.toThrow('--once wants a positive integer, got "abc"')
    await expect(peers([])).rejects.toThrow('missing <name>')
    await expect(peers(['x', '--secret', 'k'])).rejects.toThrow(/--secret is not accepted: a secret on the command line shows in ps; use --secret-file F or the RXNET_SECRET/)
    await expect(peers(['x', '--secret-file', '/nonexistent/key'])).rejects.toThrow('cannot read --secret-file /nonexistent/key: ENOENT')
    const { run: demo } = await import('../../src/cli/demo.js')
    await expect(demo(['--nodes', '0'])).rejects.toThrow('--nodes wants an integer in 1..16, got "0"')
    await expect(demo(['--seconds', 'soon'])).rejects.toThrow('--seconds wants a positive integer, got "soon"')
  })
})

describe('mesh CLI and example', () => {
  it('rxnet demo: 3 processes exchange "message from <id>", then stop cleanly', async () => {
    const { code, out } = await run(['src/cli/main.ts', 'demo', '--name', `demo-${process.pid}`, '--interval', '200', '--seconds', '5'])
    expect(code).toBe(0)
    expect(out).toMatch(/write to 2 nodes/)
    const senders = new Set([...out.matchAll(/message from ([0-9a-f]{12})/g)].map((m) => m[1]))
    expect(senders.size).toBe(3)
    expect(out.trimEnd().split('\n').at(-1)).toBe('all 3 nodes stopped cleanly')
  }, 30_000)

  /** Processes still running whose command line mentions `word`. */
  const running = (word: string): string[] =>
    execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(word))

  /** Starts the demo in its own process group; resolves with its pid once every node writes to 2 nodes. */
  function startDemo(name: string): { formed: Promise<number>; done: ReturnType<typeof run> } {
    let formed!: (pid: number) => void
    const formedP = new Promise<number>((resolve) => (formed = resolve))
    const done = run(['src/cli/main.ts', 'demo', '--name', name, '--interval', '200'], 25_000, (out, pid) => {
      if (new Set([...out.matchAll(/\[(\w+)\] write to 2 nodes/g)].map((m) => m[1])).size === 3) formed(pid)
    }, true)
    return { formed: formedP, done }
  }

  // Ctrl-C signals the whole process group (so do `timeout` and `kill -- -pgid`): the parent used to
  // report "some nodes failed: exit codes , , " because the nodes died of SIGTERM before closing.
  it.each(['SIGINT', 'SIGTERM'] as const)('rxnet demo: %s to the process group stops every node cleanly, exit 0, nothing left', async (signal) => {
    const name = `demo-${signal}-${process.pid}`
    const { formed, done } = startDemo(name)
    process.kill(-(await formed), signal)
    const { code, out } = await done
    expect(out.trimEnd().split('\n').at(-1)).toBe('all 3 nodes stopped cleanly')
    expect(code).toBe(0)
    expect(running(name)).toEqual([])
  }, 30_000)

  it('rxnet demo: the nodes exit on their own when the parent is killed (no orphans)', async () => {
    const name = `demo-orphan-${process.pid}`
    const { formed, done } = startDemo(name)
    const pid = await formed
    process.kill(pid, 'SIGKILL')
    await done
    const deadline = Date.now() + 10_000
    while (running(name).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    expect(running(name)).toEqual([])
  }, 30_000)

  it('examples/tcpnet.ts runs as-is: two copies find each other and talk, then exit on their own', async () => {
    const [a, b] = await Promise.all([run(['examples/tcpnet.ts', '--seconds', '4']), run(['examples/tcpnet.ts', '--seconds', '4'])])
    for (const r of [a, b]) {
      expect(r.code).toBe(0)
      expect(r.out).toMatch(/write to 1 nodes/)
      expect(r.out).toMatch(/message from [0-9a-f]{12}/)
    }
  }, 30_000)

  it('rxnet peers --once lists the members of a running mesh, as a table and with --json', async () => {
    const name = `peers-${process.pid}`
    let formed!: () => void
    const meshFormed = new Promise<void>((resolve) => (formed = resolve))
    const demo = run(['src/cli/main.ts', 'demo', '--name', name, '--nodes', '2', '--interval', '200', '--seconds', '6'], 25_000, (out) => {
      if ((out.match(/write to 1 nodes/g) ?? []).length >= 2) formed()
    })
    await meshFormed
    const [{ code, out }, json] = await Promise.all([
      run(['src/cli/main.ts', 'peers', name, '--once', '1500']),
      run(['src/cli/main.ts', 'peers', name, '--once', '1500', '--json']),
    ])
    expect(code).toBe(0)
    expect(out).toMatch(/2 connected/)
    expect(out.match(/127\.0\.0\.1\s+\d+\s+[\d.]+ ms\s+connected/g)).toHaveLength(2)
    expect(json.code).toBe(0)
    const snapshot = JSON.parse(json.out) as { mesh: string; connected: number; members: Array<{ id: string; state: string; rtt: number | null; address: string }> }
    expect(snapshot).toMatchObject({ mesh: name, connected: 2 })
    expect(snapshot.members.filter((m) => m.state === 'connected' && m.address === '127.0.0.1' && typeof m.rtt === 'number')).toHaveLength(2)
    // Full ids: the demo's and the table's are the same 12 hex digits (nothing cut to a prefix two ids share).
    for (const m of snapshot.members) expect(out).toContain(m.id)
    const shown = await demo
    expect(shown.code).toBe(0)
    // rxnet peers is an observer: the demo's nodes never count it as a member (they kept writing to 1 node).
    expect(shown.out).not.toMatch(/peers-cli-\d+ joined/)
    expect(shown.out).not.toMatch(/write to 2 nodes/)
  }, 30_000)
})
