/**
 * Binding a hub's Unix socket / Windows named pipe: path checks, stale-socket recovery, 0600.
 * @module
 */
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import { AbortError, ConnectionError, InvalidArgumentError, PathInUseError, PathTooLongError } from '../errors.js'

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

/** Resolves true when something accepts a connection on `path`, false when nobody answers. */
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
    const onError = (): void => done(false)
    s.once('connect', onConnect)
    s.once('error', onError)
  })
}

/**
 * Listens on `path`. A Unix socket file nobody answers on (a crashed hub's leftover) is removed
 * and replaced; a path a live server answers on is refused with `ERR_PATH_IN_USE`; any other
 * failure (missing directory, no permission) is `ERR_CONNECTION` with the system error as `cause`.
 * The socket file is made owner-only (0600).
 */
export async function listenOnPath(server: net.Server, path: string, signal?: AbortSignal): Promise<void> {
  checkSocketPath(path)
  const pipe = isPipePath(path)
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw new AbortError(signal.reason)
    try {
      await listenOnce(server, path)
      break
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code !== 'EADDRINUSE' || pipe || attempt >= 2) {
        if (code === 'EADDRINUSE') throw new PathInUseError(path)
        throw new ConnectionError(`cannot listen on ${path}: ${(e as Error).message}`, e)
      }
      if (await probe(path)) throw new PathInUseError(path)
      // Stale: nobody answers. Replace it, but only if it is a socket (never delete a regular file).
      let st: fs.Stats
      try {
        st = fs.lstatSync(path)
      } catch {
        continue
      }
      if (!st.isSocket()) throw new PathInUseError(path)
      try {
        fs.unlinkSync(path)
      } catch (u) {
        if ((u as NodeJS.ErrnoException).code !== 'ENOENT') throw u
      }
    }
  }
  if (!pipe) fs.chmodSync(path, 0o600)
}

/**
 * The hub path the CLI uses when none is given: `$XDG_RUNTIME_DIR/rxnet-bus.sock` (a directory only
 * this user can enter) when that is set, else `$TMPDIR/rxnet-bus-<uid>.sock` (one default hub per
 * user), or `\\?\pipe\rxnet-bus` on Windows.
 * @example
 * ```ts
 * import { connectBus, defaultBusPath } from 'rxnet'
 * const bus = connectBus(defaultBusPath())
 * ```
 */
export function defaultBusPath(): string {
  if (process.platform === 'win32') return '\\\\?\\pipe\\rxnet-bus'
  const runtime = process.env.XDG_RUNTIME_DIR
  if (runtime !== undefined && runtime !== '' && fs.existsSync(runtime)) return `${runtime}/rxnet-bus.sock`
  return `${os.tmpdir()}/rxnet-bus-${process.getuid?.() ?? 'user'}.sock`
}
