import { describe, expect, it } from 'vitest'
import { SequenceWindow } from '../../src/multicast/window.js'
import { MAX_SEQ_JUMP } from '../../src/bus/inbox.js'

describe('SequenceWindow with a jump bound (the bus dedupe window)', () => {
  it('refuses a seq more than maxJump ahead instead of advancing to it, and keeps following the real sender', () => {
    const w = new SequenceWindow(64, 10, 1000)
    expect(w.check(1010)).toBe('new') // exactly maxJump ahead is plausible
    expect(w.check(1011)).toBe('implausible')
    w.refuse(1011)
    expect(w.implausible).toBe(1)
    expect(w.highest).toBe(10) // not moved
    expect(w.check(11)).toBe('new')
    w.accept(11)
    expect(w.gaps).toBe(0)
  })

  it('a second jump within maxJump of the first confirms it: the window re-anchors there', () => {
    const w = new SequenceWindow(64, 10, 1000)
    w.refuse(5000)
    expect(w.check(5001)).toBe('new')
    w.accept(5001)
    expect(w.resyncs).toBe(1)
    expect(w.highest).toBe(5001)
    expect(w.gaps).toBe(0) // the skipped span is not a loss we know of
    expect(w.check(5000)).toBe('new') // the refused one is still deliverable if it comes again
    expect(w.check(5001)).toBe('duplicate')
  })

  it('two forged jumps cost the real sender one message (counted), then it is followed again', () => {
    const w = new SequenceWindow(64, 100, MAX_SEQ_JUMP)
    for (const forged of [100 + 2 ** 31 - 64, 100 + 2 ** 31 - 63]) {
      const v = w.check(forged)
      if (v === 'implausible') w.refuse(forged)
      else w.accept(forged)
    }
    expect(w.resyncs).toBe(1) // the forger re-anchored the window ...
    expect(w.check(101)).toBe('implausible') // ... so the real sender's next one is refused (counted) ...
    w.refuse(101)
    expect(w.check(102)).toBe('new') // ... and its one after that re-anchors on the real sender
    w.accept(102)
    expect(w.highest).toBe(102)
    expect(w.implausible).toBe(2)
  })

  it('without a bound (the multicast channel) any seq ahead moves the window, as before', () => {
    const w = new SequenceWindow(64, 10)
    expect(w.check(10 + 2 ** 31 - 1)).toBe('new')
    w.accept(10 + 2 ** 31 - 1)
    expect(w.check(11)).toBe('stale')
  })
})
