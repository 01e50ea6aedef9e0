#!/usr/bin/env node
/**
 * The `rxnet` command line. Each subcommand lives in its own file and is loaded on demand.
 * @module
 */
import { realpathSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

/** A subcommand: resolves to the process exit code. */
export type Command = (args: string[]) => Promise<number>

const commands: Record<string, { summary: string; load: () => Promise<{ run: Command }> }> = {
  demo: { summary: 'start 3 local processes that join one mesh on loopback and talk', load: () => import('./demo.js') },
  serve: { summary: 'run a script as a supervised cluster on one port, with live worker status', load: () => import('./serve.js') },
  hub: { summary: 'run a bus hub on a Unix socket / named pipe, optionally bridged over multicast', load: () => import('./hub.js') },
  tail: { summary: 'print the bus messages matching a topic pattern, live', load: () => import('./tail.js') },
  emit: { summary: 'publish one JSON value on the bus', load: () => import('./emit.js') },
  peers: { summary: "live table of a mesh's members (id, address, port, RTT, state)", load: () => import('./peers.js') },
}

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((k) => k.length))
  return ['usage: rxnet <command> [options]', '', 'commands:', ...Object.entries(commands).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`), '', "run 'rxnet <command> --help' for a command's options"].join('\n')
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage())
    return name === undefined ? 1 : 0
  }
  const command = commands[name]
  if (command === undefined) {
    console.error(`rxnet: unknown command "${name}"\n\n${usage()}`)
    return 2
  }
  const { run } = await command.load()
  return run(rest)
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
