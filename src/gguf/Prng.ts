/**
 * Seeded, fast, deterministic pseudo-random numbers for synthetic weights.
 *
 * xoshiro128** (Blackman & Vigna, 2018) over 32-bit integers, seeded through
 * splitmix32 so that neighbouring seeds give unrelated streams. Not for
 * cryptography; never `Math.random` (the same seed must give the same file).
 */

const splitmix32 = (state: { s: number }): number => {
  state.s = (state.s + 0x9e3779b9) | 0
  let z = state.s
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

/** A xoshiro128** generator. `nextU32` is uniform on [0, 2^32). */
export interface Prng {
  readonly nextU32: () => number
  /** Fills `out` with uniform 32-bit words. */
  readonly fill: (out: Uint32Array) => void
}

/**
 * A generator for stream `stream` of seed `seed` (both any 32-bit integers;
 * larger numbers are folded). The same (seed, stream) always gives the same
 * sequence; streams let each tensor be generated independently.
 */
export const makePrng = (seed: number, stream = 0): Prng => {
  const st = { s: (Math.floor(seed) ^ Math.imul(Math.floor(seed / 2 ** 32) | 0, 0x27d4eb2d)) | 0 }
  st.s = (st.s ^ Math.imul(stream | 0, 0x632be5ab)) | 0
  let a = splitmix32(st), b = splitmix32(st), c = splitmix32(st), d = splitmix32(st)
  if ((a | b | c | d) === 0) a = 1
  const nextU32 = (): number => {
    const r = Math.imul(rotl(Math.imul(b, 5), 7), 9)
    const t = b << 9
    c ^= a; d ^= b; b ^= c; a ^= d; c ^= t
    d = rotl(d, 11)
    return r >>> 0
  }
  const fill = (out: Uint32Array): void => {
    for (let i = 0; i < out.length; i++) {
      const r = Math.imul(rotl(Math.imul(b, 5), 7), 9)
      const t = b << 9
      c ^= a; d ^= b; b ^= c; a ^= d; c ^= t
      d = (d << 11) | (d >>> 21)
      out[i] = r
    }
  }
  return { nextU32, fill }
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k))
