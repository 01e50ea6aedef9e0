#!/usr/bin/env node
// Runs the command after `--` inside fresh Linux namespaces so no test can send anything out of the
// machine's real interfaces:
//   - a network namespace that has only `lo` (up, multicast on, 224.0.0.0/4 routed to lo);
//   - a private mount namespace with its own tmpfs on /run/netns, so `ip netns` state created by the
//     lab (test/lab/lab.ts) is invisible to, and cannot collide with, other concurrent runs;
//   - a PID namespace whose init is this script (--inner mode): when it exits, the kernel kills every
//     process left inside, so nothing the tests started can outlive the run.
// As root: `unshare -n -m -p`; otherwise `unshare -r -n -m -p` (user namespace); each falls back to a
// bare `unshare -n` / `unshare -rn` (then the lab is unavailable, plain tests still isolated).
//
// Environment seen by the command:
//   RXNET_NETNS=isolated | none          RXNET_NETNS_REASON   why not isolated (when none)
//   RXNET_LAB=ready | unavailable        RXNET_LAB_REASON     why the lab cannot build hosts
//   RXNET_ISOLATE=<unshare flags used>
//   TMPDIR (and TMP, TEMP) = a fresh directory of its own (mode 1777, like /tmp), RXNET_RUN_TMPDIR the same
// Tests that need namespaces skip with RXNET_LAB_REASON (see test/lab/README.md); nothing else skips.
//
// Temp files: the run gets its own TMPDIR (so os.tmpdir() is private to it and other processes on the
// machine cannot disturb the check). When the command has ended, whatever is left in it (tool caches such
// as tsx-<uid> aside) is listed on stderr and the directory removed. With --check-tmp (what `npm test`
// uses), leftovers also fail the run: exit 1 when the command itself succeeded.
//   usage: isolate.mjs [--check-tmp] -- <command> [args...]
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { constants, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const self = fileURLToPath(import.meta.url)
const argv = process.argv.slice(2)
const sep = argv.indexOf('--')
const flags = sep >= 0 ? argv.slice(0, sep) : argv
const inner = flags.includes('--inner')
const checkTmp = flags.includes('--check-tmp')
const cmd = sep >= 0 ? argv.slice(sep + 1) : []
const unknown = flags.filter((f) => f !== '--inner' && f !== '--check-tmp')
if (cmd.length === 0 || unknown.length > 0) {
  console.error(`${unknown.length > 0 ? `isolate: unknown option ${unknown[0]}\n` : ''}usage: isolate.mjs [--check-tmp] -- <command> [args...]`)
  process.exit(2)
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP']

/** Exit code a shell would report for a child that ended with `status`/`signal`. */
function exitCodeOf(status, signal) {
  if (status !== null && status !== undefined) return status
  return 128 + (constants.signals[signal] ?? 1)
}

/** Spawns `argv` with inherited stdio; resolves with the exit code. `onSignal` maps our signals to the child. */
function runChild(args, env, onSignal) {
  return new Promise((resolve) => {
    const child = spawn(args[0], args.slice(1), { stdio: 'inherit', env })
    const handlers = SIGNALS.map((sig) => {
      const h = () => onSignal(child, sig)
      process.on(sig, h)
      return [sig, h]
    })
    const done = (code) => {
      for (const [sig, h] of handlers) process.off(sig, h)
      resolve(code)
    }
    child.on('error', (err) => {
      console.error(`isolate: cannot run ${args[0]}: ${err.message}`)
      done(127)
    })
    child.on('exit', (status, signal) => done(exitCodeOf(status, signal)))
  })
}

const sh = (args) => spawnSync(args[0], args.slice(1), { encoding: 'utf8' })
/** Why a spawnSync result failed, in one line. */
const why = (r) => (r.stderr || r.error?.message || `exit ${r.status}`).trim()

if (inner) {
  // ---- inside the namespaces (pid 1 when a PID namespace was created) ----
  const env = { ...process.env, RXNET_NETNS: 'isolated' }
  for (const args of [['link', 'set', 'lo', 'up'], ['link', 'set', 'lo', 'multicast', 'on'], ['route', 'add', '224.0.0.0/4', 'dev', 'lo']]) {
    const r = sh(['ip', ...args])
    if (r.status !== 0) console.error(`isolate: WARNING: ip ${args.join(' ')} failed: ${why(r)} (is iproute2 installed?)`)
  }
  const lab = prepareLab(process.env.RXNET_ISOLATE ?? '')
  if (lab === true) env.RXNET_LAB = 'ready'
  else Object.assign(env, { RXNET_LAB: 'unavailable', RXNET_LAB_REASON: lab })
  delete env.RXNET_NETNS_REASON
  const code = await runChild(cmd, env, (child, sig) => child.kill(sig))
  const leftovers = cleanupNetns()
  if (leftovers > 0) console.error(`isolate: removed ${leftovers} network namespace(s) the run left behind`)
  process.exit(code)
}

/** Makes /run/netns private to this run and checks that `ip netns` works; returns true or a reason. */
function prepareLab(flags) {
  if (!/(^| )-m( |$)/.test(flags)) return 'no private mount namespace (unshare -m failed), so ip netns state would leak'
  try {
    mkdirSync('/run/netns', { recursive: true })
  } catch (err) {
    return `cannot create /run/netns: ${err.message}`
  }
  const m = sh(['mount', '-t', 'tmpfs', '-o', 'mode=0755,size=1m', 'rxnet-netns', '/run/netns'])
  if (m.status !== 0) return `cannot mount a private /run/netns: ${why(m)}`
  const probe = `rxnet-probe-${process.pid}`
  const add = sh(['ip', 'netns', 'add', probe])
  if (add.status !== 0) return `ip netns add failed: ${why(add)}`
  sh(['ip', 'netns', 'del', probe])
  const br = sh(['ip', 'link', 'add', `rxprobe${process.pid % 1000}`, 'type', 'bridge'])
  if (br.status !== 0) return `cannot create a bridge: ${why(br)}`
  sh(['ip', 'link', 'del', `rxprobe${process.pid % 1000}`])
  return true
}

/** Kills whatever still runs in a namespace under /run/netns and deletes it; returns how many. */
function cleanupNetns() {
  let names = []
  try {
    names = readdirSync('/run/netns')
  } catch {
    return 0
  }
  for (const name of names) {
    const pids = sh(['ip', 'netns', 'pids', name]).stdout?.split(/\s+/).filter(Boolean) ?? []
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL')
      } catch {}
    }
    sh(['ip', 'netns', 'del', name])
  }
  return names.length
}

/** Caches our tools keep in os.tmpdir(); not files a test made (tsx's compile cache is tsx-<uid>). */
const TOOL_CACHES = /^tsx-\d+$/

/** Creates the run's own TMPDIR; returns its path and the environment that points at it. */
function makeRunTmp() {
  const dir = mkdtempSync(join(tmpdir(), 'rxt-'))
  chmodSync(dir, 0o1777) // tests that drop privileges (setpriv --reuid=nobody) still need to create files here
  return { dir, env: { TMPDIR: dir, TMP: dir, TEMP: dir, RXNET_RUN_TMPDIR: dir } }
}

/** Lists what the run left in `dir` (one level, tool caches skipped), removes `dir`; returns the names. */
function sweepRunTmp(dir) {
  let left = []
  try {
    left = readdirSync(dir).filter((name) => !TOOL_CACHES.test(name))
  } catch {}
  rmSync(dir, { recursive: true, force: true })
  if (left.length > 0) {
    const shown = left.slice(0, 20).map((n) => `  ${n}`)
    if (left.length > shown.length) shown.push(`  ... and ${left.length - shown.length} more`)
    console.error(`isolate: ${checkTmp ? 'ERROR' : 'WARNING'}: the run left ${left.length} entr${left.length === 1 ? 'y' : 'ies'} in its TMPDIR (removed now); every test must remove the files it creates:\n${shown.join('\n')}`)
  }
  return left
}

/** Runs the outer part with its own TMPDIR, then sweeps it and exits with the command's code (1 for leftovers under --check-tmp). */
async function withRunTmp(body) {
  const tmp = makeRunTmp()
  let code = 1
  try {
    code = await body(tmp.env)
  } finally {
    const left = sweepRunTmp(tmp.dir)
    if (checkTmp && left.length > 0 && code === 0) code = 1
  }
  process.exit(code)
}

// ---- outside: pick the strongest isolation that works, re-run this script inside it ----
await withRunTmp(async (tmpEnv) => {
  if (process.platform !== 'linux' || process.env.RXNET_NETNS) {
    // Not Linux, or already inside an isolated run (nested `npm test`): run the command as is.
    const env = { ...process.env, ...tmpEnv }
    if (!env.RXNET_NETNS) {
      Object.assign(env, {
        RXNET_NETNS: 'none',
        RXNET_NETNS_REASON: `network namespaces are Linux-only (platform ${process.platform})`,
        RXNET_LAB: 'unavailable',
        RXNET_LAB_REASON: `network namespaces are Linux-only (platform ${process.platform})`,
      })
    }
    return runChild(cmd, env, (child, sig) => child.kill(sig))
  }

  const full = ['-m', '-p', '--fork', '--mount-proc', '--kill-child=SIGTERM']
  const root = process.getuid?.() === 0
  const attempts = [
    ...(root ? [['-n', ...full], ['-n']] : []),
    ['-r', '-n', ...full],
    ['-r', '-n'],
  ]
  const tried = []
  for (const flags of attempts) {
    const probe = sh(['unshare', ...flags, 'true'])
    if (probe.status !== 0) {
      tried.push(`unshare ${flags.join(' ')}: ${why(probe)}`)
      continue
    }
    const desc = flags.join(' ')
    console.error(`isolate: running in fresh namespaces (unshare ${desc}); only lo exists inside`)
    const env = { ...process.env, ...tmpEnv, RXNET_ISOLATE: desc }
    const killChild = flags.includes('--kill-child=SIGTERM')
    // unshare --fork ignores SIGINT/SIGTERM; killing it makes the kernel send SIGTERM to our inner
    // copy (pid 1), which stops the command and removes every namespace before the PID namespace dies.
    return runChild(['unshare', ...flags, process.execPath, self, '--inner', '--', ...cmd], env, (child, sig) =>
      child.kill(killChild ? 'SIGKILL' : sig),
    )
  }
  const reason = `cannot create a network namespace, tests that need one are skipped (${tried.join('; ')})`
  console.error(`isolate: WARNING: ${reason}`)
  console.error('isolate: running the command WITHOUT network isolation')
  return runChild(
    cmd,
    { ...process.env, ...tmpEnv, RXNET_NETNS: 'none', RXNET_NETNS_REASON: reason, RXNET_LAB: 'unavailable', RXNET_LAB_REASON: reason },
    (child, sig) => child.kill(sig),
  )
})
