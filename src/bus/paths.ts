/**
 * Who can reach a bus socket path. Another local user must never be able to stand in for a hub
 * (a socket of theirs where our clients connect) or reach our hub's socket: every directory from
 * the socket up to `/` must be owned by this user or root and not writable by others unless it is
 * sticky (like `/tmp`, where nobody can remove or rename an entry they do not own), and the socket
 * itself must be a socket owned by this user (a hub never replaces or follows a symbolic link; a
 * client follows only its own or root's).
 * Windows named pipes are not checked here.
 * @module
 */
import fs from 'node:fs'
import os from 'node:os'
import { basename, dirname, join, resolve, sep } from 'node:path'
import { NotASocketError, PathAccessError, PathNotFoundError, UnsafePathError } from '../errors.js'

/**
 * Whether socket paths are checked for who could control them: on POSIX systems. Windows has no
 * uids or mode bits (named pipes, and Unix socket files there, are used as given).
 */
export const CHECKS_PATHS = process.platform !== 'win32'

/** This process's uid (`undefined` on Windows). */
export const myUid = (): number | undefined => process.getuid?.()

/** True when `st` belongs to this process's user or to root. */
export function trustedOwner(st: fs.Stats): boolean {
  return st.uid === myUid() || st.uid === 0
}

const octal = (mode: number): string => `0${(mode & 0o7777).toString(8)}`

/** What a non-socket is, in words, for error messages. */
export function kindOf(st: fs.Stats): string {
  if (st.isFile()) return 'a regular file'
  if (st.isDirectory()) return 'a directory'
  if (st.isSymbolicLink()) return 'a symbolic link'
  if (st.isFIFO()) return 'a FIFO'
  return 'a device or other special file'
}

/** A socket path after {@link resolveSocketPath}. */
export interface ResolvedPath {
  /** The real directory (symlinks resolved) joined with the socket's file name: what to bind / connect. */
  readonly real: string
  /** True when only this user can enter the directory (owned by us, no group / other permission bits). */
  readonly private: boolean
}

/**
 * Resolves the directory of `path` (symlinks included, so that nobody can swap one later) and checks
 * every directory from there up to `/`. Throws `ERR_PATH_NOT_FOUND` when the directory does not
 * exist, `ERR_UNSAFE_PATH` when one is owned by another user or writable by others without the
 * sticky bit, `ERR_PATH_ACCESS` when it cannot be examined.
 */
export function resolveSocketPath(path: string): ResolvedPath {
  const dir = dirname(path)
  checkSymlinks(path, dir)
  let realDir: string
  try {
    realDir = fs.realpathSync(dir)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new PathNotFoundError(path, dir)
    throw new PathAccessError(`cannot examine the directory of ${path}: ${(e as Error).message}`, e)
  }
  let own = false
  for (let d = realDir, first = true; ; d = dirname(d), first = false) {
    let st: fs.Stats
    try {
      st = fs.statSync(d)
    } catch (e) {
      throw new PathAccessError(`cannot examine ${d} (on the way to ${path}): ${(e as Error).message}`, e)
    }
    if (first && !st.isDirectory()) throw new PathNotFoundError(path, dir)
    if (!trustedOwner(st)) throw new UnsafePathError(path, `directory ${d} belongs to uid ${st.uid} (not you, not root), who could replace the socket`)
    if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
      throw new UnsafePathError(path, `directory ${d} (mode ${octal(st.mode)}) is writable by others and not sticky, so anyone could replace the socket`)
    }
    if (first) own = st.uid === myUid() && (st.mode & 0o077) === 0
    if (d === dirname(d)) break
  }
  return { real: join(realDir, basename(path)), private: own }
}

/**
 * Refuses a symbolic link on the way to `dir` that belongs to someone other than this user or root
 * (one planted in a sticky directory could be re-pointed at any time; the kernel's
 * `protected_symlinks` refuses to follow those, and resolving them ourselves must too).
 */
function checkSymlinks(path: string, dir: string): void {
  const parts = resolve(dir).split(sep)
  for (let i = 2; i <= parts.length; i++) {
    const prefix = parts.slice(0, i).join(sep)
    let st: fs.Stats | undefined
    try {
      st = fs.lstatSync(prefix, { throwIfNoEntry: false })
    } catch {
      return // not a directory, no access: reported by the caller
    }
    if (st === undefined) return // missing: reported by the caller
    if (st.isSymbolicLink() && !trustedOwner(st)) throw new UnsafePathError(path, `${prefix} is a symbolic link that belongs to uid ${st.uid}, who could re-point it`)
  }
}

/**
 * `lstat` of an existing socket file at `real`, or `null` when nothing is there. Throws
 * `ERR_UNSAFE_PATH` for a symbolic link or a socket another user (root included) owns, `ERR_NOT_A_SOCKET` for
 * anything else that is not a socket, `ERR_PATH_ACCESS` when it cannot be examined.
 */
export function existingSocket(real: string, shown: string): fs.Stats | null {
  let st: fs.Stats
  try {
    st = fs.lstatSync(real)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw new PathAccessError(`cannot examine ${shown}: ${(e as Error).message}`, e)
  }
  if (st.isSymbolicLink()) throw new UnsafePathError(shown, 'it is a symbolic link (socket paths are never followed)', 'give the real path of the socket')
  if (!st.isSocket()) throw new NotASocketError(shown, kindOf(st))
  // Ours only, not root's either: a hub's socket is 0600, so a socket of anyone else is not a hub we could use.
  if (st.uid !== myUid()) {
    throw new UnsafePathError(shown, `the socket there belongs to uid ${st.uid}, not to you: another user may be trying to intercept the bus`, 'have it removed (by its owner or root), or use a path in a directory only you can write')
  }
  return st
}

/**
 * Checks that `file`, if it exists, is a regular file owned by this user (not a symlink, not
 * another user's): what a hub keeps beside its socket. `ERR_UNSAFE_PATH` otherwise.
 */
export function checkOwnFile(file: string): void {
  if (!CHECKS_PATHS) return
  let st: fs.Stats | undefined
  try {
    st = fs.lstatSync(file, { throwIfNoEntry: false })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') return // its directory is not one: reported where the socket is bound
    throw new PathAccessError(`cannot examine ${file}: ${(e as Error).message}`, e)
  }
  if (st === undefined) return
  const advice = 'have it removed (by its owner or root), or use a path in a directory only you can write'
  if (!st.isFile()) throw new UnsafePathError(file, `it is ${kindOf(st)}, not a regular file of yours`, advice)
  if (st.uid !== myUid()) throw new UnsafePathError(file, `it belongs to uid ${st.uid}: another user may have put it there`, advice)
}

/** True when `a` and `b` are the same file (device and inode). */
export function sameFile(a: fs.Stats, b: fs.Stats): boolean {
  return a.ino === b.ino && a.dev === b.dev
}

/**
 * Creates `dir` with mode 0700 if it is missing and checks it is a real directory (not a
 * symbolic link) owned by this user with no permission for anyone else; `ERR_UNSAFE_PATH`
 * (saying what to do) otherwise. Returns `dir`.
 */
export function privateDirectory(dir: string): string {
  try {
    fs.mkdirSync(dir, { mode: 0o700 })
    fs.chmodSync(dir, 0o700) // whatever the umask
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code !== 'EEXIST') throw new PathAccessError(`cannot create the private directory ${dir}: ${(e as Error).message}`, e)
  }
  const st = fs.lstatSync(dir)
  const advice = `remove it (as its owner or root) or set XDG_RUNTIME_DIR to a directory only you can enter`
  if (st.isSymbolicLink()) throw new UnsafePathError(dir, 'it is a symbolic link, not a private directory', advice)
  if (!st.isDirectory()) throw new UnsafePathError(dir, `it is ${kindOf(st)}, not a private directory`, advice)
  if (st.uid !== myUid()) throw new UnsafePathError(dir, `it belongs to uid ${st.uid}, not to you (uid ${myUid()})`, advice)
  if ((st.mode & 0o077) !== 0) throw new UnsafePathError(dir, `its mode is ${octal(st.mode)}, others may enter it`, `run chmod 700 ${dir}`)
  return dir
}

/** True when `dir` is an existing directory owned by this user with no permission for anyone else. */
export function isPrivateDirectory(dir: string): boolean {
  try {
    const st = fs.lstatSync(dir)
    return st.isDirectory() && st.uid === myUid() && (st.mode & 0o077) === 0
  } catch {
    return false
  }
}

/** The directory of the fallback default bus path: `$TMPDIR/rxnet-<uid>`. */
export function fallbackBusDirectory(): string {
  return join(os.tmpdir(), `rxnet-${myUid() ?? 'user'}`)
}
