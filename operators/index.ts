/**
 * `rxnet/operators`: framing, codecs, membership, fan-out and routing as RxJS operators.
 * One operator per file; this file only re-exports.
 * @module
 */
export { frame } from './frame.js'
export { unframe, type UnframeOptions } from './unframe.js'
export { encode } from './encode.js'
export { decode } from './decode.js'
