/**
 * One connection attempt of a bus client to its hub: check that the socket and its directories
 * cannot be another user's, connect, check it is still the same socket file (nobody swapped it
 * meanwhile). The client (`./client.ts`) retries with backoff on any failure reported here.
 * @module
 */
import fs, { type Stats } from 'node:fs'
import net from 'node:net'
import { ConnectionError, NoHubError, PathAccessError, PathNotFoundError, UnsafePathError, type RxnetError } from '../errors.js'
import { isPipePath } from './listen.js'
import { CHECKS_PATHS, existingSocket, resolveSocketPath, sameFile, trustedOwner } from './paths.js'

/**
 * The real path of the hub socket at `path` (symbolic links of ours or root's followed: the socket
 * they lead to is what gets checked and connected to, so nobody can swap one between the check and
 * the connect),
 * after checking its directories; `ERR_NO_HUB` when nothing is there.
 */
function hubSocket(path: string): string {
  // A symlink someone else planted (in a sticky directory such as /tmp) is not followed: the kernel's
  // protected_symlinks rule, which realpath (lstat + readlink) would otherwise bypass.
  const link = fs.lstatSync(path, { throwIfNoEntry: false })
  if (link?.isSymbolicLink() && !trustedOwner(link)) throw new UnsafePathError(path, `it is a symbolic link that belongs to uid ${link.uid}, not to you or root`)
  let real: string
  try {
    real = fs.realpathSync(path)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new PathAccessError(`cannot examine ${path}: ${(e as Error).message}`, e)
    try {
      resolveSocketPath(path)
    } catch (d) {
      if (d instanceof PathNotFoundError) throw new NoHubError(path, 'its directory does not exist')
      throw d
    }
    throw new NoHubError(path, fs.lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink() ? 'a symbolic link to nothing' : 'no socket there')
  }
  return resolveSocketPath(real).real
}

/** What {@link dialHub} reports to. */
export interface DialHandlers {
  /** The socket is connected and verified (not called once `closed()` says true: the socket is destroyed). */
  connected(socket: net.Socket): void
  /** The attempt failed (`ERR_NO_HUB`, `ERR_UNSAFE_PATH`, `ERR_PATH_ACCESS`, `ERR_CONNECTION`). */
  failed(error: RxnetError): void
  closed(): boolean
}

/**
 * Dials the hub at `path`. Returns the socket while it connects (destroy it to give up), or null
 * when the attempt failed before connecting (`failed` has been called).
 */
export function dialHub(path: string, on: DialHandlers): net.Socket | null {
  let target: string = path
  let before: Stats | null = null
  if (!isPipePath(path) && CHECKS_PATHS) {
    try {
      target = hubSocket(path)
      before = existingSocket(target, path)
    } catch (e) {
      on.failed(e as RxnetError)
      return null
    }
    if (before === null) {
      on.failed(new NoHubError(path))
      return null
    }
  }
  const socket = net.connect(target)
  const onError = (e: NodeJS.ErrnoException): void => {
    socket.off('connect', onConnect)
    socket.destroy()
    const code = e.code
    on.failed(code === 'ENOENT' || code === 'ECONNREFUSED' ? new NoHubError(path, code === 'ENOENT' ? 'no socket there' : 'nothing listens on the socket') : new ConnectionError(`cannot connect to ${path}: ${e.message}`, e))
  }
  const onConnect = (): void => {
    socket.off('error', onError)
    if (on.closed()) {
      socket.destroy()
      return
    }
    if (before !== null) {
      let now: Stats | null = null
      try {
        now = existingSocket(target, path)
      } catch {
        // reported below
      }
      if (now === null || !sameFile(now, before)) {
        socket.destroy()
        on.failed(new UnsafePathError(path, 'the socket was replaced while connecting'))
        return
      }
    }
    on.connected(socket)
  }
  socket.once('error', onError)
  socket.once('connect', onConnect)
  return socket
}
