/**
 * Datagram sealing for `multicast({ secret })`: AES-256-GCM (node:crypto only) with a key derived
 * from the secret by HKDF-SHA256. The nonce is the 12 header bytes sender id + sequence number, so
 * it never repeats for one key as long as a sender never reuses a sequence number under one id
 * (the channel rotates its id before the uint32 counter wraps). The whole header is authenticated
 * as additional data.
 * @module
 */
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto'
import { InvalidArgumentError } from '../errors.js'
import { HEADER_BYTES, TAG_BYTES } from './datagram.js'

/** HKDF salt and info: fixed, so every node derives the same key from the same secret. */
const SALT = Buffer.from('rxnet/multicast/v1')
const INFO = Buffer.from('aes-256-gcm datagram key')

/** Derives the 32-byte datagram key from a shared secret (string as UTF-8, or bytes). */
export function deriveKey(secret: string | Uint8Array): Buffer {
  const ikm = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret
  if (!(ikm instanceof Uint8Array) || ikm.length === 0) throw new InvalidArgumentError('secret must be a non-empty string or Uint8Array')
  return Buffer.from(hkdfSync('sha256', ikm, SALT, INFO, 32))
}

/**
 * Seals a body under `header` (AAD; its bytes 2..14 are the nonce): returns the ciphertext and the
 * 16-byte tag, to be sent as `[header, ciphertext, tag]`. The header must have the sealed flag set.
 */
export function sealParts(key: Buffer, header: Uint8Array, body: Uint8Array): [Buffer, Buffer] {
  const cipher = createCipheriv('aes-256-gcm', key, header.subarray(2, HEADER_BYTES), { authTagLength: TAG_BYTES })
  cipher.setAAD(header.subarray(0, HEADER_BYTES))
  const head = cipher.update(body)
  const tail = cipher.final()
  return [tail.length === 0 ? head : Buffer.concat([head, tail]), cipher.getAuthTag()]
}

/** {@link sealParts} as one datagram buffer. */
export function seal(key: Buffer, header: Uint8Array, body: Uint8Array): Buffer {
  return Buffer.concat([header, ...sealParts(key, header, body)])
}

/**
 * Opens a sealed datagram; returns the plaintext body, or null when it is too short or fails
 * authentication (wrong key, forged or garbled bytes). Never throws on bad input.
 */
export function open(key: Buffer, datagram: Uint8Array): Buffer | null {
  if (datagram.length < HEADER_BYTES + TAG_BYTES) return null
  const bodyEnd = datagram.length - TAG_BYTES
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, datagram.subarray(2, HEADER_BYTES), { authTagLength: TAG_BYTES })
    decipher.setAAD(datagram.subarray(0, HEADER_BYTES))
    decipher.setAuthTag(datagram.subarray(bodyEnd))
    const head = decipher.update(datagram.subarray(HEADER_BYTES, bodyEnd))
    const tail = decipher.final()
    return tail.length === 0 ? head : Buffer.concat([head, tail])
  } catch {
    return null
  }
}
