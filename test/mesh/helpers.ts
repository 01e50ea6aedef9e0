import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const fixture = fileURLToPath(new URL('./fixtures/node.ts', import.meta.url))

/** A mesh node running in a child process. */
export class Child {
  readonly proc: ChildProcess
  readonly messages: Record<string, unknown>[] = []
  private waiters: { pred: (m: Record<string, unknown>) => boolean; resolve: (m: Record<string, unknown>) => void }[] = []
  readonly exited: Promise<{ code: number | null; signal: string | null }>
  members: string[] = []

  constructor(opts: Record<string, unknown>, script = fixture) {
    this.proc = fork(script, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, MESH_OPTS: JSON.stringify(opts) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    this.proc.on('message', (m: Record<string, unknown>) => {
      if (m.type === 'members') this.members = m.ids as string[]
      this.messages.push(m)
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(m)) return true
        w.resolve(m)
        return false
      })
    })
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })))
  }

  /** Resolves with the first message (past or future) matching `pred`. */
  wait(pred: (m: Record<string, unknown>) => boolean, ms = 20_000, what = 'message'): Promise<Record<string, unknown>> {
    const past = this.messages.find(pred)
    return past ? Promise.resolve(past) : this.next(pred, ms, what)
  }

  /** Resolves with the next message matching `pred` (ignores past ones). */
  next(pred: (m: Record<string, unknown>) => boolean, ms = 20_000, what = 'message'): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)
      this.waiters.push({ pred, resolve: (m) => (clearTimeout(t), resolve(m)) })
    })
  }

  send(m: unknown): void {
    this.proc.send(m as never)
  }

  async stats(): Promise<Record<string, any>> {
    const p = this.next((m) => m.type === 'stats', 10_000, 'stats')
    this.send({ cmd: 'stats' })
    return p
  }

  /** Waits until the member list equals `ids` (sorted). */
  waitMembers(ids: string[], ms = 20_000): Promise<unknown> {
    const want = JSON.stringify([...ids].sort())
    if (JSON.stringify(this.members) === want) return Promise.resolve()
    return this.next((m) => m.type === 'members' && JSON.stringify(m.ids) === want, ms, `members ${want}`)
  }

  async close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return
    try {
      this.send({ cmd: 'close' })
    } catch {
      this.proc.kill('SIGKILL')
    }
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000)
    await this.exited
    clearTimeout(t)
  }
}

/** Skips network tests when the suite is not in its own namespace (multicast must stay on lo). */
export const isolated = process.env.RXNET_NETNS === 'isolated'
