/**
 * Child side of the lab's line protocol: scripts started with `host.spawn()` import this to
 * report events (one JSON object per stdout line) and to receive the test's `proc.send()` messages
 * (one JSON value per stdin line). Keep other output on stderr, or as non-JSON lines.
 *
 * @example
 * ```ts
 * import { emit, messages$ } from '../lab/agent.js'
 * emit('ready', { port: 4000 })
 * messages$.subscribe((m) => emit('echo', { m }))
 * ```
 */
import { createInterface } from 'node:readline'
import { Observable, share } from 'rxjs'

/** Writes one event line `{"type": type, ...data}` to stdout. */
export function emit(type: string, data: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ ...data, type }) + '\n')
}

/**
 * Messages the test sent with `proc.send()`, parsed; completes when stdin closes. Lines that are
 * not JSON are reported as `{"type":"bad-message"}` events and skipped. Shared: one stdin reader.
 */
export const messages$: Observable<unknown> = new Observable<unknown>((subscriber) => {
  const rl = createInterface({ input: process.stdin })
  const onLine = (line: string) => {
    if (!line.trim()) return
    try {
      subscriber.next(JSON.parse(line))
    } catch {
      emit('bad-message', { line })
    }
  }
  const onClose = () => subscriber.complete()
  rl.on('line', onLine)
  rl.on('close', onClose)
  return () => {
    rl.off('line', onLine)
    rl.off('close', onClose)
    rl.close()
  }
}).pipe(share())

/** Reports an uncaught error as an `{"type":"error"}` event before the process dies. */
export function reportErrors(): void {
  const onError = (err: unknown) => {
    emit('error', { message: err instanceof Error ? err.message : String(err), code: (err as { code?: unknown })?.code })
    process.exitCode = 1
  }
  process.on('uncaughtException', onError)
  process.on('unhandledRejection', onError)
}
