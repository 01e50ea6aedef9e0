#!/usr/bin/env node
// Runs the command after `--` inside a fresh network namespace that has only `lo` (Linux), so no
// test can send anything out of the machine. As root: `unshare -n`; otherwise `unshare -rn`.
// Inside, RXNET_NETNS=isolated (or =none with a reason in RXNET_NETNS_REASON when isolation was impossible).
import { spawnSync } from 'node:child_process'

const sep = process.argv.indexOf('--')
const cmd = sep >= 0 ? process.argv.slice(sep + 1) : []
if (cmd.length === 0) {
  console.error('usage: isolate.mjs -- <command> [args...]')
  process.exit(2)
}

function run(argv, env) {
  const r = spawnSync(argv[0], argv.slice(1), { stdio: 'inherit', env })
  if (r.error) return { error: r.error }
  return { status: r.status ?? (r.signal ? 128 : 1) }
}

if (process.platform !== 'linux' || process.env.RXNET_NETNS) {
  process.exit(run(cmd, process.env).status ?? 1)
}

const inner = `ip link set lo up 2>/dev/null || true; ip link set lo multicast on 2>/dev/null || true; exec "$@"`
const attempts = process.getuid?.() === 0 ? [['unshare', '-n'], ['unshare', '-rn']] : [['unshare', '-rn']]
for (const prefix of attempts) {
  const probe = spawnSync(prefix[0], [...prefix.slice(1), 'true'])
  if (probe.status !== 0) continue
  console.error(`isolate: running tests in a fresh network namespace (${prefix.join(' ')})`)
  const r = run([...prefix, 'sh', '-c', inner, 'sh', ...cmd], { ...process.env, RXNET_NETNS: 'isolated' })
  process.exit(r.status ?? 1)
}
const reason = 'unshare -n / -rn are not permitted here; tests that need a network namespace are skipped'
console.error(`isolate: ${reason}`)
process.exit(run(cmd, { ...process.env, RXNET_NETNS: 'none', RXNET_NETNS_REASON: reason }).status ?? 1)
