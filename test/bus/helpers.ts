import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import { fileURLToPath } from 'node:url'

export const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))

/** A short, unique socket path. */
export const tmpSocket = (): string => `${os.tmpdir()}/rxb-${randomBytes(4).toString('hex')}.sock`

/** Polls `cond` until it holds or `ms` pass. */
export async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** Spawns `node --import tsx file args`, resolves once it prints `marker` on stdout. */
export async function spawnTs(file: string, args: string[], marker = 'ready'): Promise<ChildProcess & { output: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: fileURLToPath(new URL('../..', import.meta.url)) })
  let out = ''
  let err = ''
  child.stdout!.on('data', (d) => (out += d))
  child.stderr!.on('data', (d) => (err += d))
  await new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (out.includes(marker) || err.includes(marker)) {
        child.stdout!.off('data', check)
        child.stderr!.off('data', check)
        child.off('exit', onExit)
        resolve()
      }
    }
    const onExit = (code: number | null): void => reject(new Error(`${file} exited with ${code} before "${marker}": ${err}`))
    child.stdout!.on('data', check)
    child.stderr!.on('data', check)
    child.once('exit', onExit)
  })
  return Object.assign(child, { output: () => out + err })
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)))
}

/** Starts fixtures/hub-process.ts on `path` (resolves once it is ready); `track` gets a closer that SIGKILLs it. */
export async function hubProcess(path: string, track: (o: { close(): unknown }) => void): Promise<ChildProcess & { output: () => string }> {
  const child = await spawnTs(fixture('hub-process.ts'), [path])
  track({ close: () => child.kill('SIGKILL') })
  return child
}
