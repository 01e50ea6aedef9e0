// defaultBusPath(): $XDG_RUNTIME_DIR when it is private to the user, else a private 0700
// directory under $TMPDIR that it creates, and refuses when that exists with another owner, a
// looser mode, or as a symlink (another user could otherwise stand in for the default hub).
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { defaultBusPath } from 'rxnet'

const saved = { xdg: process.env.XDG_RUNTIME_DIR, tmp: process.env.TMPDIR }
let base: string
beforeEach(() => {
  base = mkdtempSync(join(os.tmpdir(), 'rxnet-defpath-'))
  process.env.TMPDIR = base // os.tmpdir() reads it on every call: nothing is created in the real temp dir
  delete process.env.XDG_RUNTIME_DIR
})
afterEach(() => {
  for (const [k, v] of [['XDG_RUNTIME_DIR', saved.xdg], ['TMPDIR', saved.tmp]] as const) {
    if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
  rmSync(base, { recursive: true, force: true })
})
const uid = process.getuid?.() ?? -1
const fallback = (): string => join(base, `rxnet-${uid}`)

describe.skipIf(process.platform === 'win32')('defaultBusPath', () => {
  it('uses $XDG_RUNTIME_DIR when only this user can enter it, else the private fallback', () => {
    const xdg = join(base, 'xdg')
    mkdirSync(xdg, { mode: 0o700 })
    process.env.XDG_RUNTIME_DIR = xdg
    expect(defaultBusPath()).toBe(`${xdg}/rxnet-bus.sock`)
    chmodSync(xdg, 0o755) // others may enter: not a runtime dir per the XDG spec
    expect(defaultBusPath()).toBe(`${fallback()}/bus.sock`)
    process.env.XDG_RUNTIME_DIR = join(base, 'no-such-dir')
    expect(defaultBusPath()).toBe(`${fallback()}/bus.sock`)
  })

  it('creates the fallback directory with mode 0700 owned by the user (whatever the umask), and reuses it', () => {
    const old = process.umask(0)
    try {
      expect(defaultBusPath()).toBe(`${fallback()}/bus.sock`)
    } finally {
      process.umask(old)
    }
    const st = lstatSync(fallback())
    expect(st.isDirectory()).toBe(true)
    expect(st.uid).toBe(uid)
    expect((st.mode & 0o777).toString(8)).toBe('700')
    expect(defaultBusPath()).toBe(`${fallback()}/bus.sock`)
    // It was `$TMPDIR/rxnet-bus-<uid>.sock`, right in the shared temp dir.
    expect(defaultBusPath().startsWith(`${base}/rxnet-bus-`)).toBe(false)
  })

  it('refuses a fallback directory others may enter, a symlink, or a file: ERR_UNSAFE_PATH saying what to do', () => {
    mkdirSync(fallback(), { mode: 0o755 })
    chmodSync(fallback(), 0o755)
    expect(() => defaultBusPath()).toThrow(expect.objectContaining({ code: 'ERR_UNSAFE_PATH', message: expect.stringContaining('chmod 700') }))
    rmSync(fallback(), { recursive: true })
    const elsewhere = mkdtempSync(join(base, 'elsewhere-'))
    symlinkSync(elsewhere, fallback())
    expect(() => defaultBusPath()).toThrow(expect.objectContaining({ code: 'ERR_UNSAFE_PATH', message: expect.stringContaining('symbolic link') }))
  })

  it.skipIf(uid !== 0)('refuses a fallback directory another user created first (chowned to nobody)', () => {
    mkdirSync(fallback(), { mode: 0o700 })
    chownSync(fallback(), 65534, 65534)
    expect(() => defaultBusPath()).toThrow(expect.objectContaining({ code: 'ERR_UNSAFE_PATH', message: expect.stringContaining('uid 65534') }))
  })
})
