/**
 * Binding a hub's Unix socket / Windows named pipe: path checks, stale-socket recovery, a socket
 * nobody else can reach at any instant, the default path.
 * @module
 */
import fs from 'node:fs'
import net from 'node:net'
import { dirname, join } from 'node:path'
import { AbortError, ConnectionError, InvalidArgumentError, PathAccessError, PathInUseError, PathNotFoundError, PathTooLongError } from '../errors.js'
import { CHECKS_PATHS, existingSocket, fallbackBusDirectory, isPrivateDirectory, privateDirectory, resolveSocketPath, sameFile } from './paths.js'

/**
 * Longest Unix socket path in bytes: `sun_path` minus the terminating NUL (108 - 1 on Linux, 104 - 1 on macOS / BSD).
 * @example
 * ```ts
 * if (Buffer.byteLength(path) > MAX_SOCKET_PATH) path = `${os.tmpdir()}/app.sock`
 * ```
 */
export const MAX_SOCKET_PATH = process.platform === 'linux' ? 107 : 103

/** True for a Windows named pipe path (`\\?\pipe\name` or `\\.\pipe\name`), accepted as is. */
export function isPipePath(path: string): boolean {
  return /^[\\/]{2}[?.][\\/]pipe[\\/]/i.test(path)
}

/** Throws `ERR_INVALID_ARGUMENT` / `ERR_PATH_TOO_LONG` for a path a hub cannot listen on. */
export function checkSocketPath(path: string): void {
  if (typeof path !== 'string' || path.length === 0) throw new InvalidArgumentError('path must be a non-empty string')
  if (path.includes('\0')) throw new InvalidArgumentError('path must not contain NUL')
  if (!isPipePath(path) && Buffer.byteLength(path) > MAX_SOCKET_PATH) throw new PathTooLongError(path, MAX_SOCKET_PATH)
}

function listenOnce(server: net.Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => {
      server.off('listening', onListening)
      reject(e)
    }
    const onListening = (): void => {
      server.off('error', onError)
      resolve()
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen(path)
  })
}

function unlisten(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()))
}

/**
 * Whether a live server answers on the socket `path`: true when it accepts, or refuses us for
 * lack of permission (alive, not ours to replace); false when nobody listens (stale).
 */
function probe(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path)
    const done = (live: boolean): void => {
      s.off('connect', onConnect)
      s.off('error', onError)
      s.on('error', () => {})
      s.destroy()
      resolve(live)
    }
    const onConnect = (): void => done(true)
    const onError = (e: NodeJS.ErrnoException): void => done(e.code === 'EACCES' || e.code === 'EPERM')
    s.once('connect', onConnect)
    s.once('error', onError)
  })
}

/** A system error while creating the socket at `shown`, as a typed error. */
function bindError(shown: string, dir: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new PathAccessError(`cannot create ${shown}: no permission to write in ${dir} (${code})`, e)
  if (code === 'ENOENT' || code === 'ENOTDIR') return new PathNotFoundError(shown, dir)
  return new ConnectionError(`cannot listen on ${shown}: ${(e as Error).message}`, e)
}

/** Removes the stale socket `real` we checked (ours or root's, nobody answering); typed on failure. */
function removeStale(real: string, shown: string): void {
  try {
    fs.unlinkSync(real)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new PathAccessError(`cannot remove the stale socket ${shown}: ${(e as Error).message}`, e)
  }
}

/** Set when `link()` found the path taken (someone bound it meanwhile): check it again. */
const TAKEN = Symbol('taken')

/**
 * Binds `server` to `real` without the socket ever being reachable by anyone else: it is bound
 * inside a fresh 0700 directory next to `real` (the umask does not matter), made 0600, then
 * hard-linked into place (`link` never replaces an existing file) and its temporary name removed.
 */
async function bindPrivately(server: net.Server, real: string, shown: string): Promise<void | typeof TAKEN> {
  const dir = dirname(real)
  let tmp: string
  try {
    tmp = fs.mkdtempSync(join(dir, '.rx')) // mode 0700
  } catch (e) {
    throw bindError(shown, dir, e)
  }
  const inner = join(tmp, 's')
  try {
    try {
      await listenOnce(server, inner)
    } catch (e) {
      throw bindError(shown, dir, e)
    }
    try {
      fs.chmodSync(inner, 0o600)
      fs.linkSync(inner, real)
    } catch (e) {
      await unlisten(server)
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return TAKEN
      throw bindError(shown, dir, e)
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

/** Binds `server` to `real` directly (only for a directory nobody else can enter), then makes it 0600. */
async function bindDirectly(server: net.Server, real: string, shown: string): Promise<void | typeof TAKEN> {
  try {
    await listenOnce(server, real)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') return TAKEN
    throw bindError(shown, dirname(real), e)
  }
  fs.chmodSync(real, 0o600)
}

/** Extra bytes of the temporary bind path over the directory: `/.rxXXXXXX/s`. */
const PRIVATE_BIND_OVERHEAD = 12

/**
 * Listens on `path`, which nobody else can reach at any instant.
 *
 * Unix sockets: the directory is checked first (`resolveSocketPath`: owned by us or root, not
 * writable by others unless sticky; `ERR_UNSAFE_PATH` / `ERR_PATH_NOT_FOUND`). What is already at
 * the path: nothing, fine; a socket of ours or root's nobody answers on (a crashed hub's leftover)
 * is removed and replaced; one a live server answers on is `ERR_PATH_IN_USE`; another user's
 * socket or a symbolic link is `ERR_UNSAFE_PATH`; anything else is `ERR_NOT_A_SOCKET` (never
 * deleted). No permission to create or remove is `ERR_PATH_ACCESS`. The socket is bound in a
 * private directory and linked into place with mode 0600 (see {@link bindPrivately}); when the
 * server closes, the socket file is removed if it is still ours.
 */
export async function listenOnPath(server: net.Server, path: string, signal?: AbortSignal): Promise<void> {
  checkSocketPath(path)
  if (isPipePath(path) || !CHECKS_PATHS) {
    try {
      await listenOnce(server, path)
      return
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new PathInUseError(path)
      throw new ConnectionError(`cannot listen on ${path}: ${(e as Error).message}`, e)
    }
  }
  const { real, private: own } = resolveSocketPath(path)
  const direct = Buffer.byteLength(dirname(real)) + PRIVATE_BIND_OVERHEAD > MAX_SOCKET_PATH
  if (Buffer.byteLength(real) > MAX_SOCKET_PATH) throw new PathTooLongError(real, MAX_SOCKET_PATH)
  if (direct && !own) {
    throw new PathTooLongError(`${dirname(real)}/.rxXXXXXX/s (the private name ${path} is first bound under, in a directory others can enter)`, MAX_SOCKET_PATH)
  }
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw new AbortError(signal.reason)
    const existing = existingSocket(real, path)
    if (existing !== null) {
      if (await probe(real)) throw new PathInUseError(path)
      removeStale(real, path)
    }
    const r = direct ? await bindDirectly(server, real, path) : await bindPrivately(server, real, path)
    if (r !== TAKEN) break
    if (attempt >= 2) throw new PathInUseError(path)
  }
  const bound = fs.lstatSync(real)
  server.once('close', () => {
    // Remove the socket only if it is still ours: a successor hub may have replaced a stale one.
    try {
      if (sameFile(fs.lstatSync(real), bound)) fs.unlinkSync(real)
    } catch {
      // already gone
    }
  })
}

/**
 * The hub path used when none is given: `$XDG_RUNTIME_DIR/rxnet-bus.sock` when that directory
 * exists and only this user can enter it, else `$TMPDIR/rxnet-<uid>/bus.sock`, in a directory
 * this call creates with mode 0700 if it is missing (`ERR_UNSAFE_PATH` if it exists with another
 * owner, a looser mode, or as a symbolic link), or `\\?\pipe\rxnet-bus` on Windows.
 * @example
 * ```ts
 * import { connectBus, defaultBusPath } from 'rxnet'
 * const bus = connectBus(defaultBusPath())
 * ```
 */
export function defaultBusPath(): string {
  if (process.platform === 'win32') return '\\\\?\\pipe\\rxnet-bus'
  const runtime = process.env.XDG_RUNTIME_DIR
  if (runtime !== undefined && runtime !== '' && isPrivateDirectory(runtime)) return `${runtime}/rxnet-bus.sock`
  return `${privateDirectory(fallbackBusDirectory())}/bus.sock`
}

/** How the CLI help describes the default path (without creating anything). */
export const DEFAULT_BUS_PATH_HELP = '$XDG_RUNTIME_DIR/rxnet-bus.sock, else $TMPDIR/rxnet-<uid>/bus.sock'
