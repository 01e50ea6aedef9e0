/**
 * The lifecycle kernel: the part of a {@link Connection} that is the same on every transport,
 * written once. A transport extends {@link ConnectionKernel}, implements four hooks and reports
 * what its resource does; the kernel owns the state, `source` (with held-message replay), the
 * `whenWritable()` waiters, close-then-abort, `closed` and `Symbol.asyncDispose`.
 *
 * ## How a transport uses it
 * ```
 * class MyConnection extends ConnectionKernel<In, Out> {
 *   readonly stats = ...                         // a ConnectionStats (e.g. QueueStats)
 *   send(v)        { if (this.state !== OPEN) { count it in stats.dropped; return }  ... write ... }
 *   hasRoom()      { return buffered <= highWaterMark / 2 }     // `writable` is open && hasRoom()
 *   startClose()   { flush what is queued, then end our side }  // once, on close() / sink.complete()
 *   destroy(e)     { tear the resource down now }               // once, on failure or abort()
 *   onObserved(b)  { b ? resume reading : pause reading }        // optional: first subscriber came / last left
 * }
 * ```
 * and reports, from its resource's events:
 * - `this.emit(value)` for every inbound message (hot path; held while nobody subscribes);
 * - `this.endInbound()` when the far side ended cleanly (`source` completes);
 * - `this.fail(error)` when it failed (`source` errors, `destroy(error)` is called);
 * - `this.wakeWriters()` when its buffer drained (resolves `whenWritable()` if `writable`);
 * - `this.released(error?)` when the resource is gone (the connection is `closed`; pass an error
 *   if it ended uncleanly without `fail`).
 * A value `send` refuses goes to `this.fail(new EncodeError(...))`, never thrown.
 *
 * The state ({@link ConnectionState}, ws `readyState` style) only moves forward:
 * `open` → `closing` (graceful close under way, or failed and releasing) → `closed`, and says how
 * it ended. `close({ timeout, signal })` works as libp2p's `close(options)`: graceful, and if that
 * has not finished when the signal fires (default `AbortSignal.timeout(closeTimeout)`), abort.
 * @module
 */
import { Observable, type Observer } from 'rxjs'
import type { CloseOptions, Connection, ConnectionStats, WaitOptions } from './connection.js'
import { DEFAULT_CONNECTION_CLOSE_TIMEOUT } from './connection.js'
import { ChannelAbortedError, ClosedError, ConnectionError, RxnetError, TimeoutError } from './errors.js'
import { checkInt } from './options.js'
import { deadline, Waiters } from './wait.js'

/**
 * Where a connection is in its life, and how it ended.
 * - `open`: sending and receiving;
 * - `closing`: a graceful close is under way (`error` undefined), or the connection failed and
 *   its resource is being released (`error` set); `send` drops and counts;
 * - `closed`: the resource is gone; `error` is undefined after a clean close.
 * @example
 * ```ts
 * if (conn.state.type === 'closed' && conn.state.error !== undefined) console.log('failed:', conn.state.error.code)
 * ```
 */
export type ConnectionState =
  | { readonly type: 'open'; readonly error?: undefined }
  | { readonly type: 'closing'; readonly error: RxnetError | undefined }
  | { readonly type: 'closed'; readonly error: RxnetError | undefined }

/**
 * The one `open` state object (compare with `===` on hot paths).
 * @example
 * ```ts
 * if (conn.state === OPEN) conn.send(x)
 * ```
 */
export const OPEN: ConnectionState = Object.freeze({ type: 'open' })
const CLOSING: ConnectionState = Object.freeze({ type: 'closing', error: undefined })

/**
 * Default {@link KernelOptions.maxHeldMessages}: inbound messages kept for a late subscriber.
 * @example
 * ```ts
 * socketChannel(socket, { maxHeldMessages: DEFAULT_MAX_HELD_MESSAGES / 4 })
 * ```
 */
export const DEFAULT_MAX_HELD_MESSAGES = 65_536

/**
 * Options every connection built on the kernel takes.
 * @example
 * ```ts
 * const options: KernelOptions = { closeTimeout: 5000, maxHeldMessages: 1024 }
 * ```
 */
export interface KernelOptions {
  /** How long `close()` waits for the graceful end before aborting, ms. @default 1000 ({@link DEFAULT_CONNECTION_CLOSE_TIMEOUT}) */
  closeTimeout?: number
  /**
   * Most inbound messages held while nobody subscribes to `source` (a transport that can pause
   * its reads holds at most one read's worth); beyond it new ones are dropped and counted in
   * `stats.droppedIn`. @default 65536 ({@link DEFAULT_MAX_HELD_MESSAGES})
   */
  maxHeldMessages?: number
}

/** The option names of {@link KernelOptions}, for `checkKeys`. */
export const KERNEL_OPTION_KEYS: readonly (keyof KernelOptions)[] = ['closeTimeout', 'maxHeldMessages']

/**
 * @internal What the kernel delivers `source` to: an RxJS `Subscriber`, or (through
 * {@link observeSource}) a plain object of the same shape, for a layer built on a connection (a
 * mesh peer on its socket channel) that would otherwise pay a Subscriber's wrapping per message.
 */
export interface SourceReceiver<In> {
  next(value: In): void
  error(error: RxnetError): void
  complete(): void
  /** True once it wants nothing more. */
  readonly closed: boolean
}

/** @internal The kernel's entry for {@link observeSource}. */
const OBSERVE: unique symbol = Symbol('rxnet.observe')

/**
 * @internal Subscribes `receiver` to `connection.source`: straight to the kernel when the
 * connection is one (same order, holding, replay and ending as a subscription, without RxJS in
 * between), else through `source.subscribe`. Returns the teardown.
 */
export function observeSource<In>(connection: Connection<In, any>, receiver: SourceReceiver<In>): () => void {
  if (connection instanceof ConnectionKernel) return (connection as ConnectionKernel<In, any>)[OBSERVE](receiver)
  const sub = connection.source.subscribe({ next: (v) => receiver.next(v), error: (e: RxnetError) => receiver.error(e), complete: () => receiver.complete() })
  return () => sub.unsubscribe()
}

/** Validates {@link KernelOptions} (`ERR_INVALID_ARGUMENT`), defaults filled in. */
export function kernelOptions(options: KernelOptions): Required<KernelOptions> {
  return {
    closeTimeout: checkInt('closeTimeout', options.closeTimeout ?? DEFAULT_CONNECTION_CLOSE_TIMEOUT, 0),
    maxHeldMessages: checkInt('maxHeldMessages', options.maxHeldMessages ?? DEFAULT_MAX_HELD_MESSAGES, 0),
  }
}

/** An error as a connection reports it: an {@link RxnetError} as it is, anything else as `ERR_CONNECTION`. */
export function connectionError(e: unknown, what = 'connection failed'): RxnetError {
  return e instanceof RxnetError ? e : new ConnectionError(`${what}: ${String((e as Error)?.message ?? e)}`, e)
}

/**
 * The base class of every connection: see the module doc for the hooks a transport implements.
 * @typeParam In - what `source` emits.
 * @typeParam Out - what `send` accepts.
 * @example
 * ```ts
 * class Loopback extends ConnectionKernel<string> {
 *   readonly stats = { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0, dropped: 0, overflows: 0, bufferedBytes: 0, droppedIn: 0 }
 *   constructor() { super({}); this.watch() }
 *   send(s: string): void { if (this.state === OPEN) this.emit(s); else this.stats.dropped++ }
 *   protected hasRoom(): boolean { return true }
 *   protected startClose(): void { this.endInbound(); this.released() }
 *   protected destroy(): void { this.released() }
 * }
 * ```
 */
export abstract class ConnectionKernel<In, Out = In> implements Connection<In, Out> {
  readonly source: Observable<In>
  readonly sink: Observer<Out>
  readonly closed: Promise<RxnetError | undefined>
  abstract readonly stats: ConnectionStats

  /** Where the connection is in its life (see {@link ConnectionState}). */
  state: ConnectionState = OPEN
  /** @internal Current subscribers of `source` (copy-on-write: emitting never sees a half-updated list). */
  protected subscribers: SourceReceiver<In>[] = []
  /** How `source` ended (clean: `error` undefined), once it has. */
  private inbound: { error: RxnetError | undefined } | null = null
  private held: In[] = []
  private heldHead = 0
  private readonly writers = new Waiters()
  private resolveClosed!: (e: RxnetError | undefined) => void
  private closing: Promise<void> | null = null
  protected readonly kernel: Required<KernelOptions>

  constructor(options: KernelOptions) {
    this.kernel = kernelOptions(options)
    this.source = new Observable<In>((subscriber) => this.subscribe(subscriber))
    this.sink = {
      next: (v) => this.send(v),
      error: (e) => this.abort(e),
      complete: () => void this.close(),
    }
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve))
  }

  /** Sends one value; never throws (see the Connection contract). */
  abstract send(value: Out): void
  /** True when the send buffer has room (under half its high-water mark). */
  protected abstract hasRoom(): boolean
  /** Begins the graceful close: flush what is queued, then end our side. Called once. */
  protected abstract startClose(): void
  /** Tears the resource down now (the connection failed with `error`). Called once. */
  protected abstract destroy(error: RxnetError): void
  /** The first subscriber of `source` came (`true`) or the last one left (`false`). */
  protected onObserved(_observed: boolean): void {}

  get writable(): boolean {
    return this.state === OPEN && this.hasRoom()
  }

  whenWritable(options: WaitOptions = {}): Promise<void> {
    if (this.writable) return Promise.resolve()
    if (this.state !== OPEN) return Promise.reject(new ClosedError('connection', this.state.error))
    return this.writers.wait(options.signal)
  }

  close(options: CloseOptions = {}): Promise<void> {
    if (this.state.type === 'closed') return Promise.resolve()
    if (this.closing !== null) return this.closing
    if (this.state === OPEN) {
      this.state = CLOSING
      this.writers.rejectAll(new ClosedError('connection'))
      this.startClose()
    }
    const timeout = options.timeout ?? this.kernel.closeTimeout
    this.closing = deadline<RxnetError | undefined>(({ resolve }) => void this.closed.then(resolve), {
      signal: options.signal,
      timeout,
      onTimeout: () => new TimeoutError('graceful close', timeout),
    }).then(
      () => undefined,
      (why: RxnetError) => {
        this.abort(why)
        return this.closed.then(() => undefined)
      },
    )
    return this.closing
  }

  abort(err?: unknown): void {
    this.fail(new ChannelAbortedError(err))
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  // ---- reported by the transport -----------------------------------------------------------

  /** An inbound message: to every subscriber, or held for the next one. */
  protected emit(value: In): void {
    const subs = this.subscribers
    if (subs.length === 1) subs[0]!.next(value)
    else if (subs.length === 0) this.hold(value)
    else {
      for (let i = 0; i < subs.length; i++) {
        const s = subs[i]!
        // One removed during this delivery (from an earlier one's next) gets nothing more: a
        // Subscriber would ignore it, a plain receiver (observeSource) would not.
        if (subs !== this.subscribers && !this.subscribers.includes(s)) continue
        s.next(value)
      }
    }
  }

  /** The far side ended cleanly: `source` completes (held messages still go to a late subscriber first). */
  protected endInbound(): void {
    if (this.inbound !== null) return
    this.inbound = { error: undefined }
    for (const s of this.takeSubscribers()) s.complete()
  }

  /** The connection failed: `source` errors, waiters reject, `destroy(error)` runs. Idempotent. */
  protected fail(e: unknown): void {
    if (this.state.type === 'closed' || this.state.error !== undefined) return
    const error = connectionError(e)
    this.state = { type: 'closing', error }
    this.writers.rejectAll(new ClosedError('connection', error))
    if (this.inbound === null) {
      this.inbound = { error }
      for (const s of this.takeSubscribers()) s.error(error)
    }
    this.destroy(error)
  }

  /** The resource is gone: the connection is closed (with `error`, if it ended uncleanly without `fail`). */
  protected released(error?: RxnetError): void {
    if (this.state.type === 'closed') return
    const e = this.state.error ?? error
    this.state = { type: 'closed', error: e }
    this.writers.rejectAll(new ClosedError('connection', e))
    if (this.inbound === null) {
      this.inbound = { error: e }
      for (const s of this.takeSubscribers()) e === undefined ? s.complete() : s.error(e)
    }
    this.resolveClosed(e)
  }

  /** The send buffer made progress: resolves `whenWritable()` waiters if `writable`. */
  protected wakeWriters(): void {
    if (this.writers.size > 0 && this.writable) this.writers.resolveAll()
  }

  /** How many inbound messages are held for a late subscriber. */
  protected get holding(): number {
    return this.held.length - this.heldHead
  }

  /** True once the far side ended cleanly (`endInbound`). */
  protected get inboundEnded(): boolean {
    return this.inbound !== null && this.inbound.error === undefined
  }

  // ---- source ----------------------------------------------------------------------------

  private hold(value: In): void {
    // Closing with nobody listening: the user is done reading; discard (counted) so the far
    // side's end can be seen.
    if (this.state !== OPEN || this.holding >= this.kernel.maxHeldMessages) this.stats.droppedIn++
    else this.held.push(value)
  }

  /** @internal See {@link observeSource}. */
  [OBSERVE](receiver: SourceReceiver<In>): () => void {
    return this.subscribe(receiver)
  }

  private subscribe(subscriber: SourceReceiver<In>): () => void {
    // Held messages first, in order, for as long as this subscriber stays.
    while (this.heldHead < this.held.length && !subscriber.closed) {
      const value = this.held[this.heldHead]!
      this.held[this.heldHead++] = undefined as unknown as In
      subscriber.next(value)
    }
    if (this.heldHead === this.held.length && this.heldHead > 0) {
      this.held = []
      this.heldHead = 0
    }
    if (subscriber.closed) return noop
    const ended = this.inbound
    if (ended !== null) {
      if (ended.error !== undefined) subscriber.error(ended.error)
      else subscriber.complete()
      return noop
    }
    this.subscribers = [...this.subscribers, subscriber]
    if (this.subscribers.length === 1) this.onObserved(true)
    return () => {
      const before = this.subscribers.length
      this.subscribers = this.subscribers.filter((s) => s !== subscriber)
      if (before > 0 && this.subscribers.length === 0 && this.inbound === null) this.onObserved(false)
    }
  }

  private takeSubscribers(): SourceReceiver<In>[] {
    const subs = this.subscribers
    this.subscribers = []
    return subs
  }
}

function noop(): void {}
