/**
 * The `rxnet ...` command lines of the README's and docs/*.md's `sh` blocks run as written.
 *
 * In each `sh` block, every line whose command is `rxnet ...` or `npx rxnet ...` is started in
 * order as `node --import tsx src/cli/main.ts ...` (the bin's entry point, from the sources), each
 * in its own process, the way the text says to run them in several terminals. A line is ready
 * when its process has printed its first line (the hub says "listening", `tail` says "tailing" once
 * its interest is registered, `dashboard` prints its URL) or has exited; a one-shot command must
 * exit 0. `# prints: TEXT` at the end of a line says that process's stdout shows TEXT (an
 * upper-case `PORT` stands for any port number). When the block is done, the long-running
 * processes get SIGTERM, last started first, and must exit 0. Every `/tmp/` becomes a fresh temp
 * dir (so nothing is left in the real /tmp), which must be empty afterwards.
 *
 * Lines of other commands (`npm ...`, `nats-server ...`) are not run here: CI runs `npm ci && npm
 * test` itself. `npx tsx examples/X.ts` lines are checked to name an existing example (the examples
 * run in their own tests).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { docsEnv } from './snippets.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const TMP = /\/tmp\//g // tmp-ok: the prefix rewritten to the block's own dir
const LINE_TIMEOUT = 20_000
const files = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)]

interface Command {
  where: string
  argv: string[]
  prints: string | undefined
}

interface ShBlock {
  where: string
  rxnet: Command[]
  examples: { where: string; file: string }[]
}

/** Splits a shell line into words (single and double quotes, no expansion) and its trailing `# comment`. */
export function shellWords(line: string): { words: string[]; comment: string } {
  const words: string[] = []
  let word: string | null = null
  let quote: "'" | '"' | null = null
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quote !== null) {
      if (c === quote) quote = null
      else word += c
    } else if (c === "'" || c === '"') {
      quote = c
      word ??= ''
    } else if (c === '#' && word === null) {
      return { words, comment: line.slice(i + 1).trim() }
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word)
      word = null
    } else word = (word ?? '') + c
  }
  if (quote !== null) throw new Error(`unclosed ${quote} in: ${line}`)
  if (word !== null) words.push(word)
  return { words, comment: '' }
}

function shBlocks(file: string): ShBlock[] {
  const lines = readFileSync(join(root, file), 'utf8').split('\n')
  const out: ShBlock[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!)
    if (open === null) continue
    let end = i + 1
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++
    if (open[1] === 'sh') {
      const block: ShBlock = { where: `${file}:${i + 1}`, rxnet: [], examples: [] }
      for (let j = i + 1; j < end; j++) {
        const where = `${file}:${j + 1}`
        const { words, comment } = shellWords(lines[j]!)
        const prints = /^prints: (.*)$/.exec(comment)?.[1]
        if (words[0] === 'rxnet') block.rxnet.push({ where, argv: words.slice(1), prints })
        else if (words[0] === 'npx' && words[1] === 'rxnet') block.rxnet.push({ where, argv: words.slice(2), prints })
        else if (words[0] === 'npx' && words[1] === 'tsx' && words[2]?.startsWith('examples/')) block.examples.push({ where, file: words[2] })
      }
      out.push(block)
    }
    i = end
  }
  return out
}

const blocks = files.flatMap(shBlocks)
const running: ChildProcess[] = []
const dirs: string[] = []

afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

interface Proc {
  child: ChildProcess
  stdout: string
  stderr: string
  exited: Promise<number | NodeJS.Signals | null>
}

function start(command: Command, dir: string): Proc {
  const env = docsEnv(dir)
  const argv = command.argv.map((a) => a.replace(TMP, `${dir}/`))
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/cli/main.ts'), ...argv], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  running.push(child)
  const p: Proc = { child, stdout: '', stderr: '', exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal))) }
  child.stdout!.on('data', (d: Buffer) => (p.stdout += d))
  child.stderr!.on('data', (d: Buffer) => (p.stderr += d))
  return p
}

/** Resolves once `test` holds for `p` (checked on each output and at exit); rejects after `ms` with what it printed. */
function until(p: Proc, what: string, test: () => boolean, ms = LINE_TIMEOUT): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!test()) return
      done()
      resolve()
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`${what}: not within ${ms} ms\nstdout: ${p.stdout}\nstderr: ${p.stderr}`))
    }, ms)
    const done = (): void => {
      clearTimeout(timer)
      p.child.stdout!.off('data', later)
      p.child.stderr!.off('data', later)
      p.child.off('exit', later)
    }
    const later = (): void => void setImmediate(check) // after the data handlers above appended the chunk
    p.child.stdout!.on('data', later)
    p.child.stderr!.on('data', later)
    p.child.on('exit', later)
    check()
  })
}

const printsPattern = (text: string): RegExp => new RegExp(text.split('PORT').map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('\\d+'))
const ended = (p: Proc): boolean => p.child.exitCode !== null || p.child.signalCode !== null

describe('sh blocks: the rxnet command lines run as written', () => {
  it('there are command lines to run (the CLI tour is in the README)', () => {
    expect(blocks.filter((b) => b.where.startsWith('README.md')).flatMap((b) => b.rxnet).length).toBeGreaterThanOrEqual(3)
  })

  for (const block of blocks.filter((b) => b.examples.length > 0)) {
    it(`${block.where}: the examples it names exist`, () => {
      for (const e of block.examples) expect(existsSync(join(root, e.file)), `${e.where}: ${e.file}`).toBe(true)
    })
  }

  for (const block of blocks.filter((b) => b.rxnet.length > 0)) {
    it(`${block.where}: ${block.rxnet.map((c) => `rxnet ${c.argv[0]}`).join(', ')}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'rxnet-sh-'))
      dirs.push(dir)
      const procs: { command: Command; p: Proc }[] = []
      for (const command of block.rxnet) {
        const p = start(command, dir)
        procs.push({ command, p })
        await until(p, `${command.where} ready`, () => ended(p) || /\n/.test(p.stdout + p.stderr))
        if (ended(p)) expect(await p.exited, `${command.where} exit code (stderr: ${p.stderr})`).toBe(0)
      }
      for (const { command, p } of procs) {
        if (command.prints !== undefined) {
          const pattern = printsPattern(command.prints)
          await until(p, `${command.where} prints "${command.prints}"`, () => pattern.test(p.stdout))
        }
      }
      for (const { command, p } of procs.reverse()) {
        if (!ended(p)) p.child.kill('SIGTERM')
        expect(await p.exited, `${command.where} exit code after SIGTERM (stderr: ${p.stderr})`).toBe(0)
      }
      expect(readdirSync(dir).filter((f) => !f.startsWith('tsx-'))).toEqual([]) // tsx-<uid>: tsx's compile cache (the bin runs from the sources here)
    }, 60_000)
  }
})
