/**
 * ggml tensor types: ids as stored in GGUF tensor infos, and their block layout
 * (elements per block, bytes per block). Source: ggml/src/ggml.c `type_traits`
 * and the `block_*` structs in ggml/src/ggml-common.h.
 */

/** The ggml type ids this project writes. */
export const GgmlTypeId = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, Q6_K: 14 } as const
export type GgmlTypeId = (typeof GgmlTypeId)[keyof typeof GgmlTypeId]

/** [elements per block, bytes per block] by ggml type id (every type llama.cpp can load today). */
const layout: Readonly<Record<number, readonly [number, number]>> = {
  0: [1, 4], // F32
  1: [1, 2], // F16
  2: [32, 18], // Q4_0
  3: [32, 20], // Q4_1
  6: [32, 22], // Q5_0
  7: [32, 24], // Q5_1
  8: [32, 34], // Q8_0
  9: [32, 36], // Q8_1
  10: [256, 84], // Q2_K
  11: [256, 110], // Q3_K
  12: [256, 144], // Q4_K
  13: [256, 176], // Q5_K
  14: [256, 210], // Q6_K
  15: [256, 292], // Q8_K
  16: [256, 66], // IQ2_XXS
  17: [256, 74], // IQ2_XS
  18: [256, 98], // IQ3_XXS
  19: [256, 50], // IQ1_S
  20: [32, 18], // IQ4_NL
  21: [256, 110], // IQ3_S
  22: [256, 82], // IQ2_S
  23: [256, 136], // IQ4_XS
  24: [1, 1], // I8
  25: [1, 2], // I16
  26: [1, 4], // I32
  27: [1, 8], // I64
  28: [1, 8], // F64
  29: [256, 56], // IQ1_M
  30: [1, 2], // BF16
  34: [256, 54], // TQ1_0
  35: [256, 66], // TQ2_0
  39: [32, 17] // MXFP4
}

/**
 * Bytes of a tensor of ggml type `type` whose innermost dimension is `ne0` and
 * that holds `elements` elements in all. Undefined for a type id not in the table
 * (a newer llama.cpp type) or when `ne0` is not a whole number of blocks.
 */
export const tensorBytes = (type: number, ne0: number, elements: number): number | undefined => {
  const l = layout[type]
  if (l === undefined || ne0 % l[0] !== 0) return undefined
  return (elements / l[0]) * l[1]
}
