/**
 * What a hub needs to come back from a crash without losing messages: its **roster** (every
 * client with an interest, and its patterns), kept in a file beside the socket (`<path>.roster`,
 * mode 0600, replaced atomically). A restarted hub reads it and holds what matches each listed
 * client until that client is back (see `hub.ts`). Pure file handling; no sockets.
 * @module
 */
import fs from 'node:fs'
import { randomBytes } from 'node:crypto'
import { PathAccessError, RxnetError } from '../errors.js'
import { isPipePath } from './listen.js'
import { checkOwnFile } from './paths.js'
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

/**
 * Replaces the roster atomically (a fresh 0600 file renamed over the old one). Throws
 * `ERR_UNSAFE_PATH` when the roster there is not a regular file of ours (another user may have
 * put it there first, in a shared directory), `ERR_PATH_ACCESS` when it cannot be written.
 */
export function writeRoster(file: string, clients: Iterable<{ id: string; echo: boolean; patterns: Iterable<string> }>): void {
  checkOwnFile(file)
  const list = [...clients].map(({ id, echo, patterns }) => ({ id, echo, patterns: [...patterns] }))
  const tmp = `${file}.${randomBytes(6).toString('hex')}`
  try {
    fs.writeFileSync(tmp, JSON.stringify({ version: 1, clients: list }), { mode: 0o600, flag: 'wx' })
    fs.renameSync(tmp, file)
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    throw new PathAccessError(`cannot write the hub roster ${file}: ${(e as Error).message}`, e)
  }
}

/**
 * Removes the roster (a hub that closes cleanly leaves none), if it is a regular file of ours;
 * returns what went wrong (typed) instead of throwing, `null` when it is gone.
 */
export function removeRoster(file: string): RxnetError | null {
  try {
    if (fs.lstatSync(file, { throwIfNoEntry: false }) === undefined) return null
    checkOwnFile(file)
    fs.unlinkSync(file)
    return null
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
    return e instanceof RxnetError ? e : new PathAccessError(`cannot remove the hub roster ${file}: ${(e as Error).message}`, e)
  }
}

/**
 * A client listed in the roster a crashed hub left, not reconnected yet: what matches its
 * patterns is held for it (bounded) until it is back or the recovery time is up.
 */
export interface Ghost {
  readonly id: string
  readonly echo: boolean
  readonly patterns: Map<string, TopicMatcher>
  readonly held: { msg: Uint8Array; origin: string }[]
  heldBytes: number
  /** Messages it could not hold, per origin. */
  readonly lost: Map<string, number>
}

/** The clients a restarted hub waits for, and what it holds for them; losses are reported through `onLost`. */
export class Ghosts {
  /** Ghosts not back yet, by client id. */
  readonly waiting = new Map<string, Ghost>()
  /** Losses to tell a client when it comes back after its ghost was given up. */
  private readonly lostFor = new Map<string, Map<string, number>>()
  private timer: NodeJS.Timeout | null = null

  /**
   * @param maxHeld - bytes held per ghost (its `clientHighWaterMark`); more is lost, counted.
   * @param onLost - told of every loss once it is final: `count` messages from `origin` for `client`.
   */
  constructor(
    private readonly maxHeld: number,
    private readonly onLost: (client: string, origin: string, count: number) => void,
  ) {}

  /** Waits for every client of the roster in `file`, for `timeout` ms, then calls `onTimeout` (after giving them up). */
  load(file: string, timeout: number, onTimeout: () => void): void {
    for (const c of readRoster(file)) this.waiting.set(c.id, { ...c, held: [], heldBytes: 0, lost: new Map() })
    if (this.waiting.size === 0) return
    this.timer = setTimeout(() => {
      this.timer = null
      this.giveUp()
      onTimeout()
    }, timeout)
  }

  /** Holds `msg` for every ghost whose patterns match `topic` (not its own messages unless it asked for echoes). */
  hold(topic: string, msg: Uint8Array, origin: string): void {
    for (const g of this.waiting.values()) {
      if (g.id === origin && !g.echo) continue
      for (const m of g.patterns.values()) {
        if (!m.matches(topic)) continue
        if (g.heldBytes + msg.length > this.maxHeld) {
          g.lost.set(origin, (g.lost.get(origin) ?? 0) + 1)
        } else {
          g.held.push({ msg, origin })
          g.heldBytes += msg.length
        }
        break
      }
    }
  }

  /**
   * Client `id` is back: its ghost (if it had one; its held messages to send it, its losses now
   * final) and what it lost after an earlier give-up, to tell it.
   */
  take(id: string): { ghost: Ghost | undefined; lost: Map<string, number>[] } {
    const lost: Map<string, number>[] = []
    const ghost = this.waiting.get(id)
    if (ghost !== undefined) {
      this.waiting.delete(id)
      this.report(ghost)
      lost.push(ghost.lost)
      if (this.waiting.size === 0) this.stop()
    }
    const late = this.lostFor.get(id)
    if (late !== undefined) {
      this.lostFor.delete(id)
      lost.push(late)
    }
    return { ghost, lost }
  }

  /** Gives up every ghost still waiting: what each holds is lost (reported now, and to it if it comes back). */
  giveUp(): void {
    this.stop()
    for (const g of this.waiting.values()) {
      for (const h of g.held) g.lost.set(h.origin, (g.lost.get(h.origin) ?? 0) + 1)
      this.report(g)
      if (g.lost.size === 0) continue
      if (this.lostFor.size >= 10_000) this.lostFor.delete(this.lostFor.keys().next().value!)
      this.lostFor.set(g.id, g.lost)
    }
    this.waiting.clear()
  }

  /** Roster entries of the ghosts (their interests must survive another crash too). */
  entries(): { id: string; echo: boolean; patterns: Iterable<string> }[] {
    return [...this.waiting.values()].map((g) => ({ id: g.id, echo: g.echo, patterns: g.patterns.keys() }))
  }

  private report(g: Ghost): void {
    for (const [origin, count] of g.lost) this.onLost(g.id, origin, count)
  }

  private stop(): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
  }
}
