/**
 * Topics and NATS-style patterns, as pure functions (no sockets): a topic is a dot-separated list
 * of non-empty tokens (`log.error`); a pattern may use `*` for exactly one token (`log.*`) and a
 * final `>` for one or more tokens (`log.>`). Used by the hub, the bus client and the `topic()`
 * operator, so all three match the same way.
 * @module
 */
import { InvalidArgumentError } from '../errors.js'

/**
 * Longest topic or pattern accepted, in UTF-8 bytes.
 * @example
 * ```ts
 * bus.emit('x'.repeat(MAX_TOPIC_LENGTH + 1), 1) // throws ERR_INVALID_ARGUMENT
 * ```
 */
export const MAX_TOPIC_LENGTH = 1024

/**
 * A compiled pattern: test topics against it without re-parsing.
 * @example
 * ```ts
 * const m: TopicMatcher = compileTopic('log.*')
 * m.matches('log.error') // true
 * ```
 */
export interface TopicMatcher {
  /** The pattern as given. */
  readonly pattern: string
  /** True when `topic` matches the pattern. */
  matches(topic: string): boolean
}

// Whitespace and control characters are never part of a token.
const BAD_CHAR = /[\s\u0000-\u001f\u007f]/

function check(what: string, value: unknown, wildcards: boolean): string[] {
  if (typeof value !== 'string') throw new InvalidArgumentError(`${what} must be a string, got ${typeof value}`)
  if (value.length === 0) throw new InvalidArgumentError(`${what} must not be empty`)
  if (Buffer.byteLength(value) > MAX_TOPIC_LENGTH) throw new InvalidArgumentError(`${what} is longer than ${MAX_TOPIC_LENGTH} bytes`)
  if (BAD_CHAR.test(value)) throw new InvalidArgumentError(`${what} "${value}" contains whitespace or control characters`)
  const tokens = value.split('.')
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!
    if (t.length === 0) throw new InvalidArgumentError(`${what} "${value}" has an empty token`)
    if (t === '*' || t === '>') {
      if (!wildcards) throw new InvalidArgumentError(`topic "${value}" contains a wildcard; only patterns may`)
      if (t === '>' && i !== tokens.length - 1) throw new InvalidArgumentError(`pattern "${value}": ">" must be the last token`)
    } else if (t.includes('*') || t.includes('>')) {
      throw new InvalidArgumentError(`${what} "${value}": wildcards must be whole tokens`)
    }
  }
  return tokens
}

/**
 * Throws `ERR_INVALID_ARGUMENT` unless `topic` is a valid concrete topic (no wildcards).
 * @example
 * ```ts
 * import { validateTopic } from 'rxnet'
 * validateTopic('log.error') // ok
 * validateTopic('log.*')     // throws ERR_INVALID_ARGUMENT
 * ```
 */
export function validateTopic(topic: string): void {
  check('topic', topic, false)
}

/**
 * Compiles a pattern (`log`, `log.*`, `log.>`, `*.error`) into a {@link TopicMatcher}; throws
 * `ERR_INVALID_ARGUMENT` on an invalid pattern.
 * @example
 * ```ts
 * import { compileTopic } from 'rxnet'
 * const m = compileTopic('log.>')
 * m.matches('log.error.disk') // true
 * m.matches('log')            // false: '>' needs at least one token
 * ```
 */
export function compileTopic(pattern: string): TopicMatcher {
  const tokens = check('pattern', pattern, true)
  const last = tokens[tokens.length - 1]
  const tail = last === '>'
  const fixed = tail ? tokens.slice(0, -1) : tokens
  if (!tail && !fixed.includes('*')) return { pattern, matches: (topic) => topic === pattern }
  return {
    pattern,
    matches(topic) {
      const parts = topic.split('.')
      if (tail ? parts.length <= fixed.length : parts.length !== fixed.length) return false
      for (let i = 0; i < fixed.length; i++) if (fixed[i] !== '*' && fixed[i] !== parts[i]) return false
      return true
    },
  }
}

/**
 * True when `topic` matches `pattern` (NATS rules: `*` one token, trailing `>` one or more).
 * @example
 * ```ts
 * import { matchTopic } from 'rxnet'
 * matchTopic('log.*', 'log.error')     // true
 * matchTopic('log.*', 'log.error.x')   // false
 * ```
 */
export function matchTopic(pattern: string, topic: string): boolean {
  return compileTopic(pattern).matches(topic)
}
