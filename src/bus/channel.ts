/**
 * `bus.channel(topic)`: one bus topic as a {@link Connection}, so operators written for Channels
 * (`request`, `reply`, `encode`, a user's own) work on it unchanged. `source` is what
 * `messages$(topic)` gives (the interest is registered from the call on, and what arrives while
 * nobody subscribes is held, bounded); `send` emits on the topic. Built on the lifecycle kernel.
 *
 * A topic has no far side: other clients come and go, so the channel ends only by its own
 * `close()` / `abort()` or when its bus closes (a clean end). A hub crash is not a failure of the
 * channel: the bus reconnects and loses nothing (see "What a hub crash can lose" in docs/bus.md).
 * @module
 */
import { ConnectionKernel, OPEN, KERNEL_OPTION_KEYS, type KernelOptions } from '../lifecycle.js'
import type { Connection, ConnectionStats, WaitOptions } from '../connection.js'
import { checkKeys } from '../options.js'
import type { RxnetError } from '../errors.js'
import type { Bus } from './options.js'

/**
 * Options of `bus.channel(topic)`: the kernel's (`closeTimeout`, `maxHeldMessages`).
 * @example
 * ```ts
 * const ch = bus.channel('jobs', { closeTimeout: 5000, maxHeldMessages: 1024 })
 * ```
 */
export type BusChannelOptions = KernelOptions

/**
 * A bus topic as a Connection (see `bus.channel`).
 * @example
 * ```ts
 * const ch: BusChannel<{ n: number }> = bus.channel('jobs')
 * ch.source.subscribe((job) => console.log(job.n))
 * ch.send({ n: 1 })
 * await ch.close()
 * ```
 */
export type BusChannel<T = unknown> = Connection<T, T>

/** @internal What a topic channel needs of its bus client (implemented by the client, `client.ts`). */
export interface ChannelHost {
  /** Registers interest in `topic`: `deliver` gets each message and its payload size; `end` once the bus closes. Returns the unregister function. */
  listen(topic: string, deliver: (data: unknown, bytes: number) => void, end: () => void): () => void
  /** Emits `data` on `topic` and returns the size of the frame queued; throws as `emit` does. */
  emitSized(topic: string, data: unknown): number
  readonly writable: boolean
  whenWritable(): Promise<void>
  flush(): Promise<void>
  /** Bytes in the bus outbox (shared by every topic of the bus). */
  readonly outboxBytes: number
}

class TopicStats implements ConnectionStats {
  messagesIn = 0
  bytesIn = 0
  messagesOut = 0
  bytesOut = 0
  dropped = 0
  overflows = 0
  droppedIn = 0
  constructor(private readonly host: ChannelHost) {}
  get bufferedBytes(): number {
    return this.host.outboxBytes
  }
}

/**
 * @internal A {@link ChannelHost} from a bus's public API, for a backend without a host of its own
 * (the NATS bus): `bytesIn` / `bytesOut` stay 0 and `bufferedBytes` reads 0 there.
 */
export function publicHost(bus: Pick<Bus, 'messages$' | 'emit' | 'writable' | 'whenWritable' | 'flush'>): ChannelHost {
  return {
    listen: (topic, deliver, end) => {
      const sub = bus.messages$(topic).subscribe({ next: (data) => deliver(data, 0), complete: end, error: end })
      return () => sub.unsubscribe()
    },
    emitSized: (topic, data) => {
      bus.emit(topic, data)
      return 0
    },
    whenWritable: () => bus.whenWritable(),
    flush: () => bus.flush(),
    get writable(): boolean {
      return bus.writable
    },
    outboxBytes: 0,
  }
}

/** @internal Creates the channel of `bus.channel(topic)`; `topic` has been validated. */
export function topicChannel<T>(host: ChannelHost, topic: string, options: BusChannelOptions = {}): BusChannel<T> {
  checkKeys('bus.channel', options, KERNEL_OPTION_KEYS)
  return new TopicChannel<T>(host, topic, options)
}

class TopicChannel<T> extends ConnectionKernel<T, T> {
  readonly stats: TopicStats
  private readonly unlisten: () => void
  private waitingHost = false

  constructor(
    private readonly host: ChannelHost,
    private readonly topic: string,
    options: BusChannelOptions,
  ) {
    super(options)
    this.stats = new TopicStats(host)
    this.unlisten = host.listen(
      topic,
      (data, bytes) => {
        this.stats.messagesIn++
        this.stats.bytesIn += bytes
        this.emit(data as T)
      },
      () => {
        // The bus closed: a clean end of this topic too.
        this.endInbound()
        this.released()
      },
    )
  }

  send(value: T): void {
    if (this.state !== OPEN) {
      this.stats.dropped++
      return
    }
    let bytes: number
    try {
      bytes = this.host.emitSized(this.topic, value)
    } catch (e) {
      this.fail(e) // ERR_ENCODE, ERR_FRAME_TOO_LONG, ERR_BUFFER_OVERFLOW under 'error', ERR_CLOSED
      return
    }
    this.stats.messagesOut++
    this.stats.bytesOut += bytes
  }

  override whenWritable(options: WaitOptions = {}): Promise<void> {
    const p = super.whenWritable(options)
    if (!this.writable && this.state === OPEN && !this.waitingHost) {
      this.waitingHost = true
      this.host.whenWritable().then(
        () => {
          this.waitingHost = false
          this.wakeWriters()
        },
        () => (this.waitingHost = false), // the bus closed: the channel ends with it
      )
    }
    return p
  }

  protected hasRoom(): boolean {
    return this.host.writable
  }

  /** Graceful: everything sent has been taken by the hub, then the interest is withdrawn. */
  protected startClose(): void {
    this.host.flush().then(
      () => {
        this.unlisten()
        this.endInbound()
        this.released()
      },
      (e: unknown) => this.fail(e),
    )
  }

  protected destroy(_error: RxnetError): void {
    this.unlisten()
    this.released()
  }
}
