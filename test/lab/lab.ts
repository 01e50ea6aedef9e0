/**
 * Network lab: N hosts as Linux network namespaces on a bridge, one Node process (or any command)
 * per host, and faults (crash, freeze, partition). Only usable inside `test/lab/isolate.mjs`
 * (what `npm test` does), which provides a private network, mount and PID namespace, so every
 * address and link made here exists only for the duration of the run. See test/lab/README.md.
 *
 * @example
 * ```ts
 * import { describeLab } from '../lab/vitest.js'
 * describeLab('mesh over 3 hosts', () => {
 *   let lab: Lab
 *   beforeAll(async () => { lab = await createLab({ hosts: 3 }) })
 *   afterAll(() => lab?.close())
 *   it('talks', async () => {
 *     const p = lab.hosts[0].spawn('test/mesh/fixtures/node.ts', ['--port', '4000'])
 *     await p.waitFor('ready', 10_000)
 *   })
 * })
 * ```
 */
import { execFile, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createProcess, LabError, signalPid, tail, type LabProcess } from './process.js'

export {
  DEFAULT_WAIT_TIMEOUT_MS,
  LabError,
  type EventPredicate,
  type LabEvent,
  type LabExit,
  type LabProcess,
  type WaitOptions,
} from './process.js'

/** Repository root (cwd of every spawned process, so `--import tsx` and tsconfig paths resolve). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)))

/** Default time `close()` waits for killed processes to exit before deleting namespaces, in ms. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000
/** Maximum number of hosts per lab (10.A.B.1 .. 10.A.B.250; .254 is the gateway). */
export const MAX_HOSTS = 250

/** Options of {@link createLab}. */
export interface LabOptions {
  /** Number of hosts (1..250). */
  hosts: number
  /**
   * IPv4 /24 inside 10.0.0.0/8 for the hosts, e.g. `'10.77.3.0/24'`. Hosts get .1, .2, ...; the
   * bridge (reachable from the test process) gets .254.
   * @default a free 10.77.x.0/24 (claimed atomically, so parallel labs never collide)
   */
  subnet?: string
  /** Aborts the build (namespaces made so far are removed). */
  signal?: AbortSignal
}

/** Options of {@link LabHost.run}. */
export interface RunOptions {
  /** Extra environment variables (merged over process.env). */
  env?: Record<string, string | undefined>
  /** Kill the command after this many ms. @default 30000 */
  timeoutMs?: number
  /** Throw a LabError when the exit code is not 0. @default false */
  check?: boolean
  signal?: AbortSignal
}

/** Result of {@link LabHost.run}. */
export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Options of {@link LabHost.exec}. */
export interface ExecOptions {
  /** Extra environment variables (merged over process.env). */
  env?: Record<string, string | undefined>
  /** Working directory. @default REPO_ROOT */
  cwd?: string
  /** Wrap the command in `unshare -m` so mounts it makes stay private to it. @default false */
  privateMounts?: boolean
}

/** One host: a network namespace with `lo` and `eth0` (address in the lab subnet, multicast routed). */
export interface LabHost {
  /** The lab this host belongs to. */
  readonly lab: Lab
  /** 'h1', 'h2', ... */
  readonly name: string
  /** 1-based index; the address is `<subnet>.<index>`. */
  readonly index: number
  readonly address: string
  /** Interface name inside the host. */
  readonly iface: string
  /** Network namespace name (for `ip netns exec`). */
  readonly netns: string
  /** Processes started on this host (running or exited). */
  readonly processes: readonly LabProcess[]
  /** Runs a command to completion inside the host. */
  run(cmd: string, args?: string[], opts?: RunOptions): Promise<RunResult>
  /** Starts `node --import tsx <script> ...args` inside the host (cwd = repo root). */
  spawn(script: string, args?: string[], env?: Record<string, string | undefined>): LabProcess
  /** Starts any command inside the host, with the same capture and event protocol as spawn. */
  exec(cmd: string, args?: string[], opts?: ExecOptions): LabProcess
}

/** A lab: hosts on one bridge, and the faults. */
export interface Lab {
  readonly hosts: readonly LabHost[]
  /** e.g. '10.77.3.0/24' */
  readonly subnet: string
  /** Address of the bridge in the test process's namespace (the test can reach every host). */
  readonly gateway: string
  /** Name of the bridge in the test process's namespace. */
  readonly bridge: string
  /** SIGKILL the process, or every process in the host. */
  crash(target: LabHost | LabProcess): Promise<void>
  /** SIGSTOP the process, or every process in the host. */
  freeze(target: LabHost | LabProcess): Promise<void>
  /** SIGCONT what freeze stopped. */
  thaw(target: LabHost | LabProcess): Promise<void>
  /** Takes the host's link down (its side of the veth at the bridge): nothing gets in or out. */
  partition(host: LabHost): Promise<void>
  /** Brings the host's link back up. */
  heal(host: LabHost): Promise<void>
  /**
   * Splits the network: each group moves to a bridge of its own, so hosts in different groups cannot
   * reach each other (hosts in no group stay on the main bridge, with the gateway). Replaces an
   * earlier split.
   */
  split(...groups: LabHost[][]): Promise<void>
  /** Undoes {@link Lab.split}: every host back on the main bridge. */
  merge(): Promise<void>
  /** Kills every process, removes every namespace and link; idempotent. */
  close(): Promise<void>
}

// ---------------------------------------------------------------- availability

/** Why the lab cannot run here, or undefined when it can. */
export function labUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces are Linux-only (platform ${process.platform})`
  if (process.env.RXNET_NETNS !== 'isolated') {
    return (
      process.env.RXNET_NETNS_REASON ??
      'not inside test/lab/isolate.mjs (run `npm test` or `node test/lab/isolate.mjs -- npx vitest run <files>`)'
    )
  }
  if (process.env.RXNET_LAB !== 'ready') return process.env.RXNET_LAB_REASON ?? 'isolate.mjs did not prepare the lab'
  if (process.geteuid?.() !== 0) return 'the lab needs root (in the isolated namespace)'
  // Belt and braces: environment variables can lie, interfaces cannot. Inside isolate.mjs this
  // namespace holds only lo and the labs' own bridges and veths.
  const foreign = foreignInterfaces()
  if (foreign.length > 0) return `this network namespace has interfaces the lab did not make (${foreign.join(', ')}): refusing to build here`
  return undefined
}

/** Interfaces in the current network namespace other than lo and the ones labs create. */
function foreignInterfaces(): string[] {
  const r = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
  if (r.status !== 0) return [`(ip link failed: ${(r.stderr || r.error?.message || '').trim()})`]
  return r.stdout
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => !!n && n !== 'lo' && !/^(rxbr-|rxv-|rxprobe)/.test(n))
}

/** True when {@link createLab} can work here (Linux, inside isolate.mjs, root, ip netns usable). */
export function labAvailable(): boolean {
  return labUnavailableReason() === undefined
}

// ---------------------------------------------------------------- ip helpers

function ip(args: string[], signal?: AbortSignal): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile('ip', args, { encoding: 'utf8', signal }, (err, stdout, stderr) => {
      if (err) reject(new LabError(`ip ${args.join(' ')}: ${stderr.trim() || err.message}`, 'ERR_LAB', { cause: err }))
      else resolvePromise(stdout)
    })
  })
}

function ipSync(args: string[]): string {
  return spawnSync('ip', args, { encoding: 'utf8' }).stdout ?? ''
}

function netnsPids(netns: string): number[] {
  return ipSync(['netns', 'pids', netns])
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
}

// ---------------------------------------------------------------- subnet claim

let labSeq = 0

function parseSubnet(subnet: string): [number, number] {
  const m = /^10\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(subnet)
  if (!m || Number(m[1]) > 255 || Number(m[2]) > 255) {
    throw new LabError(`subnet must look like 10.A.B.0/24, got ${JSON.stringify(subnet)}`)
  }
  return [Number(m[1]), Number(m[2])]
}

/** Creates the bridge named after the subnet: creation is atomic, so it is the claim on the subnet. */
async function claimBridge(subnet: string | undefined, signal?: AbortSignal): Promise<[number, number]> {
  const candidates: [number, number][] = []
  if (subnet) candidates.push(parseSubnet(subnet))
  else {
    const start = (process.pid * 7 + labSeq++ * 13) % 256
    for (let i = 0; i < 256; i++) candidates.push([77, (start + i) % 256])
  }
  for (const [a, b] of candidates) {
    try {
      await ip(['link', 'add', bridgeName(a, b), 'type', 'bridge'], signal)
      return [a, b]
    } catch (err) {
      if (subnet || !/exists/i.test(String((err as Error).message))) throw err
    }
  }
  throw new LabError('no free 10.77.x.0/24 subnet for a new lab')
}

const bridgeName = (a: number, b: number) => `rxbr-${a}-${b}`
const vethName = (a: number, b: number, i: number) => `rxv-${a}-${b}-${i}`

// ---------------------------------------------------------------- lab

const openLabs = new Set<LabImpl>()
let exitHookInstalled = false

function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const lab of openLabs) lab.closeSync()
  })
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      for (const lab of openLabs) lab.closeSync()
      process.off(sig, onSignal)
      // Keep the default behaviour (terminate) unless someone else handles the signal.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig)
    }
    process.on(sig, onSignal)
  }
}

class HostImpl implements LabHost {
  readonly processes: LabProcess[] = []
  readonly iface = 'eth0'
  constructor(
    readonly lab: LabImpl,
    readonly name: string,
    readonly index: number,
    readonly address: string,
    readonly netns: string,
    readonly veth: string,
  ) {}

  exec(cmd: string, args: string[] = [], opts: ExecOptions = {}): LabProcess {
    if (this.lab.closed) throw new LabError(`lab is closed; cannot start ${cmd} on ${this.name}`)
    const argv = ['netns', 'exec', this.netns, ...(opts.privateMounts ? ['unshare', '-m', '--propagation', 'private'] : []), cmd, ...args]
    // `ip netns exec` execs the command, so child.pid is the command's own pid.
    const child = spawn('ip', argv, {
      cwd: opts.cwd ?? REPO_ROOT,
      env: { ...process.env, RXNET_LAB_HOST: this.name, RXNET_LAB_ADDRESS: this.address, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const proc = createProcess(this, child, `${this.name}: ${cmd} ${args.join(' ')}`)
    this.processes.push(proc)
    return proc
  }

  spawn(script: string, args: string[] = [], env: Record<string, string | undefined> = {}): LabProcess {
    return this.exec(process.execPath, ['--import', 'tsx', resolve(REPO_ROOT, script), ...args], { env })
  }

  run(cmd: string, args: string[] = [], opts: RunOptions = {}): Promise<RunResult> {
    if (this.lab.closed) return Promise.reject(new LabError(`lab is closed; cannot run ${cmd} on ${this.name}`))
    return new Promise((resolveRun, reject) => {
      execFile(
        'ip',
        ['netns', 'exec', this.netns, cmd, ...args],
        {
          cwd: REPO_ROOT,
          encoding: 'utf8',
          env: { ...process.env, RXNET_LAB_HOST: this.name, RXNET_LAB_ADDRESS: this.address, ...opts.env },
          timeout: opts.timeoutMs ?? 30_000,
          signal: opts.signal,
          maxBuffer: 16 << 20,
        },
        (err, stdout, stderr) => {
          const e = err as (Error & { code?: unknown; signal?: NodeJS.Signals | null }) | null
          if (e && typeof e.code !== 'number' && !e.signal) {
            return reject(new LabError(`${this.name}: ${cmd}: ${e.message}`, 'ERR_LAB', { cause: e }))
          }
          const result: RunResult = {
            code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
            signal: e?.signal ?? null,
            stdout,
            stderr,
          }
          if (opts.check && result.code !== 0) {
            return reject(new LabError(`${this.name}: ${cmd} ${args.join(' ')} failed (${result.code ?? result.signal}): ${tail(stderr)}`))
          }
          resolveRun(result)
        },
      )
    })
  }

  /** Pids of every process in this host's namespace (tracked or not). */
  pids(): number[] {
    const pids = new Set(netnsPids(this.netns))
    for (const p of this.processes) if (!p.exit && p.pid > 0) pids.add(p.pid)
    return [...pids]
  }
}

class LabImpl implements Lab {
  hosts: HostImpl[] = []
  closed = false
  private sideBridges: string[] = []
  private closing: Promise<void> | undefined
  private tmp: string | undefined
  readonly subnet: string
  readonly gateway: string
  readonly bridge: string

  constructor(readonly a: number, readonly b: number) {
    this.subnet = `10.${a}.${b}.0/24`
    this.gateway = `10.${a}.${b}.254`
    this.bridge = bridgeName(a, b)
  }

  /** A private temp directory for this lab (removed by close). */
  tempDir(): string {
    this.tmp ??= mkdtempSync(join(tmpdir(), `rxnet-lab-${process.pid}-`))
    return this.tmp
  }

  async build(n: number, signal?: AbortSignal): Promise<void> {
    const { a, b } = this
    await ip(['link', 'set', this.bridge, 'type', 'bridge', 'mcast_snooping', '0', 'stp_state', '0'], signal)
    await ip(['addr', 'add', `${this.gateway}/24`, 'dev', this.bridge], signal)
    await ip(['link', 'set', this.bridge, 'up'], signal)
    for (let i = 1; i <= n; i++) {
      this.hosts.push(new HostImpl(this, `h${i}`, i, `10.${a}.${b}.${i}`, `rxlab-${process.pid}-${a}.${b}-h${i}`, vethName(a, b, i)))
    }
    await Promise.all(
      this.hosts.map(async (h) => {
        await ip(['netns', 'add', h.netns], signal)
        await ip(['link', 'add', h.veth, 'type', 'veth', 'peer', 'name', h.iface, 'netns', h.netns], signal)
        await ip(['link', 'set', h.veth, 'master', this.bridge, 'up'], signal)
        const n = ['-n', h.netns]
        await ip([...n, 'link', 'set', 'lo', 'up'], signal)
        await ip([...n, 'addr', 'add', `${h.address}/24`, 'dev', h.iface], signal)
        await ip([...n, 'link', 'set', h.iface, 'multicast', 'on', 'up'], signal)
        await ip([...n, 'route', 'add', '224.0.0.0/4', 'dev', h.iface], signal)
      }),
    )
  }

  private targets(target: LabHost | LabProcess): number[] {
    if (target instanceof HostImpl) return target.pids()
    const p = target as LabProcess
    return p.exit || p.pid <= 0 ? [] : [p.pid]
  }

  private checkOpen(what: string): void {
    if (this.closed) throw new LabError(`lab is closed; cannot ${what}`)
  }

  async crash(target: LabHost | LabProcess): Promise<void> {
    this.checkOpen('crash')
    const pids = this.targets(target)
    for (const pid of pids) signalPid(pid, 'SIGKILL')
    // Resolve once the tracked ones are reaped, so the test sees the exit right after.
    const procs = target instanceof HostImpl ? target.processes : [target as LabProcess]
    await Promise.all(procs.filter((p) => pids.includes(p.pid)).map((p) => p.exited))
  }

  async freeze(target: LabHost | LabProcess): Promise<void> {
    this.checkOpen('freeze')
    for (const pid of this.targets(target)) signalPid(pid, 'SIGSTOP')
  }

  async thaw(target: LabHost | LabProcess): Promise<void> {
    this.checkOpen('thaw')
    for (const pid of this.targets(target)) signalPid(pid, 'SIGCONT')
  }

  async partition(host: LabHost): Promise<void> {
    this.checkOpen('partition')
    await ip(['link', 'set', (host as HostImpl).veth, 'down'])
  }

  async heal(host: LabHost): Promise<void> {
    this.checkOpen('heal')
    await ip(['link', 'set', (host as HostImpl).veth, 'up'])
    // ARP entries left INCOMPLETE/FAILED while cut off would delay the first packets by ~1-3 s;
    // forget them so traffic resumes at once (what the test wants to observe is its own recovery).
    await this.flushNeighbours()
  }

  async split(...groups: LabHost[][]): Promise<void> {
    this.checkOpen('split')
    const seen = new Set<LabHost>()
    for (const h of groups.flat()) {
      if (!this.hosts.includes(h as HostImpl)) throw new LabError(`split: ${h.name} is not a host of this lab`)
      if (seen.has(h)) throw new LabError(`split: ${h.name} is in more than one group`)
      seen.add(h)
    }
    await this.merge()
    for (const [k, group] of groups.entries()) {
      if (group.length === 0) continue
      const br = `${this.bridge}s${k + 1}`
      await ip(['link', 'add', br, 'type', 'bridge'])
      this.sideBridges.push(br)
      await ip(['link', 'set', br, 'type', 'bridge', 'mcast_snooping', '0', 'stp_state', '0'])
      await ip(['link', 'set', br, 'up'])
      for (const h of group) await ip(['link', 'set', (h as HostImpl).veth, 'master', br])
    }
    await this.flushNeighbours()
  }

  async merge(): Promise<void> {
    this.checkOpen('merge')
    if (this.sideBridges.length === 0) return
    for (const h of this.hosts) await ip(['link', 'set', h.veth, 'master', this.bridge])
    for (const br of this.sideBridges.splice(0)) await ip(['link', 'del', br])
    await this.flushNeighbours()
  }

  /** Forgets ARP entries on every host, so a changed topology takes effect at once (no ~1-3 s of stale INCOMPLETE/FAILED). */
  private async flushNeighbours(): Promise<void> {
    await Promise.all(this.hosts.map((h) => ip(['-n', h.netns, 'neigh', 'flush', 'dev', h.iface]).catch(() => {})))
  }

  close(): Promise<void> {
    this.closing ??= this.doClose()
    return this.closing
  }

  private async doClose(): Promise<void> {
    this.closed = true
    for (const h of this.hosts) {
      for (const pid of h.pids()) {
        signalPid(pid, 'SIGKILL')
        signalPid(pid, 'SIGCONT')
      }
    }
    const all = this.hosts.flatMap((h) => h.processes)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all(all.map((p) => p.exited)),
      new Promise((r) => (timer = setTimeout(r, DEFAULT_CLOSE_TIMEOUT_MS))),
    ])
    clearTimeout(timer)
    this.closeSync()
  }

  /** Synchronous teardown (also used from process 'exit'): kill, delete namespaces and the bridge. */
  closeSync(): void {
    this.closed = true
    openLabs.delete(this)
    for (const h of this.hosts) for (const pid of h.pids()) signalPid(pid, 'SIGKILL')
    for (const h of this.hosts) {
      ipSync(['netns', 'del', h.netns])
      ipSync(['link', 'del', h.veth]) // normally gone with the namespace already
    }
    for (const br of this.sideBridges.splice(0)) ipSync(['link', 'del', br])
    ipSync(['link', 'del', this.bridge])
    if (this.tmp) rmSync(this.tmp, { recursive: true, force: true })
    this.tmp = undefined
  }
}

/**
 * Builds a lab: a bridge plus `hosts` network namespaces joined by veth pairs, addresses
 * `10.A.B.<i>/24` (gateway `.254` on the bridge), lo up, multicast routed to each host's eth0.
 * Throws LabError ERR_LAB_UNAVAILABLE when {@link labAvailable} is false.
 * @example
 * ```ts
 * const lab = await createLab({ hosts: 3 })
 * try { await lab.hosts[1].run('ip', ['-br', 'addr'], { check: true }) } finally { await lab.close() }
 * ```
 */
export async function createLab(opts: LabOptions): Promise<Lab> {
  const reason = labUnavailableReason()
  if (reason) throw new LabError(`network lab unavailable: ${reason}`, 'ERR_LAB_UNAVAILABLE')
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > MAX_HOSTS) {
    throw new LabError(`hosts must be an integer in 1..${MAX_HOSTS}, got ${opts.hosts}`)
  }
  if (opts.signal?.aborted) throw new LabError('aborted', 'ERR_LAB_ABORTED')
  installExitHook()
  const [a, b] = await claimBridge(opts.subnet, opts.signal)
  const lab = new LabImpl(a, b)
  openLabs.add(lab)
  try {
    await lab.build(opts.hosts, opts.signal)
  } catch (err) {
    lab.closeSync()
    throw err
  }
  return lab
}

/** @internal used by avahi.ts */
export function labTempDir(lab: Lab): string {
  return (lab as LabImpl).tempDir()
}
