/**
 * The request / reply envelope shared by the `request()` and `reply()` operators: plain JSON
 * values, so they travel over a bus, a value Channel (cluster link, mesh peer with a codec) or
 * anything else that carries JSON.
 * @module
 */
import type { Observable } from 'rxjs'
import type { Channel } from './channel.js'

/**
 * A request: `to` is the topic to answer on (bus only).
 * @example
 * ```ts
 * const req: RequestEnvelope<number> = { $rx: 'req', id: 'a1.1', body: 41, to: '_inbox.a1' }
 * ```
 */
export interface RequestEnvelope<T = unknown> {
  readonly $rx: 'req'
  readonly id: string
  readonly body: T
  readonly to?: string
}

/**
 * A reply: `body` on success, `error` when the handler failed.
 * @example
 * ```ts
 * const res: ReplyEnvelope<number> = { $rx: 'res', id: 'a1.1', body: 42 }
 * ```
 */
export interface ReplyEnvelope<T = unknown> {
  readonly $rx: 'res'
  readonly id: string
  readonly body?: T
  readonly error?: { readonly message: string; readonly code?: string }
}

/**
 * What `request()` / `reply()` need of a bus (what `connectBus()` returns has it).
 * @example
 * ```ts
 * const via: BusLike = connectBus('/tmp/app.sock')
 * ```
 */
export interface BusLike {
  messages$(pattern: string): Observable<unknown>
  emit(topic: string, data: unknown): void
}

/** True for a {@link RequestEnvelope}. */
export function isRequest(v: unknown): v is RequestEnvelope {
  return typeof v === 'object' && v !== null && (v as RequestEnvelope).$rx === 'req' && typeof (v as RequestEnvelope).id === 'string'
}

/** True for a {@link ReplyEnvelope}. */
export function isReply(v: unknown): v is ReplyEnvelope {
  return typeof v === 'object' && v !== null && (v as ReplyEnvelope).$rx === 'res' && typeof (v as ReplyEnvelope).id === 'string'
}

/** True when `v` is a Channel (has `source` and `send`) rather than a bus. */
export function isChannel(v: unknown): v is Channel<unknown, unknown> {
  return typeof v === 'object' && v !== null && 'source' in v && typeof (v as Channel<unknown>).send === 'function'
}
