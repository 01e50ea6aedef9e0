import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { choiceFlag, intFlag, parseCommand, positiveIntFlag, readSecret, SECRET_ON_COMMAND_LINE, type CommandSpec } from '../../src/cli/args.js'
import { main } from '../../src/cli/main.js'
import { root } from './run-script.js'

const spec = {
  name: 'tail',
  usage: 'usage: rxnet tail <topic> [--count N]',
  options: { count: { type: 'string' }, json: { type: 'boolean' }, seed: { type: 'string', multiple: true } },
  positionals: ['<topic>', '<extra>'],
  required: 1,
  refused: { secret: SECRET_ON_COMMAND_LINE },
} satisfies CommandSpec<Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>>

/** The message parseCommand throws for `args`. */
function reason(args: string[]): string {
  try {
    parseCommand(spec, args)
  } catch (err) {
    expect(err).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    return (err as Error).message
  }
  throw new Error(`parseCommand accepted ${JSON.stringify(args)}`)
}

const spies: Array<{ mockRestore(): void }> = []
/** Captures console.log / console.error while `fn` runs. */
async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {})
  const error = vi.spyOn(console, 'error').mockImplementation(() => {})
  spies.push(log, error)
  const code = await fn()
  return { code, out: log.mock.calls.map((c) => c.join(' ')).join('\n'), err: error.mock.calls.map((c) => c.join(' ')).join('\n') }
}
const dirs: string[] = []
afterEach(() => {
  for (const s of spies.splice(0)) s.mockRestore()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('parseCommand', () => {
  it('returns typed values and positionals', () => {
    const parsed = parseCommand(spec, ['log.>', '--count', '3', '--json', '--seed', 'a:1', '--seed=b:2'])
    expect(parsed).toEqual({ values: { count: '3', json: true, seed: ['a:1', 'b:2'] }, positionals: ['log.>'] })
  })

  it('--help / -h prints the usage and returns undefined, even beside other errors', async () => {
    for (const args of [['--help'], ['-h'], ['--bogus', '-h']]) {
      const { out } = await capture(async () => (parseCommand(spec, args) === undefined ? 0 : 1))
      expect(out).toBe(spec.usage)
    }
  })

  it('every usage error is ERR_INVALID_ARGUMENT with a one-line reason, never a raw ERR_PARSE_ARGS_* code', () => {
    const cases: Array<[string[], string]> = [
      [['log', '--bogus'], 'unknown option --bogus'],
      [['log', '--cuont', '3'], 'unknown option --cuont (did you mean --count?)'],
      [['log', '-x'], 'unknown option -x'],
      [['log', '--count'], '--count needs a value'],
      [['log', '--count', '--json'], '--count needs a value, got the option --json (write --count=--json for a value that starts with -)'],
      [['log', '--json=yes'], '--json takes no value, got "yes"'],
      [[], 'missing <topic>'],
      [['a', 'b', 'c'], 'unexpected argument "c"'],
      [['log', '--secret', 'k'], `--secret is not accepted: ${SECRET_ON_COMMAND_LINE}`],
    ]
    for (const [args, message] of cases) {
      const r = reason(args)
      expect(r, JSON.stringify(args)).toBe(message)
      expect(r).not.toMatch(/ERR_PARSE_ARGS|\n/)
    }
  })

  it('a command without positionals says so; "--" ends the options', () => {
    expect(reason.call(null, [])).toBe('missing <topic>')
    const none = { name: 'hub', usage: 'usage', options: {} }
    expect(() => parseCommand(none, ['x'])).toThrow('unexpected argument "x" (this command takes none)')
    expect(parseCommand(spec, ['--', '--count'])?.positionals).toEqual(['--count'])
  })
})

describe('flag values', () => {
  it('positiveIntFlag, intFlag and choiceFlag name the flag and the value given', () => {
    expect(positiveIntFlag('once', undefined, 5)).toBe(5)
    expect(positiveIntFlag('once', '250', 5)).toBe(250)
    for (const bad of ['abc', '0', '-1', '1.5', '']) expect(() => positiveIntFlag('once', bad, 5)).toThrow(`--once wants a positive integer, got "${bad}"`)
    expect(intFlag('port', '0', 8080, 0, 65535)).toBe(0)
    expect(intFlag('port', undefined, 8080, 0, 65535)).toBe(8080)
    for (const bad of ['', '8e3', '65536', ' 1']) expect(() => intFlag('port', bad, 8080, 0, 65535)).toThrow(`--port wants an integer in 0..65535, got "${bad}"`)
    expect(choiceFlag('distribution', 'shared', ['round-robin', 'shared'], 'round-robin')).toBe('shared')
    expect(() => choiceFlag('distribution', 'random', ['round-robin', 'shared'], 'round-robin')).toThrow('--distribution must be round-robin or shared, got "random"')
  })

  it('readSecret: the file (trimmed), else RXNET_SECRET, else none; unreadable or empty files are usage errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rxnet-secret-'))
    dirs.push(dir)
    const file = join(dir, 'key')
    writeFileSync(file, 'from-file\n')
    expect(readSecret(file, { RXNET_SECRET: 'from-env' })).toBe('from-file')
    expect(readSecret(undefined, { RXNET_SECRET: 'from-env' })).toBe('from-env')
    expect(readSecret(undefined, { RXNET_SECRET: '' })).toBeUndefined()
    expect(readSecret(undefined, {})).toBeUndefined()
    expect(() => readSecret(join(dir, 'missing'), {})).toThrow(/cannot read --secret-file .*missing: ENOENT/)
    writeFileSync(file, ' \n')
    expect(() => readSecret(file, {})).toThrow(/--secret-file .* is empty/)
  })
})

describe('rxnet main', () => {
  it('--version / -v prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
    for (const flag of ['--version', '-v']) {
      const r = await capture(() => main([flag]))
      expect(r).toEqual({ code: 0, out: version, err: '' })
    }
  })

  it('no command, an unknown command or an unknown top-level option: exit 2 with the reason', async () => {
    const none = await capture(() => main([]))
    expect(none.code).toBe(2)
    expect(none.err).toContain('usage: rxnet <command> [options]')
    const typo = await capture(() => main(['tial']))
    expect(typo).toMatchObject({ code: 2, err: `rxnet: unknown command "tial" (did you mean tail?); run 'rxnet --help' for the commands` })
    expect((await capture(() => main(['--bogus']))).err).toBe("rxnet: unknown option --bogus; run 'rxnet --help' for the commands")
  })

  it('every subcommand parses with parseCommand: --help exits 0 with its usage, an unknown flag exits 2 with one line', async () => {
    const help = await capture(() => main(['--help']))
    const names = [...help.out.matchAll(/^ {2}(\w+) {2,}/gm)].map((m) => m[1]!)
    expect(names).toEqual(expect.arrayContaining(['demo', 'serve', 'hub', 'tail', 'emit', 'peers']))
    for (const name of names) {
      const usage = await capture(() => main([name, '--help']))
      expect(usage.code, name).toBe(0)
      expect(usage.out, name).toMatch(new RegExp(`^usage: rxnet ${name}\\b`))
      const bad = await capture(() => main([name, '--no-such-flag']))
      expect(bad, name).toEqual({ code: 2, out: '', err: `rxnet ${name}: unknown option --no-such-flag (rxnet ${name} --help for the options)` })
    }
  })

  it("a subcommand's usage error exits 2 with one line: rxnet <command>: <reason>", async () => {
    const r = await capture(() => main(['tail', 'log', '--count', 'abc']))
    expect(r.code).toBe(2)
    expect(r.err).toBe('rxnet tail: --count wants a positive integer, got "abc" (rxnet tail --help for the options)')
  })
})
