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
 * Seals `datagram` in place: `datagram[0..HEADER_BYTES)` is the header (AAD, and bytes 2..14 the
 * nonce), `datagram[HEADER_BYTES..length - TAG_BYTES)` the plaintext body, replaced by its
 * ciphertext; the tag is written into the last {@link TAG_BYTES} bytes.
 */
export function sealInPlace(key: Buffer, datagram: Buffer): void {
  const bodyEnd = datagram.length - TAG_BYTES
  const cipher = createCipheriv('aes-256-gcm', key, datagram.subarray(2, HEADER_BYTES), { authTagLength: TAG_BYTES })
  cipher.setAAD(datagram.subarray(0, HEADER_BYTES))
  const body = datagram.subarray(HEADER_BYTES, bodyEnd)
  const n = cipher.update(body).copy(datagram, HEADER_BYTES)
  const rest = cipher.final()
  if (rest.length > 0) rest.copy(datagram, HEADER_BYTES + n)
  cipher.getAuthTag().copy(datagram, bodyEnd)
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
