/**
 * What a hub needs to come back from a crash without losing messages: its **roster** (every
 * client with an interest, and its patterns), kept in a file beside the socket (`<path>.roster`,
 * mode 0600, replaced atomically). A restarted hub reads it and holds what matches each listed
 * client until that client is back (see `hub.ts`). Pure file handling; no sockets.
 * @module
 */
import fs from 'node:fs'
import { randomBytes } from 'node:crypto'
import { isPipePath } from './listen.js'
import { MAX_ID_LENGTH, MAX_PATTERNS } from './protocol.js'
import { compileTopic, type TopicMatcher } from './topics.js'

/** Most clients a roster file may list (more are ignored). */
export const MAX_ROSTER_CLIENTS = 4096

/** Largest roster file read, in bytes (a larger one is ignored). */
const MAX_ROSTER_BYTES = 64 * 1024 * 1024

/** One client of a roster: its id and its patterns. */
export interface RosterEntry {
  readonly id: string
  readonly echo: boolean
  readonly patterns: Map<string, TopicMatcher>
}

/** The roster file of a hub on `path`, or null where there is none (Windows pipes have no directory). */
export function rosterPath(path: string): string | null {
  return isPipePath(path) ? null : `${path}.roster`
}

/**
 * Reads a roster, or returns [] if there is none or it cannot be trusted: not a regular file,
 * not owned by this user, writable by others, too large, or malformed. Invalid entries are skipped.
 */
export function readRoster(file: string): RosterEntry[] {
  let text: string
  let fd: number | undefined
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0))
    const st = fs.fstatSync(fd)
    const uid = process.getuid?.()
    if (!st.isFile() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0 || st.size > MAX_ROSTER_BYTES) return []
    text = fs.readFileSync(fd, 'utf8')
  } catch {
    return []
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch {
    return []
  }
  const clients = (data as { clients?: unknown } | null)?.clients
  if (!Array.isArray(clients)) return []
  const out: RosterEntry[] = []
  for (const c of clients.slice(0, MAX_ROSTER_CLIENTS)) {
    const { id, echo, patterns } = (c ?? {}) as { id?: unknown; echo?: unknown; patterns?: unknown }
    if (typeof id !== 'string' || id.length === 0 || Buffer.byteLength(id) > MAX_ID_LENGTH || !Array.isArray(patterns)) continue
    const m = new Map<string, TopicMatcher>()
    for (const p of patterns.slice(0, MAX_PATTERNS)) {
      if (typeof p !== 'string') continue
      try {
        m.set(p, compileTopic(p))
      } catch {
        // skipped: not a valid pattern
      }
    }
    if (m.size > 0) out.push({ id, echo: echo === true, patterns: m })
  }
  return out
}

/** Replaces the roster atomically (a fresh 0600 file renamed over the old one). */
export function writeRoster(file: string, clients: Iterable<{ id: string; echo: boolean; patterns: Iterable<string> }>): void {
  const list = [...clients].map(({ id, echo, patterns }) => ({ id, echo, patterns: [...patterns] }))
  const tmp = `${file}.${randomBytes(6).toString('hex')}`
  fs.writeFileSync(tmp, JSON.stringify({ version: 1, clients: list }), { mode: 0o600, flag: 'wx' })
  try {
    fs.renameSync(tmp, file)
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    throw e
  }
}

/** Removes the roster (a hub that closes cleanly leaves none). */
export function removeRoster(file: string): void {
  fs.rmSync(file, { force: true })
}
