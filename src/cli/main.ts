#!/usr/bin/env node
/**
 * The `rxnet` command line. Each subcommand lives in its own file and is loaded on demand.
 * @module
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { isRxnetError } from '../errors.js'
import { closest } from '../options.js'

/** A subcommand: resolves to the process exit code. */
export type Command = (args: string[]) => Promise<number>

const commands: Record<string, { summary: string; load: () => Promise<{ run: Command }> }> = {
  demo: { summary: 'start 3 local processes that join one mesh on loopback and talk', load: () => import('./demo.js') },
  serve: { summary: 'run a script as a supervised cluster on one port, with live worker status', load: () => import('./serve.js') },
  hub: { summary: 'run a bus hub on a Unix socket / named pipe, optionally bridged over multicast', load: () => import('./hub.js') },
  tail: { summary: 'print the bus messages matching a topic pattern, live', load: () => import('./tail.js') },
  emit: { summary: 'publish one JSON value on the bus', load: () => import('./emit.js') },
  peers: { summary: "live table of a mesh's members (id, address, port, RTT, state)", load: () => import('./peers.js') },
  dashboard: { summary: 'live page of a mesh / hub in the browser (topology, RTT, rates, drops) with /metrics, on 127.0.0.1', load: () => import('./dashboard.js') },
}

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((k) => k.length))
  return [
    'usage: rxnet <command> [options]',
    '',
    'commands:',
    ...Object.entries(commands).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`),
    '',
    "run 'rxnet <command> --help' for a command's options, 'rxnet --version' for the version",
  ].join('\n')
}

/** The version in rxnet's package.json (the nearest one above this file: src/cli/ and dist/src/cli/ alike). */
export function version(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json')
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'rxnet' && pkg.version !== undefined) return pkg.version
    }
    if (dirname(dir) === dir) return 'unknown'
  }
}

/**
 * Runs the CLI with `argv` (without node and script); resolves to the exit code. A usage error (an
 * `ERR_INVALID_ARGUMENT` from a subcommand: unknown flag, bad value, missing argument) prints one line,
 * `rxnet <command>: <reason>`, and exits 2.
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === '--help' || name === '-h' || name === 'help') {
    console.log(usage())
    return 0
  }
  if (name === '--version' || name === '-v') {
    console.log(version())
    return 0
  }
  if (name === undefined) {
    console.error(usage())
    return 2
  }
  const command = commands[name]
  if (command === undefined) {
    const near = closest(name, Object.keys(commands))
    const what = name.startsWith('-') ? `unknown option ${name}` : `unknown command "${name}"${near === undefined ? '' : ` (did you mean ${near}?)`}`
    console.error(`rxnet: ${what}; run 'rxnet --help' for the commands`)
    return 2
  }
  const { run } = await command.load()
  try {
    return await run(rest)
  } catch (err) {
    const reason = usageError(err)
    if (reason === undefined) throw err
    console.error(`rxnet ${name}: ${reason} (rxnet ${name} --help for the options)`)
    return 2
  }
}

/** The one-line reason when `err` is a usage error (ours, or node:util parseArgs' ERR_PARSE_ARGS_*, without its code). */
function usageError(err: unknown): string | undefined {
  if (isRxnetError(err, 'ERR_INVALID_ARGUMENT')) return err.message.split('\n')[0]
  const e = err as { code?: unknown; message?: unknown }
  if (typeof e?.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS_')) return String(e.message).split(/\.\s|\n/)[0]
  return undefined
}

/** Whether this module is the process's entry point; through a symlink too (npm's `node_modules/.bin/rxnet`). */
function isEntry(): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href
  } catch {
    return false
  }
}

if (isEntry()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      const e = err as { code?: string; message?: string }
      console.error(`rxnet: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`)
      process.exitCode = 1
    },
  )
}
