import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { defaultBusPath } from 'rxnet'

const saved = process.env.XDG_RUNTIME_DIR
afterEach(() => {
  if (saved === undefined) delete process.env.XDG_RUNTIME_DIR
  else process.env.XDG_RUNTIME_DIR = saved
})

describe.skipIf(process.platform === 'win32')('defaultBusPath', () => {
  it('uses $XDG_RUNTIME_DIR when that directory exists', () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'rxnet-xdg-'))
    try {
      process.env.XDG_RUNTIME_DIR = dir
      expect(defaultBusPath()).toBe(`${dir}/rxnet-bus.sock`)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('falls back to one socket per user in the temp dir', () => {
    delete process.env.XDG_RUNTIME_DIR
    expect(defaultBusPath()).toBe(`${os.tmpdir()}/rxnet-bus-${process.getuid!()}.sock`)
    process.env.XDG_RUNTIME_DIR = join(os.tmpdir(), 'rxnet-no-such-dir')
    expect(defaultBusPath()).toBe(`${os.tmpdir()}/rxnet-bus-${process.getuid!()}.sock`)
  })
})
