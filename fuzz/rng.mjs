// Seeded pseudo-random numbers (sfc32), so a run's packet streams can be
// replayed from its seed: every connection session draws from a generator
// derived from (seed, slot, session number), never from shared state.

/** splitmix32 step: spreads a 32-bit input over all bits. */
function mix32(x) {
  x = (x + 0x9e3779b9) | 0
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b)
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35)
  return (x ^ (x >>> 16)) >>> 0
}

export class Rng {
  /** A generator for the tuple of 32-bit integers `parts` (e.g. seed, slot, session). */
  constructor(...parts) {
    let h = 0x12345678
    for (const p of parts) h = mix32(h ^ mix32(p >>> 0))
    this.a = mix32(h ^ 1)
    this.b = mix32(h ^ 2)
    this.c = mix32(h ^ 3)
    this.d = 1
    for (let i = 0; i < 12; i++) this.u32()
  }

  u32() {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** Uniform integer in [0, n). */
  int(n) {
    return n <= 0x100000000 ? Math.floor((this.u32() / 0x100000000) * n) : Math.floor(this.float() * n)
  }

  /** Uniform integer in [lo, hi]. */
  range(lo, hi) {
    return lo + this.int(hi - lo + 1)
  }

  float() {
    return (this.u32() * 0x100000000 + this.u32()) / 2 ** 64
  }

  chance(p) {
    return this.u32() < p * 0x100000000
  }

  pick(arr) {
    return arr[this.int(arr.length)]
  }

  /**
   * Integer whose magnitude is spread over orders of magnitude (log-uniform
   * in [1, max]), so small sizes are common and huge ones still happen.
   */
  logInt(max) {
    return Math.min(max, Math.floor(Math.exp(this.float() * Math.log(max + 1))))
  }

  bytes(n) {
    const b = Buffer.allocUnsafe(n)
    let i = 0
    for (; i + 4 <= n; i += 4) b.writeUInt32LE(this.u32(), i)
    for (; i < n; i++) b[i] = this.u32() & 0xff
    return b
  }
}

/**
 * A picker over weighted choices `{ name: weight, ... }`, minus the names in
 * `exclude`: `pick(rng)` returns a name.
 */
export function weighted(table, exclude = new Set()) {
  const names = Object.keys(table).filter((n) => !exclude.has(n) && table[n] > 0)
  const cum = []
  let total = 0
  for (const n of names) {
    total += table[n]
    cum.push(total)
  }
  return (rng) => {
    const x = rng.float() * total
    let i = 0
    while (cum[i] <= x) i++
    return names[i]
  }
}
