// The dashboard as a person sees it: headless Chromium (Debian's, driven by playwright-core) loads
// `rxnet dashboard` watching a live 3-node mesh of real processes and a hub.
import { afterEach, describe, expect, it } from 'vitest'
import { fork, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startHub } from 'rxnet'
import { root } from '../unit/run-script.js'

const CHROMIUM = '/usr/bin/chromium'
const fixture = fileURLToPath(new URL('./fixtures/node.ts', import.meta.url))
const isolated = process.env.RXNET_NETNS === 'isolated'
const canRun = isolated && fs.existsSync(CHROMIUM)
if (!canRun) console.warn(`skipped the browser test: ${isolated ? '' : 'not in the isolated namespace (run it through test/lab/isolate.mjs); '}${fs.existsSync(CHROMIUM) ? '' : `${CHROMIUM} is missing (apt-get install chromium)`}`)
// The functions given to page.waitForFunction run in the page, where there is a DOM.
declare const document: any

const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

interface Node {
  id: string
  proc: ChildProcess
  /** Every member list it reported. */
  members: string[][]
  exited: Promise<void>
}

function startNode(name: string, id: string, hub: string): Node {
  const proc = fork(fixture, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, NODE_OPTS: JSON.stringify({ name, id, hub }) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const node: Node = { id, proc, members: [], exited: new Promise((r) => proc.once('exit', () => r())) }
  proc.on('message', (m: { type: string; ids?: string[] }) => {
    if (m.type === 'members') node.members.push(m.ids!)
  })
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    await node.exited
  })
  return node
}

/** `rxnet dashboard ...` as a process; resolves with the URL it prints. */
async function startDashboardCli(args: string[]): Promise<string> {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'dashboard', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise<void>((r) => proc.once('exit', () => r()))
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
    await exited
  })
  return new Promise<string>((resolve, reject) => {
    let out = ''
    const t = setTimeout(() => reject(new Error(`dashboard printed no URL: ${out}`)), 20_000)
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)
      if (m) {
        clearTimeout(t)
        resolve(m[1]!)
      }
    })
  })
}

describe.skipIf(!canRun)('rxnet dashboard in a browser', () => {
  it('shows 3 nodes, 3 links with RTTs and moving counters, the hub clients; a killed node turns down and goes; the nodes keep N-1 members', async () => {
    const { chromium } = await import('playwright-core')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rxnet-dashboard-'))
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }))
    const hub = await startHub({ path: path.join(dir, 'hub.sock') })
    cleanups.push(() => hub.close())
    const name = `dash-${process.pid}`
    const nodes = ['a', 'b', 'c'].map((id) => startNode(name, id, hub.path))
    const url = await startDashboardCli(['--mesh', name, '--bus', hub.path])
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)

    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rxnet-chromium-'))
    cleanups.push(() => fs.rmSync(profile, { recursive: true, force: true }))
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 820 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
    cleanups.push(() => browser.close())
    const page = await browser.newPage()
    await page.goto(url)

    // 3 mesh nodes, 3 links up, each with an RTT measured by both ends.
    await page.waitForFunction(() => document.querySelectorAll('#nodes tr[data-transport="mesh"][data-state="up"]').length === 3, undefined, { timeout: 30_000 })
    await page.waitForFunction(() => [...document.querySelectorAll('#links tr[data-link]')].filter((r) => r.getAttribute('data-state') === 'up' && r.getAttribute('data-rtt') === '2').length === 3, undefined, { timeout: 30_000 })
    expect(await page.locator('#links tr[data-link]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-link')).sort())).toEqual(['a|b', 'a|c', 'b|c'])
    expect(await page.locator('#topology g.node').count()).toBe(4) // the three nodes and the hub
    expect(await page.locator('#topology g.link').count()).toBe(3)
    const rttText = await page.locator('#links tr[data-link="a|b"] td').nth(2).textContent()
    expect(rttText).toMatch(/a: \d+\.\d\d ms, b: \d+\.\d\d ms/)

    // Counters move while messages flow.
    const sent = (): Promise<number> => page.locator('#nodes tr[data-node="a"]').evaluate((r) => Number(r.getAttribute('data-sent')))
    const before = await sent()
    await page.waitForFunction((b) => Number(document.querySelector('#nodes tr[data-node="a"]')?.getAttribute('data-sent')) > b, before, { timeout: 10_000 })

    // The hub's clients with their subscriptions (the three nodes and the dashboard's own bus client).
    await page.waitForFunction(() => ['jobs.a', 'jobs.b', 'jobs.c'].every((t) => document.querySelector('#clients')?.textContent?.includes(t)), undefined, { timeout: 15_000 })

    const shot = path.join(dir, 'dashboard.png')
    await page.screenshot({ path: shot })
    expect(fs.statSync(shot).size).toBeGreaterThan(10_000)
    if (process.env.RXNET_DASHBOARD_SCREENSHOT) fs.copyFileSync(shot, process.env.RXNET_DASHBOARD_SCREENSHOT)

    // A killed node turns down, then disappears; its links go with it.
    nodes[2]!.proc.kill('SIGKILL')
    await nodes[2]!.exited
    await page.waitForFunction(() => document.querySelector('#nodes tr[data-node="c"]')?.getAttribute('data-state') === 'down' || document.querySelector('#links tr[data-link="a|c"]')?.getAttribute('data-state') === 'down', undefined, { timeout: 10_000 })
    await page.waitForFunction(() => !document.querySelector('#nodes tr[data-node="c"]') && document.querySelectorAll('#links tr[data-link]').length === 1, undefined, { timeout: 15_000 })
    expect(await page.locator('#links tr[data-link]').getAttribute('data-link')).toBe('a|b')

    // With the dashboard attached the whole time, no node ever had more than N-1 = 2 members.
    for (const n of nodes) {
      expect(n.members.length).toBeGreaterThan(0)
      for (const m of n.members) expect(m.length, `${n.id}: ${m.join(',')}`).toBeLessThanOrEqual(2)
    }
    expect(nodes[0]!.members.at(-1)).toEqual(['b'])
  }, 120_000)
})
