/**
 * Chooses llama transformer dimensions for a requested parameter count.
 *
 * Each candidate family copies the width, heads, KV heads and FFN size of a published
 * small llama-architecture model (or, below 42M, llama2.c-style widths with 64-wide heads
 * and FFN = 8/3·width rounded up to 32, as llama2.c computes it); only the layer count is
 * solved for. Every family has a head size that is a multiple of 32 (a quantized KV cache
 * needs it: "block size 32 does not divide n_embd_head_k") and widths that are multiples
 * of 32 (whole Q4_0/Q8_0 blocks per row).
 */
import { VOCAB_SIZE } from "./Vocab.js"

/** Dimensions of a llama model, named as in GGUF `llama.*` metadata. */
export interface LlamaShape {
  /** Family the dimensions were copied from, e.g. "TinyLlama-1.1B". */
  readonly family: string
  readonly nVocab: number
  /** `llama.embedding_length` */
  readonly nEmbd: number
  /** `llama.block_count` */
  readonly nLayer: number
  /** `llama.attention.head_count` */
  readonly nHead: number
  /** `llama.attention.head_count_kv` */
  readonly nHeadKv: number
  /** `llama.feed_forward_length` */
  readonly nFf: number
  /** nEmbd / nHead, also `llama.rope.dimension_count` */
  readonly headDim: number
}

interface Family {
  readonly family: string
  readonly nEmbd: number
  readonly nHead: number
  readonly nHeadKv: number
  readonly nFf: number
  /** Layer count of the published model (the chooser prefers depths near it). */
  readonly refLayers: number
}

/** Candidate families, narrowest first. */
export const families: ReadonlyArray<Family> = [
  { family: "llama2.c-64", nEmbd: 64, nHead: 1, nHeadKv: 1, nFf: 192, refLayers: 5 },
  { family: "llama2.c-128", nEmbd: 128, nHead: 2, nHeadKv: 2, nFf: 352, refLayers: 5 },
  { family: "llama2.c-192", nEmbd: 192, nHead: 3, nHeadKv: 3, nFf: 512, refLayers: 6 },
  { family: "llama2.c-256", nEmbd: 256, nHead: 4, nHeadKv: 4, nFf: 704, refLayers: 6 },
  { family: "llama2.c-384", nEmbd: 384, nHead: 6, nHeadKv: 6, nFf: 1024, refLayers: 8 },
  { family: "stories42M", nEmbd: 512, nHead: 8, nHeadKv: 8, nFf: 1376, refLayers: 8 },
  { family: "SmolLM-135M", nEmbd: 576, nHead: 9, nHeadKv: 3, nFf: 1536, refLayers: 30 },
  { family: "stories110M", nEmbd: 768, nHead: 12, nHeadKv: 12, nFf: 2048, refLayers: 12 },
  { family: "Qwen2.5-0.5B", nEmbd: 896, nHead: 14, nHeadKv: 2, nFf: 4864, refLayers: 24 },
  { family: "SmolLM-360M", nEmbd: 960, nHead: 15, nHeadKv: 5, nFf: 2560, refLayers: 32 },
  { family: "TinyLlama-1.1B", nEmbd: 2048, nHead: 32, nHeadKv: 4, nFf: 5632, refLayers: 22 },
  { family: "Llama-3.2-1B", nEmbd: 2048, nHead: 32, nHeadKv: 8, nFf: 8192, refLayers: 16 },
  { family: "Llama-3.2-3B", nEmbd: 3072, nHead: 24, nHeadKv: 8, nFf: 8192, refLayers: 28 }
]

/** Parameters in one decoder block: q, k, v, o projections, gate/up/down FFN, two RMS norms. */
const perLayer = (f: Pick<Family, "nEmbd" | "nHead" | "nHeadKv" | "nFf">): number => {
  const kv = (f.nEmbd / f.nHead) * f.nHeadKv
  return 2 * f.nEmbd * f.nEmbd + 2 * f.nEmbd * kv + 3 * f.nEmbd * f.nFf + 2 * f.nEmbd
}

/**
 * Total parameters (tensor elements) of `s`: untied token_embd and output
 * (nVocab × nEmbd each), output_norm, and nLayer blocks.
 */
export const shapeParamCount = (s: LlamaShape): number =>
  2 * s.nVocab * s.nEmbd + s.nEmbd + s.nLayer * perLayer(s)

/** Relative error the chooser accepts before it trades accuracy for a natural depth. */
const TOLERANCE = 0.03

/**
 * The shape for about `params` parameters (absolute count), vocabulary `VOCAB_SIZE`.
 * For each family the layer count is rounded down and up from the exact solution;
 * among candidates within 3% of the request it takes the one whose depth is closest
 * (in ratio) to its family's published depth, otherwise the most accurate one.
 * Within 10% of the request for 5M ≤ params ≤ 3.3B (test/gguf/SyntheticModel.test.ts).
 */
export const chooseShape = (params: number): LlamaShape => {
  const candidates = families.flatMap((f) => {
    const exact = (params - 2 * VOCAB_SIZE * f.nEmbd - f.nEmbd) / perLayer(f)
    const layers = [...new Set([Math.max(1, Math.floor(exact)), Math.max(1, Math.ceil(exact))])]
    return layers.map((nLayer) => {
      const shape: LlamaShape = {
        family: f.family, nVocab: VOCAB_SIZE, nEmbd: f.nEmbd, nLayer, nHead: f.nHead, nHeadKv: f.nHeadKv,
        nFf: f.nFf, headDim: f.nEmbd / f.nHead
      }
      return { shape, error: Math.abs(shapeParamCount(shape) - params) / params,
        depthDistance: Math.abs(Math.log(nLayer / f.refLayers)) }
    })
  })
  const good = candidates.filter((c) => c.error <= TOLERANCE)
  const best = good.length > 0
    ? good.reduce((a, b) => (b.depthDistance < a.depthDistance ? b : a))
    : candidates.reduce((a, b) => (b.error < a.error ? b : a))
  return best.shape
}
