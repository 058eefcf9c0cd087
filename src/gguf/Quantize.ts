/**
 * Block encoders for synthetic weights: random codes drawn directly in each
 * ggml block format, so no float weights are ever materialised.
 *
 * Every encoder targets weights with mean 0 and standard deviation `WEIGHT_STD`
 * (0.02, the usual llama initialisation). Quantized types draw uniform codes
 * (uniform on the code range; by the central limit theorem a dot product over
 * hundreds of them behaves like one over normal weights) and give each block a
 * scale of random sign, which cancels the code range's -0.5 offset. F16 draws
 * normal(0, 0.02) values through a 65 536-entry inverse-CDF table.
 *
 * Block layouts (ggml/src/ggml-common.h):
 * - Q4_0: 32 weights = f16 d, 16 bytes of nibbles (low nibbles are weights 0..15,
 *   high nibbles 16..31); weight = (nibble - 8) * d.
 * - Q8_0: 32 weights = f16 d, 32 int8 q; weight = q * d.
 * - Q6_K: 256 weights = ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16],
 *   f16 d; weight = d * scales[j] * (q - 32), q in 0..63. With uniform random bytes
 *   every 6-bit q is uniform, whatever the packing order.
 */
import type { Prng } from "./Prng.js"
import { GgmlTypeId } from "./GgmlType.js"

/** Target standard deviation of synthetic weights (llama's `initializer_range`). */
export const WEIGHT_STD = 0.02

/** IEEE 754 binary16 bits of `x` (round to nearest even; subnormals, ±inf). */
export const f16Bits = (x: number): number => {
  const f = new Float32Array(1), u = new Uint32Array(f.buffer)
  f[0] = x
  const b = u[0]!
  const sign = (b >>> 16) & 0x8000
  const exp = (b >>> 23) & 0xff
  let mant = b & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0)
  let e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    mant |= 0x800000
    const shift = 14 - e
    let h = mant >>> shift
    const rem = mant & ((1 << shift) - 1), half = 1 << (shift - 1)
    if (rem > half || (rem === half && (h & 1) === 1)) h++
    return sign | h
  }
  let h = (e << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++
  return sign | h
}

/** Inverse of the standard normal CDF (Acklam's rational approximation, |rel err| < 1.2e-9). */
const normInv = (p: number): number => {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2,
    -3.066479806614716e1, 2.506628277459239]
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1,
    -1.328068155288572e1]
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734,
    4.374664141464968, 2.938163982698783]
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416]
  const lo = 0.02425
  if (p < lo || p > 1 - lo) {
    const q = Math.sqrt(-2 * Math.log(p < lo ? p : 1 - p))
    const x = (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1)
    return p < lo ? x : -x
  }
  const q = p - 0.5, r = q * q
  return (((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
}

let normalF16Table: Uint16Array | undefined
const normalF16 = (): Uint16Array => {
  if (normalF16Table === undefined) {
    normalF16Table = new Uint16Array(65536)
    for (let i = 0; i < 65536; i++) normalF16Table[i] = f16Bits(WEIGHT_STD * normInv((i + 0.5) / 65536))
  }
  return normalF16Table
}

/** Standard deviation of a uniform integer on [lo, hi]. */
const uniformStd = (lo: number, hi: number): number => Math.sqrt(((hi - lo + 1) ** 2 - 1) / 12)

const Q4_0_D = f16Bits(WEIGHT_STD / uniformStd(-8, 7))
const Q8_0_D = f16Bits(WEIGHT_STD / uniformStd(-128, 127))
const Q6_K_SCALE = 8
const Q6_K_D = f16Bits(WEIGHT_STD / uniformStd(-32, 31) / Q6_K_SCALE)

/** Elements and bytes of one block of each type this module writes. */
export const blockLayout: Readonly<Record<GgmlTypeId, { readonly elements: number; readonly bytes: number }>> = {
  [GgmlTypeId.F32]: { elements: 1, bytes: 4 },
  [GgmlTypeId.F16]: { elements: 1, bytes: 2 },
  [GgmlTypeId.Q4_0]: { elements: 32, bytes: 18 },
  [GgmlTypeId.Q8_0]: { elements: 32, bytes: 34 },
  [GgmlTypeId.Q6_K]: { elements: 256, bytes: 210 }
}

/**
 * Writes `nBlocks` random blocks of `type` into `out` from offset 0 (out must hold
 * `nBlocks * blockLayout[type].bytes` bytes), drawing from `rng`. For F32 every
 * element is 1.0 (the norm weights); for F16 a "block" is one element.
 * `scratch` is reused between calls to avoid allocation.
 */
export const fillRandomBlocks = (type: GgmlTypeId, rng: Prng, out: Uint8Array, nBlocks: number,
  scratch: { words?: Uint32Array }): void => {
  if (type === GgmlTypeId.F32) {
    for (let i = 0; i < nBlocks; i++) {
      out[4 * i] = 0x00; out[4 * i + 1] = 0x00; out[4 * i + 2] = 0x80; out[4 * i + 3] = 0x3f // 1.0f LE
    }
    return
  }
  // Random 32-bit words: F16 2 per word; Q6_K 48 code words + 1 scale-sign word per block;
  // Q4_0/Q8_0 4/8 code words per block + 1 word of scale-sign bits per 32 blocks.
  const nWords = type === GgmlTypeId.F16 ? Math.ceil(nBlocks / 2)
    : type === GgmlTypeId.Q6_K ? nBlocks * 49
    : nBlocks * (type === GgmlTypeId.Q4_0 ? 4 : 8) + Math.ceil(nBlocks / 32)
  if (scratch.words === undefined || scratch.words.length < nWords) scratch.words = new Uint32Array(nWords)
  const w = scratch.words
  rng.fill(w.length === nWords ? w : w.subarray(0, nWords))
  // Code bytes are the words' bytes in platform order: files are identical across little-endian
  // hosts (x86-64, arm64), which is every host node-llama-cpp ships binaries for.
  const bytes = new Uint8Array(w.buffer, w.byteOffset, nWords * 4)
  switch (type) {
    case GgmlTypeId.F16: {
      const t = normalF16()
      for (let i = 0; i < nBlocks; i++) {
        const x = w[i >>> 1]!
        const h = t[(i & 1) === 0 ? x & 0xffff : x >>> 16]!
        out[2 * i] = h & 0xff
        out[2 * i + 1] = h >>> 8
      }
      return
    }
    case GgmlTypeId.Q4_0:
      return encode(out, bytes, w, nBlocks, 18, 16, Q4_0_D)
    case GgmlTypeId.Q8_0:
      return encode(out, bytes, w, nBlocks, 34, 32, Q8_0_D)
    case GgmlTypeId.Q6_K: {
      // 192 bytes of ql+qh, then 16 int8 scales, each ±Q6_K_SCALE by the low 16 bits of one word, then d.
      for (let blk = 0, o = 0, src = 0; blk < nBlocks; blk++, o += 210, src += 196) {
        out.set(bytes.subarray(src, src + 192), o)
        const s = w[(src >>> 2) + 48]!
        for (let j = 0; j < 16; j++) out[o + 192 + j] = ((s >>> j) & 1) === 1 ? 256 - Q6_K_SCALE : Q6_K_SCALE
        out[o + 208] = Q6_K_D & 0xff
        out[o + 209] = Q6_K_D >>> 8
      }
      return
    }
  }
}

/** Blocks of [f16 d with random sign][`qBytes` random code bytes]; signs come after the code words. */
const encode = (out: Uint8Array, bytes: Uint8Array, w: Uint32Array, nBlocks: number, blockBytes: number,
  qBytes: number, d: number): void => {
  const signBase = nBlocks * (qBytes >>> 2)
  for (let blk = 0, o = 0, src = 0; blk < nBlocks; blk++, o += blockBytes, src += qBytes) {
    const sign = ((w[signBase + (blk >>> 5)]! >>> (blk & 31)) & 1) << 15
    const h = d | sign
    out[o] = h & 0xff
    out[o + 1] = h >>> 8
    for (let k = 0; k < qBytes; k++) out[o + 2 + k] = bytes[src + k]!
  }
}
