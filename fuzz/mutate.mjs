// Byte-level mutations of an encoded packet. Each returns new bytes (the
// input may be shared and is never modified).
import { varint } from './encode.mjs'
import { weighted } from './rng.mjs'

const BOUNDARY_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xc0, 0x3f]
const BOUNDARY_U16 = [0x0000, 0x0001, 0x7fff, 0x8000, 0xffff]

/** Offset just past the fixed header (type byte + remaining length). */
function headerEnd(b) {
  let i = 1
  while (i < b.length && i < 5 && b[i] & 0x80) i++
  return Math.min(i + 1, b.length)
}

const MUTATIONS = {
  bitflip(r, b) {
    const out = Buffer.from(b)
    for (let n = r.range(1, 4); n > 0; n--) out[r.int(out.length)] ^= 1 << r.int(8)
    return out
  },
  byteset(r, b) {
    const out = Buffer.from(b)
    out[r.int(out.length)] = r.chance(0.7) ? r.pick(BOUNDARY_BYTES) : r.int(256)
    return out
  },
  insert(r, b) {
    const at = r.int(b.length + 1)
    return Buffer.concat([b.subarray(0, at), r.bytes(r.range(1, 16)), b.subarray(at)])
  },
  delete(r, b) {
    const at = r.int(b.length)
    return Buffer.concat([b.subarray(0, at), b.subarray(at + r.range(1, 16))])
  },
  /** Rewrites the remaining length: off by one, zero, maximal, over-long or non-minimal. */
  length(r, b) {
    const end = headerEnd(b)
    const real = b.length - end
    const choice = r.int(6)
    let len
    if (choice === 0) len = varint(Math.max(0, real + r.pick([-2, -1, 1, 2])))
    else if (choice === 1) len = varint(0)
    else if (choice === 2) len = varint(268435455)
    else if (choice === 3)
      len = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]) // 5 bytes: malformed
    else if (choice === 4)
      len = Buffer.from([0x80 | (real & 0x7f), 0x80, 0x80, 0x00]) // non-minimal
    else len = varint(r.int(2 * real + 16))
    return Buffer.concat([b.subarray(0, 1), len, b.subarray(end)])
  },
  /** Overwrites a 2-byte field (string length, packet id, alias) in the variable header. */
  u16(r, b) {
    const out = Buffer.from(b)
    const start = headerEnd(b)
    if (out.length - start < 2) return MUTATIONS.byteset(r, b)
    const at = start + (r.chance(0.5) ? 0 : r.int(Math.min(out.length - start - 1, 64)))
    out.writeUInt16BE(r.chance(0.8) ? r.pick(BOUNDARY_U16) : r.int(65536), at)
    return out
  },
  truncate(r, b) {
    return b.subarray(0, r.int(b.length))
  },
  /** Head of this packet, tail of another. */
  splice(r, b, other) {
    return Buffer.concat([b.subarray(0, r.int(b.length + 1)), other.subarray(r.int(other.length))])
  },
  dupslice(r, b) {
    const at = r.int(b.length)
    const piece = b.subarray(at, at + r.range(1, 32))
    return Buffer.concat([b.subarray(0, at), piece, piece, b.subarray(at)])
  },
  /** The fixed header's type or flags nibble. */
  flags(r, b) {
    const out = Buffer.from(b)
    out[0] = r.chance(0.5) ? (out[0] & 0xf0) | r.int(16) : (r.int(16) << 4) | (out[0] & 0x0f)
    return out
  },
}

/** Mutation names, for `--exclude`. */
export const MUTATION_NAMES = Object.keys(MUTATIONS)

/** A mutator honouring `exclude`: `(rng, bytes, other) => [name, bytes]`. */
export function mutator(exclude) {
  const pick = weighted(Object.fromEntries(MUTATION_NAMES.map((n) => [n, 1])), exclude)
  return (r, b, other) => {
    if (b.length === 0) return ['insert', r.bytes(r.range(1, 8))]
    const name = pick(r)
    return [name, MUTATIONS[name](r, b, other)]
  }
}
