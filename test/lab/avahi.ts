/**
 * avahi inside a lab host, for interop tests against the system mDNS stack: a private dbus-daemon
 * (own socket under the lab's temp dir) and an avahi-daemon bound to that host's `eth0` only, run in
 * a private mount namespace with its own tmpfs on /run (and an empty /etc/avahi/services), so
 * nothing is shared with the machine's own dbus or avahi, or with other lab hosts.
 *
 * @example
 * ```ts
 * const avahi = await startAvahi(lab.hosts[1])
 * await avahi.run('avahi-publish', ['-s', 'peer-b', '_rxnet._tcp', '4000'])   // or avahi.exec(...) to keep it running
 * const r = await avahi.run('avahi-browse', ['-rpt', '_rxnet._tcp'])
 * await avahi.stop()
 * ```
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { labTempDir, LabError, type ExecOptions, type LabHost, type LabProcess, type RunOptions, type RunResult } from './lab.js'

/** Default time startAvahi waits for dbus and avahi to be up, in ms. */
export const DEFAULT_AVAHI_START_TIMEOUT_MS = 15_000

/** Options of {@link startAvahi}. */
export interface AvahiOptions {
  /** mDNS host name (without `.local`). @default `rxlab-<host.name>` */
  hostName?: string
  /** How long to wait for the daemons. @default 15000 */
  timeoutMs?: number
  signal?: AbortSignal
}

/** A private dbus + avahi-daemon pair running in one lab host. */
export interface Avahi {
  readonly host: LabHost
  readonly hostName: string
  /** Environment that points avahi clients at this host's private bus: `{ DBUS_SYSTEM_BUS_ADDRESS }`. */
  readonly env: { DBUS_SYSTEM_BUS_ADDRESS: string }
  readonly dbus: LabProcess
  readonly daemon: LabProcess
  /** `host.run` with {@link Avahi.env} merged in (e.g. `avahi-browse -rpt _rxnet._tcp`). */
  run(cmd: string, args?: string[], opts?: RunOptions): Promise<RunResult>
  /** `host.exec` with {@link Avahi.env} merged in (e.g. a long-running `avahi-publish`). */
  exec(cmd: string, args?: string[], opts?: ExecOptions): LabProcess
  /** Stops avahi-daemon and dbus-daemon (also done by `lab.close()`); idempotent. */
  stop(): Promise<void>
}

/** Why avahi cannot run in the lab here (missing binaries), or undefined. */
export function avahiUnavailableReason(): string | undefined {
  const missing = ['avahi-daemon', 'avahi-browse', 'avahi-publish', 'dbus-daemon'].filter(
    (b) => spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0,
  )
  if (missing.length > 0) return `missing ${missing.join(', ')} (apt-get install avahi-daemon avahi-utils dbus)`
  // avahi-daemon chowns its runtime dir to the avahi user, which a user namespace (isolate.mjs
  // without root: unshare -r) does not map.
  if (!fullUidMap()) return 'avahi-daemon needs real root; this user namespace maps only one uid'
  return undefined
}

function fullUidMap(): boolean {
  try {
    const [inside, outside, count] = readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/).map(Number)
    return inside === 0 && outside === 0 && count > 65_536
  } catch {
    return false
  }
}

function dbusConfig(socket: string): string {
  // A permissive system-type bus used by nobody but this host's avahi and the test's clients.
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`
}

function avahiConfig(hostName: string, iface: string): string {
  return `[server]
host-name=${hostName}
use-ipv4=yes
use-ipv6=no
allow-interfaces=${iface}
enable-dbus=yes
disallow-other-stacks=no
ratelimit-interval-usec=1000000
ratelimit-burst=1000

[wide-area]
enable-wide-area=no

[publish]
publish-hinfo=no
publish-workstation=no
publish-aaaa-on-ipv4=no
publish-a-on-ipv6=no

[reflector]
enable-reflector=no
`
}

async function until(what: string, cond: () => boolean, procs: LabProcess[], timeoutMs: number, signal?: AbortSignal) {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (signal?.aborted) throw new LabError(`aborted waiting for ${what}`, 'ERR_LAB_ABORTED')
    const dead = procs.find((p) => p.exit)
    if (dead) throw new LabError(`${what}: process exited ${JSON.stringify(dead.exit)}: ${dead.stderr().slice(-2000)}`, 'ERR_LAB_EXITED')
    if (Date.now() > deadline) {
      throw new LabError(`timed out waiting for ${what}: ${procs.map((p) => p.stderr().slice(-1000)).join('\n')}`, 'ERR_LAB_TIMEOUT')
    }
    await new Promise((r) => setTimeout(r, 25))
  }
}

/**
 * Starts a private dbus-daemon and an avahi-daemon (no chroot, root, eth0 only) inside `host`;
 * resolves once avahi has registered on the bus and announced itself.
 * @example
 * ```ts
 * const avahi = await startAvahi(lab.hosts[0])
 * const pub = avahi.exec('avahi-publish', ['-s', 'svc', '_rxnet._tcp', '4000'])
 * ```
 */
export async function startAvahi(host: LabHost, opts: AvahiOptions = {}): Promise<Avahi> {
  const reason = avahiUnavailableReason()
  if (reason) throw new LabError(`avahi unavailable: ${reason}`, 'ERR_LAB_UNAVAILABLE')
  const timeoutMs = opts.timeoutMs ?? DEFAULT_AVAHI_START_TIMEOUT_MS
  const hostName = opts.hostName ?? `rxlab-${host.name}`
  const dir = join(labTempDir(host.lab), `avahi-${host.name}`)
  mkdirSync(dir, { recursive: true })
  const socket = join(dir, 'system_bus_socket')
  writeFileSync(join(dir, 'dbus.conf'), dbusConfig(socket))
  writeFileSync(join(dir, 'avahi-daemon.conf'), avahiConfig(hostName, host.iface))
  const env = { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${socket}` }

  const dbus = host.exec('dbus-daemon', ['--config-file', join(dir, 'dbus.conf'), '--nofork', '--nopidfile', '--print-address=1'])
  const procs = [dbus]
  try {
    await until('dbus-daemon', () => dbus.stdout().includes(socket), procs, timeoutMs, opts.signal)
  } catch (err) {
    dbus.kill('SIGKILL')
    throw err
  }
  // Private /run (pid file, avahi's own socket) and an empty services dir, in a private mount namespace.
  const script =
    'mount -t tmpfs rxnet-run /run && mkdir -p /run/avahi-daemon && ' +
    '{ [ ! -d /etc/avahi/services ] || mount -t tmpfs rxnet-avahi-services /etc/avahi/services; } && ' +
    'exec avahi-daemon --file "$1" --no-drop-root --no-chroot --no-rlimits --no-proc-title'
  const daemon = host.exec('sh', ['-c', script, 'sh', join(dir, 'avahi-daemon.conf')], { env, privateMounts: true })
  procs.push(daemon)
  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= (async () => {
      for (const p of [daemon, dbus]) {
        p.kill('SIGTERM')
        const t = setTimeout(() => p.kill('SIGKILL'), 2000)
        await p.exited
        clearTimeout(t)
      }
    })()
    return stopping
  }
  try {
    await until('avahi-daemon startup', () => /Server startup complete/.test(daemon.stderr()), procs, timeoutMs, opts.signal)
  } catch (err) {
    await stop()
    throw err
  }
  return {
    host,
    hostName,
    env,
    dbus,
    daemon,
    run: (cmd, args = [], o = {}) => host.run(cmd, args, { ...o, env: { ...env, ...o.env } }),
    exec: (cmd, args = [], o = {}) => host.exec(cmd, args, { ...o, env: { ...env, ...o.env } }),
    stop,
  }
}
