/**
 * Durable topics on JetStream: the stream a bus stores its durable emits in, and reading it back
 * (`messages$(pattern, { from })` through an ordered consumer, `{ consumer }` through a durable
 * consumer that resumes after the last message it acknowledged).
 * @module
 */
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node'
import type { JetStreamClient, ConsumerMessages, JsMsg, DeliverPolicy } from '@nats-io/jetstream'
import type { Codec } from '../../codec/index.js'
import { InvalidArgumentError, RxnetError } from '../../errors.js'
import { checkKeys } from '../../options.js'
import { SequenceWindow } from '../../multicast/window.js'
import type { BusStats } from '../options.js'
import { DEFAULT_DUPLICATE_WINDOW, type DurableOptions, type DurableReadOptions, type DurableStart } from './options.js'
import { decodeBody, readMeta, SenderFilter, Verdict } from './wire.js'
import { MAX_SEQ_JUMP } from '../inbox.js'
import { loadJetStream } from './load.js'
import { delay } from '../../wait.js'
import type { Deliver, Listener } from './interests.js'

type JetStreamModule = typeof import('@nats-io/jetstream')

/** How long a reader waits before it tries again to set up its consumer, ms. */
const RETRY_DELAY = 1000

/** Sequence numbers per sender a durable consumer remembers (redeliveries may come late). */
const DURABLE_WINDOW = 4096

/** What a durable reader needs of its bus. */
export interface DurableContext {
  /** Resolves once connected with the stream in place. */
  ready(): Promise<{ js: JetStreamClient; nc: NatsConnection; stream: string }>
  readonly codec: Codec<unknown>
  readonly stats: BusStats
  makeHeaders(): MsgHdrs
}

/** Checks `connectBus(url, { durable })`; `ERR_INVALID_ARGUMENT` for a bad stream name or no subjects. */
export function checkDurable(durable: DurableOptions): void {
  checkKeys('connectBus durable', durable, ['stream', 'subjects', 'replicas', 'duplicateWindow'])
  if (typeof durable.stream !== 'string' || !/^[A-Za-z0-9_-]+$/.test(durable.stream)) throw new InvalidArgumentError('durable.stream must be a name of letters, digits, - and _')
  if (!Array.isArray(durable.subjects) || durable.subjects.length === 0) throw new InvalidArgumentError('durable.subjects must be a non-empty array of topics or patterns')
}

/** The durable subscriptions of one bus (`messages$` with `from` / `consumer`) and the consumers being stopped. */
export class DurableReaders {
  private readonly readers = new Set<Listener>()
  private readonly stopping = new Set<Promise<void>>()

  constructor(private readonly ctx: DurableContext) {}

  /** Starts reading `pattern` into `deliver`; returns the teardown, which stops the consumer (see {@link stopped}). */
  read(pattern: string, options: DurableReadOptions, deliver: Deliver, listener: Listener): () => void {
    this.readers.add(listener)
    const stop = readDurable(this.ctx, pattern, options, deliver, listener.error)
    return () => {
      this.readers.delete(listener)
      const stopping = stop().catch(() => {})
      this.stopping.add(stopping)
      void stopping.then(() => this.stopping.delete(stopping))
    }
  }

  /** Every reader's listener. */
  listeners(): Listener[] {
    return [...this.readers]
  }

  clear(): void {
    this.readers.clear()
  }

  /** Resolves once every consumer being stopped has stopped. */
  async stopped(): Promise<void> {
    await Promise.all(this.stopping)
  }
}

/** Creates the stream when missing, adds the subjects it lacks; returns the JetStream client. */
export async function ensureStream(mod: JetStreamModule, nc: NatsConnection, durable: DurableOptions): Promise<JetStreamClient> {
  const jsm = await mod.jetstreamManager(nc)
  let info
  try {
    info = await jsm.streams.info(durable.stream)
  } catch {
    info = undefined
  }
  if (info === undefined) {
    await jsm.streams.add({
      name: durable.stream,
      subjects: durable.subjects,
      num_replicas: durable.replicas ?? 1,
      duplicate_window: (durable.duplicateWindow ?? DEFAULT_DUPLICATE_WINDOW) * 1_000_000,
    })
  } else {
    const missing = durable.subjects.filter((s) => !info.config.subjects?.includes(s))
    if (missing.length > 0) await jsm.streams.update(durable.stream, { subjects: [...(info.config.subjects ?? []), ...missing] })
  }
  return mod.jetstream(nc)
}

/** The consumer fields for a start position. */
function startAt(from: DurableStart): { deliver_policy: DeliverPolicy; opt_start_seq?: number; opt_start_time?: string } {
  if (from === 'start') return { deliver_policy: 'all' as DeliverPolicy }
  if (from === 'new') return { deliver_policy: 'new' as DeliverPolicy }
  if (from instanceof Date) {
    if (Number.isNaN(from.getTime())) throw new InvalidArgumentError('messages$: from is an invalid Date')
    return { deliver_policy: 'by_start_time' as DeliverPolicy, opt_start_time: from.toISOString() }
  }
  if (typeof from === 'number' && Number.isSafeInteger(from) && from >= 1) return { deliver_policy: 'by_start_sequence' as DeliverPolicy, opt_start_seq: from }
  throw new InvalidArgumentError(`messages$: from must be 'start', 'new', a stream sequence number (>= 1) or a Date, got ${String(from)}`)
}

/**
 * Reads `pattern` from the durable stream and calls `deliver` for each message, once per sender
 * seq; errors go to `error`. Returns the function that stops reading (its promise settles once
 * the consumer has unsubscribed, even when it was still being set up).
 */
export function readDurable(
  ctx: DurableContext,
  pattern: string,
  options: DurableReadOptions,
  deliver: Deliver,
  error: (e: unknown) => void,
): () => Promise<void> {
  let stopped = false
  let messages: ConsumerMessages | undefined
  const { consumer: name } = options
  // An ordered consumer delivers in stream order without gaps; a durable one may redeliver late.
  const strict = new SenderFilter()
  const windows = new Map<string, SequenceWindow>()
  const fresh = (origin: string, seq: number): Verdict => {
    if (name === undefined) return strict.check(origin, seq)
    const w = windows.get(origin)
    if (w === undefined) {
      windows.set(origin, new SequenceWindow(DURABLE_WINDOW, seq, MAX_SEQ_JUMP))
      return Verdict.NEW
    }
    const verdict = w.check(seq)
    if (verdict === 'implausible') {
      w.refuse(seq)
      return Verdict.IMPLAUSIBLE
    }
    if (verdict !== 'new') return Verdict.DUPLICATE
    w.accept(seq)
    return Verdict.NEW
  }
  const onMessage = (m: JsMsg): void => {
    const { origin, seq } = readMeta(m.headers)
    const verdict = origin === '' ? Verdict.NEW : fresh(origin, seq)
    if (verdict === Verdict.DUPLICATE) ctx.stats.duplicates++
    else if (verdict === Verdict.IMPLAUSIBLE) ctx.stats.implausible++
    else {
      let data: unknown
      let ok = true
      try {
        data = decodeBody(ctx.codec, m.data)
      } catch {
        ok = false
        ctx.stats.undecodable++
      }
      if (ok) {
        ctx.stats.received++
        deliver(m.subject, data, origin, seq)
      }
    }
    if (name !== undefined) m.ack()
  }
  const run = async (): Promise<void> => {
    if (name !== undefined && (typeof name !== 'string' || !/^[A-Za-z0-9_-]+$/.test(name))) throw new InvalidArgumentError('messages$: consumer must be a name of letters, digits, - and _')
    const start = startAt(options.from ?? 'start')
    const { js, nc, stream } = await ctx.ready()
    let consumer
    if (name === undefined) {
      consumer = await js.consumers.get(stream, { filter_subjects: pattern, ...start })
    } else {
      const mod = await loadJetStream()
      const jsm = await mod.jetstreamManager(nc)
      const exists = await jsm.consumers.info(stream, name).then(
        () => true,
        () => false,
      )
      // A push consumer: the server delivers only while someone listens on its deliver subject, so
      // nothing is handed to a subscriber that has gone (a pull request outlives its client on 2.9).
      if (!exists) await jsm.consumers.add(stream, { durable_name: name, filter_subject: pattern, ack_policy: 'explicit' as never, deliver_subject: `_rxnet.deliver.${stream}.${name}`, ...start })
      consumer = await js.consumers.getPushConsumer(stream, name)
    }
    if (stopped) return
    messages = await consumer.consume({ callback: onMessage })
    if (stopped) await messages.close()
  }
  // Bad arguments fail the subscriber; anything else (a JetStream API timeout while a cluster
  // elects leaders, a stream not there yet) is tried again every RETRY_DELAY while subscribed.
  const attempt = async (): Promise<void> => {
    for (;;) {
      try {
        return await run()
      } catch (e) {
        if (stopped) return
        if (e instanceof RxnetError) throw e
        await delay(RETRY_DELAY)
        if (stopped) return
      }
    }
  }
  const running = attempt().catch((e: unknown) => {
    if (!stopped) error(e)
  })
  // Resolves once the consumer is stopped (also when it was still being set up).
  return async () => {
    stopped = true
    if (messages !== undefined) await messages.close()
    await running
  }
}
