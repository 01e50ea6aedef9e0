/**
 * A process running in a lab host: output capture, the line-based JSON event protocol (`events$`,
 * `waitFor`), `send`, `kill`, exit. Created by `LabHost.spawn` / `LabHost.exec` (lab.ts).
 */
import type { ChildProcess } from 'node:child_process'
import { Observable, Subject } from 'rxjs'
import type { LabHost } from './lab.js'

/** Default time `waitFor` waits for an event, in ms. */
export const DEFAULT_WAIT_TIMEOUT_MS = 10_000

/** Failure of the lab itself (an `ip` command, a timeout, a process that exited early). */
export class LabError extends Error {
  override name = 'LabError'
  /** Stable code: ERR_LAB, ERR_LAB_UNAVAILABLE, ERR_LAB_TIMEOUT, ERR_LAB_EXITED, ERR_LAB_ABORTED. */
  readonly code: string
  constructor(message: string, code = 'ERR_LAB', options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/** One JSON event a lab process printed as a line on stdout (`{"type":"ready",...}`). */
export interface LabEvent {
  type: string
  [key: string]: unknown
}

/** How a process ended. */
export interface LabExit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** An event type, or a predicate over events. */
export type EventPredicate = string | ((e: LabEvent) => boolean)

/** Options of {@link LabProcess.waitFor}. */
export interface WaitOptions {
  signal?: AbortSignal
  /** Ignore the first `from` events (an index into `events`). @default 0 */
  from?: number
}

/** A process running inside a lab host. Stdout lines that are JSON objects with a `type` are events. */
export interface LabProcess {
  readonly host: LabHost
  readonly pid: number
  readonly child: ChildProcess
  /** Every event so far, then the live ones (replays history to each subscriber); completes on exit. */
  readonly events$: Observable<LabEvent>
  /** Every stdout line (JSON or not), live only; completes on exit. */
  readonly lines$: Observable<string>
  /** Events received so far. */
  readonly events: readonly LabEvent[]
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<LabExit>
  /** Exit status once exited, else undefined. */
  readonly exit: LabExit | undefined
  /** Stdout captured so far (bounded to the last 1 MiB). */
  stdout(): string
  /** Stderr captured so far (bounded to the last 1 MiB). */
  stderr(): string
  /**
   * Resolves with the first event (past or future) matching `pred` (a predicate or an event type);
   * rejects with LabError ERR_LAB_TIMEOUT / ERR_LAB_EXITED / ERR_LAB_ABORTED.
   */
  waitFor(pred: EventPredicate, timeoutMs?: number, opts?: WaitOptions): Promise<LabEvent>
  /** Like waitFor, but only for events that arrive after the call (earlier ones are ignored). */
  next(pred: EventPredicate, timeoutMs?: number, opts?: WaitOptions): Promise<LabEvent>
  /**
   * Sends `msg`, then waits for the first matching event that arrives after it (a request/reply).
   * @example
   * ```ts
   * const report = await proc.request({ cmd: 'report' }, 'report')
   * ```
   */
  request(msg: unknown, pred: EventPredicate, timeoutMs?: number, opts?: WaitOptions): Promise<LabEvent>
  /** Writes `JSON.stringify(msg)` and a newline to the process's stdin. */
  send(msg: unknown): void
  /** Sends a signal (default SIGTERM); no-op once exited. */
  kill(signal?: NodeJS.Signals): void
}

/** Sends `sig` to `pid`, ignoring a process that is already gone. */
export function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig)
  } catch {
    /* already gone */
  }
}

const MAX_CAPTURE = 1 << 20

class Capture {
  private text = ''
  add(s: string): void {
    this.text += s
    if (this.text.length > MAX_CAPTURE) this.text = this.text.slice(-MAX_CAPTURE)
  }
  get value(): string {
    return this.text
  }
}

/** The last `n` characters of `s` (for error messages). */
export function tail(s: string, n = 2000): string {
  return s.length > n ? '…' + s.slice(-n) : s
}

/** Wraps a spawned child (stdio all pipes) as a LabProcess; `label` names it in error messages. */
export function createProcess(host: LabHost, child: ChildProcess, label: string): LabProcess {
  const out = new Capture()
  const err = new Capture()
  const history: LabEvent[] = []
  const events = new Subject<LabEvent>()
  const lines = new Subject<string>()
  let exit: LabExit | undefined
  let partial = ''

  const onLine = (line: string) => {
    lines.next(line)
    const t = line.trim()
    if (!t.startsWith('{')) return
    try {
      const v = JSON.parse(t) as unknown
      if (v && typeof v === 'object' && typeof (v as LabEvent).type === 'string') {
        history.push(v as LabEvent)
        events.next(v as LabEvent)
      }
    } catch {
      /* not an event line */
    }
  }
  child.stdout!.setEncoding('utf8')
  child.stderr!.setEncoding('utf8')
  child.stdout!.on('data', (chunk: string) => {
    out.add(chunk)
    partial += chunk
    let nl: number
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl)
      partial = partial.slice(nl + 1)
      onLine(line)
    }
  })
  child.stderr!.on('data', (chunk: string) => err.add(chunk))
  // A dead child's stdin raises EPIPE; the exit promise reports the real outcome.
  child.stdin!.on('error', () => {})

  const exited = new Promise<LabExit>((resolveExit) => {
    let settled = false
    const finish = (e: LabExit) => {
      if (settled) return
      settled = true
      if (partial) onLine(partial)
      partial = ''
      exit = e
      events.complete()
      lines.complete()
      resolveExit(e)
    }
    child.on('error', (e) => {
      err.add(`\n[lab] ${label}: ${e.message}\n`)
      finish({ code: null, signal: null })
    })
    // 'close' (not 'exit'): stdout is fully read by then, so no event is missed.
    child.on('close', (code, signal) => finish({ code, signal }))
  })

  const events$ = new Observable<LabEvent>((subscriber) => {
    for (const e of history.slice()) subscriber.next(e)
    if (exit) {
      subscriber.complete()
      return
    }
    const sub = events.subscribe(subscriber)
    return () => sub.unsubscribe()
  })

  const proc: LabProcess = {
    host,
    pid: child.pid ?? -1,
    child,
    events$,
    lines$: lines.asObservable(),
    get events() {
      return history
    },
    exited,
    get exit() {
      return exit
    },
    stdout: () => out.value,
    stderr: () => err.value,
    waitFor(pred, timeoutMs = DEFAULT_WAIT_TIMEOUT_MS, opts = {}) {
      const match = typeof pred === 'string' ? (e: LabEvent) => e.type === pred : pred
      const what = typeof pred === 'string' ? `event "${pred}"` : 'matching event'
      const context = () =>
        `${label}\n  last events: ${JSON.stringify(history.slice(-5))}\n  stderr: ${tail(err.value) || '(empty)'}`
      return new Promise<LabEvent>((resolveWait, reject) => {
        if (opts.signal?.aborted) return reject(new LabError(`aborted waiting for ${what}`, 'ERR_LAB_ABORTED'))
        let timer: NodeJS.Timeout | undefined
        const from = opts.from ?? 0
        let index = 0
        let done = false
        let sub: { unsubscribe(): void } | undefined
        const settle = (error: Error | undefined, value?: LabEvent) => {
          if (done) return
          done = true
          clearTimeout(timer)
          opts.signal?.removeEventListener('abort', onAbort)
          sub?.unsubscribe()
          if (error) reject(error)
          else resolveWait(value!)
        }
        const onAbort = () => settle(new LabError(`aborted waiting for ${what}`, 'ERR_LAB_ABORTED'))
        sub = events$.subscribe({
          next: (e) => {
            if (index++ < from) return
            try {
              if (match(e)) settle(undefined, e)
            } catch (e2) {
              settle(e2 as Error)
            }
          },
          complete: () =>
            settle(new LabError(`process exited (${JSON.stringify(exit)}) before ${what}: ${context()}`, 'ERR_LAB_EXITED')),
        })
        if (done) {
          sub.unsubscribe()
          return
        }
        timer = setTimeout(
          () => settle(new LabError(`timed out after ${timeoutMs} ms waiting for ${what}: ${context()}`, 'ERR_LAB_TIMEOUT')),
          timeoutMs,
        )
        opts.signal?.addEventListener('abort', onAbort, { once: true })
      })
    },
    next(pred, timeoutMs, opts = {}) {
      return proc.waitFor(pred, timeoutMs, { ...opts, from: history.length })
    },
    request(msg, pred, timeoutMs, opts = {}) {
      const from = history.length
      proc.send(msg)
      return proc.waitFor(pred, timeoutMs, { ...opts, from })
    },
    send(msg) {
      if (exit || !child.stdin!.writable) return
      child.stdin!.write(JSON.stringify(msg) + '\n')
    },
    kill(signal = 'SIGTERM') {
      if (exit) return
      signalPid(child.pid ?? -1, signal)
    },
  }
  return proc
}
