/**
 * Writes synthetic llama-architecture GGUF models: real shapes, a real tokenizer
 * vocabulary, random weights. They load and run in llama.cpp like a real model
 * of the same size (same compute, memory and file size) but produce gibberish.
 */
import { Effect } from "effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { SynthFailed } from "../domain/AutotuneError.js"
import { GgmlTypeId } from "./GgmlType.js"
import { encodeGgufHeader, type GgufTensorSpec, type GgufValue } from "./GgufWriter.js"
import { chooseShape, type LlamaShape, shapeParamCount } from "./LlamaShape.js"
import { makePrng } from "./Prng.js"
import { blockLayout, fillRandomBlocks } from "./Quantize.js"
import { BOS_ID, EOS_ID, llamaVocab, UNK_ID } from "./Vocab.js"

/** Weight quantization of a synthetic model. */
export type Quant = "q4_0" | "q8_0" | "f16"

/** What to write: parameter count (absolute), quantization, PRNG seed, output path. */
export interface SynthOptions {
  readonly params: number
  readonly quant: Quant
  readonly seed: number
  readonly outPath: string
}

/** What was written: the file, its exact parameter count (tensor elements), size in bytes and shape. */
export interface SynthResult {
  readonly path: string
  readonly paramCount: number
  readonly bytes: number
  readonly shape: LlamaShape
}

/** `llama.context_length` of every synthetic model (tokens). */
export const CONTEXT_LENGTH = 4096
/** `general.alignment` (bytes): GGUF's default, written explicitly. */
export const ALIGNMENT = 32
/** Largest accepted relative difference between requested and written parameter count. */
const MAX_PARAM_ERROR = 0.1

/** llama.cpp `llama_ftype` of each quant (`general.file_type`). */
const fileType: Record<Quant, number> = { f16: 1, q4_0: 2, q8_0: 7 }
const weightType: Record<Quant, GgmlTypeId> = { f16: GgmlTypeId.F16, q4_0: GgmlTypeId.Q4_0, q8_0: GgmlTypeId.Q8_0 }

/**
 * The tensors of `shape` with their types under `quant`, in llama.cpp's naming
 * (llama-arch.cpp LLM_ARCH_LLAMA). Dims are ggml `ne` (innermost first): a weight
 * mapping n_in → n_out is [n_in, n_out].
 *
 * Types follow llama-quant.cpp `llama_tensor_get_type`: 1-D norms stay F32; every 2-D
 * weight takes the file's type, except that for Q4_0 the untied `output.weight` is Q6_K,
 * falling back to Q8_0 when its rows (n_embd) are not a multiple of 256 (QK_K).
 */
export const tensorPlan = (shape: LlamaShape, quant: Quant): ReadonlyArray<GgufTensorSpec> => {
  const { nEmbd, nVocab, nFf } = shape
  const nKv = shape.headDim * shape.nHeadKv
  const w = weightType[quant]
  const outType = quant === "q4_0" ? (nEmbd % 256 === 0 ? GgmlTypeId.Q6_K : GgmlTypeId.Q8_0) : w
  const spec = (name: string, dims: ReadonlyArray<number>, type: GgmlTypeId): GgufTensorSpec => {
    const elements = dims.reduce((a, b) => a * b, 1)
    return { name, dims, type, bytes: (elements / blockLayout[type].elements) * blockLayout[type].bytes }
  }
  const blocks = Array.from({ length: shape.nLayer }, (_, i) => [
    spec(`blk.${i}.attn_norm.weight`, [nEmbd], GgmlTypeId.F32),
    spec(`blk.${i}.attn_q.weight`, [nEmbd, nEmbd], w),
    spec(`blk.${i}.attn_k.weight`, [nEmbd, nKv], w),
    spec(`blk.${i}.attn_v.weight`, [nEmbd, nKv], w),
    spec(`blk.${i}.attn_output.weight`, [nEmbd, nEmbd], w),
    spec(`blk.${i}.ffn_norm.weight`, [nEmbd], GgmlTypeId.F32),
    spec(`blk.${i}.ffn_gate.weight`, [nEmbd, nFf], w),
    spec(`blk.${i}.ffn_up.weight`, [nEmbd, nFf], w),
    spec(`blk.${i}.ffn_down.weight`, [nFf, nEmbd], w)
  ]).flat()
  return [
    spec("token_embd.weight", [nEmbd, nVocab], w),
    ...blocks,
    spec("output_norm.weight", [nEmbd], GgmlTypeId.F32),
    spec("output.weight", [nEmbd, nVocab], outType)
  ]
}

/** GGUF metadata of a synthetic llama (keys as in llama.cpp's gguf-py `Keys`, values like Llama 2's). */
export const metadata = (shape: LlamaShape, quant: Quant, name: string): ReadonlyArray<readonly [string, GgufValue]> => {
  const v = llamaVocab()
  const u32 = (value: number): GgufValue => ({ type: "u32", value })
  return [
    ["general.architecture", { type: "string", value: "llama" }],
    ["general.name", { type: "string", value: name }],
    ["llama.context_length", u32(CONTEXT_LENGTH)],
    ["llama.embedding_length", u32(shape.nEmbd)],
    ["llama.block_count", u32(shape.nLayer)],
    ["llama.feed_forward_length", u32(shape.nFf)],
    ["llama.attention.head_count", u32(shape.nHead)],
    ["llama.attention.head_count_kv", u32(shape.nHeadKv)],
    ["llama.rope.dimension_count", u32(shape.headDim)],
    ["llama.rope.freq_base", { type: "f32", value: 10000 }],
    ["llama.attention.layer_norm_rms_epsilon", { type: "f32", value: 1e-5 }],
    ["llama.vocab_size", u32(shape.nVocab)],
    ["general.file_type", u32(fileType[quant])],
    ["general.quantization_version", u32(2)],
    ["general.alignment", u32(ALIGNMENT)],
    ["tokenizer.ggml.model", { type: "string", value: "llama" }],
    ["tokenizer.ggml.tokens", { type: "string[]", value: v.tokens }],
    ["tokenizer.ggml.scores", { type: "f32[]", value: v.scores }],
    ["tokenizer.ggml.token_type", { type: "i32[]", value: v.types }],
    ["tokenizer.ggml.bos_token_id", u32(BOS_ID)],
    ["tokenizer.ggml.eos_token_id", u32(EOS_ID)],
    ["tokenizer.ggml.unknown_token_id", u32(UNK_ID)],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: true }],
    ["tokenizer.ggml.add_eos_token", { type: "bool", value: false }]
  ]
}

/** Bytes generated per write. */
const CHUNK_BYTES = 4 << 20

const failWith = (what: string) => (e: unknown) =>
  new SynthFailed({ message: `${what}: ${e instanceof Error ? e.message : String(e)}` })

const writeAll = (fh: Fs.FileHandle, data: Uint8Array): Effect.Effect<void, SynthFailed> =>
  Effect.tryPromise({
    try: async () => {
      for (let off = 0; off < data.length;) off += (await fh.write(data, off, data.length - off)).bytesWritten
    },
    catch: failWith("write failed")
  })

/**
 * Writes a synthetic llama GGUF v3 model of about `o.params` parameters to `o.outPath`.
 *
 * Shape from `chooseShape` (LlamaShape.ts), vocabulary from Vocab.ts, tensor types from
 * `tensorPlan`, weights from Quantize.ts (std 0.02, norms 1.0) drawn from a PRNG seeded by
 * `o.seed` (stream = tensor index), so the same options give a byte-identical file.
 * Streams ~4 MiB chunks to a temporary file in the output's directory (created if missing),
 * fsyncs and renames it over `o.outPath`; on any failure or interruption the temporary file
 * is removed and `o.outPath` is untouched. Measured on 2 cores: 15M q4_0 0.13 s, 130M q4_0 0.3 s,
 * 1.1B q4_0 (637 MB) 2.3 s, 1.1B f16 (2.2 GB) 9.5 s; memory stays ~4 MiB of buffers.
 *
 * Fails with `SynthFailed` when the request is not a positive count, no shape comes within
 * 10% of it (below about 4.5M parameters), or the file system refuses.
 */
export const writeSyntheticModel = (o: SynthOptions): Effect.Effect<SynthResult, SynthFailed> =>
  Effect.gen(function*() {
    if (!Number.isFinite(o.params) || o.params <= 0) {
      return yield* new SynthFailed({ message: `parameter count must be positive, got ${o.params}` })
    }
    if (!(o.quant in weightType)) return yield* new SynthFailed({ message: `unknown quant "${o.quant}"` })
    const shape = chooseShape(o.params)
    const paramCount = shapeParamCount(shape)
    if (Math.abs(paramCount - o.params) / o.params > MAX_PARAM_ERROR) {
      return yield* new SynthFailed({
        message: `no llama shape within 10% of ${o.params} parameters (nearest: ${paramCount}, ${shape.family})`
      })
    }
    const plan = tensorPlan(shape, o.quant)
    // The real size in the name (not the family's: "stories42M" shapes make 60M models), as ids are parsed for it.
    const size = paramCount >= 1e9 ? `${(paramCount / 1e9).toFixed(1)}B` : `${Math.round(paramCount / 1e6)}M`
    const name = `synthetic-llama-${size}-${o.quant}`
    const layout = encodeGgufHeader(metadata(shape, o.quant, name), plan, ALIGNMENT)
    const outPath = Path.resolve(o.outPath)
    const dir = Path.dirname(outPath)
    const tmp = Path.join(dir, `.${Path.basename(outPath)}.${process.pid}.${Crypto.randomBytes(4).toString("hex")}.tmp`)
    yield* Effect.tryPromise({ try: () => Fs.mkdir(dir, { recursive: true }), catch: failWith(`cannot create ${dir}`) })

    const writeBody = (fh: Fs.FileHandle) => Effect.gen(function*() {
      yield* writeAll(fh, layout.header)
      const buf = new Uint8Array(CHUNK_BYTES)
      const scratch: { words?: Uint32Array } = {}
      let pos = 0 // within the data section
      for (let i = 0; i < plan.length; i++) {
        const t = plan[i]!
        const type = t.type as GgmlTypeId
        if (layout.offsets[i]! > pos) {
          yield* writeAll(fh, new Uint8Array(layout.offsets[i]! - pos))
          pos = layout.offsets[i]!
        }
        const rng = makePrng(o.seed, i + 1)
        const blockBytes = blockLayout[type].bytes
        const perChunk = Math.floor(CHUNK_BYTES / blockBytes)
        for (let left = t.bytes / blockBytes; left > 0;) {
          const n = Math.min(left, perChunk)
          fillRandomBlocks(type, rng, buf, n, scratch)
          yield* writeAll(fh, buf.subarray(0, n * blockBytes))
          left -= n
          pos += n * blockBytes
        }
      }
      yield* Effect.tryPromise({ try: () => fh.datasync(), catch: failWith("fsync failed") })
    })

    yield* Effect.acquireUseRelease(
      Effect.tryPromise({ try: () => Fs.open(tmp, "wx"), catch: failWith(`cannot create ${tmp}`) }),
      writeBody,
      (fh) => Effect.tryPromise(() => fh.close()).pipe(Effect.ignore)
    ).pipe(
      Effect.zipRight(Effect.tryPromise({ try: () => Fs.rename(tmp, outPath), catch: failWith(`cannot rename to ${outPath}`) })),
      Effect.onError(() => Effect.tryPromise(() => Fs.rm(tmp, { force: true })).pipe(Effect.ignore))
    )
    return { path: outPath, paramCount, bytes: layout.header.length + layout.dataBytes, shape }
  })
