/**
 * Argument parsing shared by every CLI subcommand: one parser ({@link parseCommand}) and the flag value
 * checks. Every usage error is an `ERR_INVALID_ARGUMENT` with a one-line reason; `main` prints it as
 * `rxnet <command>: <reason>` and exits 2.
 * @module
 */
import { readFileSync } from 'node:fs'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { InvalidArgumentError } from '../errors.js'
import { closest } from '../options.js'

/** The flags of a subcommand, as `node:util` parseArgs takes them. */
export type FlagSpecs = NonNullable<ParseArgsConfig['options']>

/** What a subcommand accepts; see {@link parseCommand}. */
export interface CommandSpec<O extends FlagSpecs> {
  /** The subcommand (`peers`), for messages. */
  name: string
  /** The text `--help` prints. */
  usage: string
  /** Its flags (`--help` / `-h` is added). */
  options: O
  /** Its positional arguments by name (`<topic>`), in order; the first `required` of them must be given. @default none */
  positionals?: readonly string[]
  /** How many positionals are required. @default all of them */
  required?: number
  /** Flags that are refused with a reason instead of "unknown option" (e.g. one that moved elsewhere). */
  refused?: Readonly<Record<string, string>>
}

type Parsed<O extends FlagSpecs> = ReturnType<typeof parseArgs<{ args: string[]; options: O & { help: { type: 'boolean'; short: 'h' } }; allowPositionals: true; strict: true }>>

/** The parsed command line: typed flag values and positionals. */
export interface ParsedCommand<O extends FlagSpecs> {
  values: Parsed<O>['values']
  positionals: string[]
}

/**
 * Parses a subcommand's arguments. Prints the usage and returns `undefined` for `--help` / `-h` (exit 0);
 * throws `ERR_INVALID_ARGUMENT` with a one-line reason for an unknown flag (naming the closest one), a
 * missing or unwanted flag value, and too few or too many positionals.
 * @example
 * ```ts
 * const parsed = parseCommand({ name: 'tail', usage: HELP, options: { count: { type: 'string' } }, positionals: ['<topic>'] }, args)
 * if (parsed === undefined) return 0 // --help was printed
 * const count = positiveIntFlag('count', parsed.values.count, Infinity)
 * ```
 */
export function parseCommand<O extends FlagSpecs>(spec: CommandSpec<O>, args: string[]): ParsedCommand<O> | undefined {
  const options = { ...spec.options, help: { type: 'boolean', short: 'h' } } as O & { help: { type: 'boolean'; short: 'h' } }
  const { tokens } = parseArgs({ args, options, allowPositionals: true, strict: false, tokens: true })
  const names = spec.positionals ?? []
  const required = spec.required ?? names.length
  // --help wins over everything else on the line (a typo beside it still shows the usage).
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) {
    console.log(spec.usage)
    return undefined
  }
  let positionals = 0
  for (const t of tokens) {
    if (t.kind === 'positional') {
      if (++positionals > names.length) throw new InvalidArgumentError(`unexpected argument "${t.value}"${names.length === 0 ? ' (this command takes none)' : ''}`)
      continue
    }
    if (t.kind !== 'option') continue
    const flag = options[t.name]
    if (flag === undefined) {
      const refused = spec.refused?.[t.name]
      if (refused !== undefined) throw new InvalidArgumentError(`${t.rawName} is not accepted: ${refused}`)
      const near = t.rawName.startsWith('--') ? closest(t.name, Object.keys(options)) : undefined
      throw new InvalidArgumentError(`unknown option ${t.rawName}${near === undefined ? '' : ` (did you mean --${near}?)`}`)
    }
    if (flag.type === 'boolean' && t.value !== undefined) throw new InvalidArgumentError(`${t.rawName} takes no value, got "${t.value}"`)
    if (flag.type === 'string') {
      if (t.value === undefined) throw new InvalidArgumentError(`${t.rawName} needs a value`)
      if (!t.inlineValue && t.value.startsWith('-') && t.value !== '-' && !/^-\d/.test(t.value))
        throw new InvalidArgumentError(`${t.rawName} needs a value, got the option ${t.value} (write ${t.rawName}=${t.value} for a value that starts with -)`)
    }
  }
  if (positionals < required) throw new InvalidArgumentError(`missing ${names[positionals]}`)
  try {
    const { values, positionals: rest } = parseArgs({ args, options, allowPositionals: true, strict: true })
    return { values, positionals: rest }
  } catch (err) {
    // Not reached for what the token walk above checks; a one-line reason without Node's error code otherwise.
    throw new InvalidArgumentError(String((err as Error).message).split('\n')[0]!)
  }
}

/**
 * The value of a `--flag N` option as a positive integer, `fallback` when it was not given;
 * `ERR_INVALID_ARGUMENT` for anything else (`abc`, `0`, `1.5`), so a typo fails at once instead
 * of turning into `NaN`.
 * @example
 * ```ts
 * const count = positiveIntFlag('count', values.count, Infinity)
 * ```
 */
export function positiveIntFlag(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`--${flag} wants a positive integer, got "${value}"`)
  return n
}

/**
 * The value of a `--flag N` option as an integer in `min..max` (digits only), `fallback` when it was not given.
 * @example
 * ```ts
 * const port = intFlag('port', values.port, 8080, 0, 65535)
 * ```
 */
export function intFlag(flag: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`--${flag} wants an integer in ${min}..${max}, got "${value}"`)
  return n
}

/**
 * The value of a `--flag WORD` option that must be one of `choices`, `fallback` when it was not given.
 * @example
 * ```ts
 * const how = choiceFlag('distribution', values.distribution, ['round-robin', 'shared'] as const, 'round-robin')
 * ```
 */
export function choiceFlag<C extends string>(flag: string, value: string | undefined, choices: readonly C[], fallback: C): C {
  if (value === undefined) return fallback
  if (!(choices as readonly string[]).includes(value)) throw new InvalidArgumentError(`--${flag} must be ${choices.join(' or ')}, got "${value}"`)
  return value as C
}

/** The environment variable that holds a secret when `--secret-file` is not given. */
export const SECRET_ENV = 'RXNET_SECRET'

/**
 * A shared secret from `--secret-file F` (the file's content, trimmed), else from the `RXNET_SECRET`
 * environment variable, else `undefined`. Never from the command line itself, where `ps` shows it.
 * An unreadable or empty file is `ERR_INVALID_ARGUMENT`.
 * @example
 * ```ts
 * const secret = readSecret(values['secret-file'])
 * ```
 */
export function readSecret(file: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (file === undefined) return env[SECRET_ENV] || undefined
  let text: string
  try {
    text = readFileSync(file, 'utf8').trim()
  } catch (err) {
    throw new InvalidArgumentError(`cannot read --secret-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  if (text === '') throw new InvalidArgumentError(`--secret-file ${file} is empty`)
  return text
}

/** The reason to give for `--secret KEY`, which the CLI refuses. */
export const SECRET_ON_COMMAND_LINE = `a secret on the command line shows in ps; use --secret-file F or the ${SECRET_ENV} environment variable`

/**
 * Writes one value as a line of JSON on stdout (the `--json` output of `peers` and `tail`: one object per line).
 * @example
 * ```ts
 * printJson({ topic: 'log', data: { line: 'TESTE' } })
 * ```
 */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`)
}

/**
 * Resolves on the first SIGINT or SIGTERM (both listeners removed then): how a long-running
 * subcommand waits to shut down cleanly.
 * @example
 * ```ts
 * await untilSignal()
 * await hub.close()
 * ```
 */
export function untilSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      resolve()
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
}
