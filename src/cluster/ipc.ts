/**
 * Cluster IPC (the `process.send` channel node:cluster opens between primary and each worker):
 * the internal control messages rxnet exchanges on it, and user messages as an Observable.
 * @module
 */
import { Observable } from 'rxjs'
import type { IpcMessage } from './types.js'

/** Tag of rxnet's own control messages; user messages never carry it. */
export const TAG = '__rxnet_cluster'

/** A link server announced by one process. */
export interface RosterEntry {
  id: number
  pid: number
  path: string
}

/** Control messages between primary and workers. */
export type Control =
  | { [TAG]: 'links'; id: number; pid: number; path: string }
  | { [TAG]: 'roster'; peers: RosterEntry[] }
  | { [TAG]: 'serve'; key: string; distribution: 'round-robin' | 'shared' }
  | { [TAG]: 'handle'; key: string }
  | { [TAG]: 'rr'; key: string; sockname: import('node:net').AddressInfo | null }
  | { [TAG]: 'conn'; key: string; seq: number }
  | { [TAG]: 'conn-ack'; key: string; seq: number; accepted: boolean }
  | { [TAG]: 'serving'; key: string; address: import('node:net').AddressInfo | string | null }
  | { [TAG]: 'shutdown' }
  | { [TAG]: 'reload' }
  | { [TAG]: 'user'; to: number; from: number; data: unknown }

/** True when `m` is one of rxnet's control messages. */
export function isControl(m: unknown): m is Control {
  return typeof m === 'object' && m !== null && TAG in m
}

/** Something that emits `message` events with (message, handle), like `process` or a cluster `Worker`. */
export interface MessageEmitter {
  on(event: 'message', listener: (message: unknown, handle?: unknown) => void): unknown
  off(event: 'message', listener: (message: unknown, handle?: unknown) => void): unknown
}

/**
 * User messages arriving on `emitter` (rxnet's control messages filtered out; worker-to-worker
 * messages relayed by the primary keep their sender), tagged with the sender id. Cold: listens on subscribe, stops listening on unsubscribe.
 */
export function ipcMessages(emitter: MessageEmitter, from: number, self: number): Observable<IpcMessage> {
  return new Observable<IpcMessage>((subscriber) => {
    const onMessage = (message: unknown): void => {
      if (!isControl(message)) subscriber.next({ from, data: message })
      else if (message[TAG] === 'user' && message.to === self) subscriber.next({ from: message.from, data: message.data })
    }
    emitter.on('message', onMessage)
    return () => emitter.off('message', onMessage)
  })
}

/** Control messages of one kind arriving on `emitter`, with their handle. Cold. */
export function controlMessages<K extends Control[typeof TAG]>(emitter: MessageEmitter, kind: K): Observable<[Extract<Control, { [TAG]: K }>, unknown]> {
  return new Observable((subscriber) => {
    const onMessage = (message: unknown, handle?: unknown): void => {
      if (isControl(message) && message[TAG] === kind) subscriber.next([message as Extract<Control, { [TAG]: K }>, handle])
    }
    emitter.on('message', onMessage)
    return () => emitter.off('message', onMessage)
  })
}
