/**
 * A candidate's parameter count, for size ordering (SPEC A-4) and alternates
 * (SPEC F-1): from model metadata first, then from the id.
 */
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { readModelInfo } from "./ModelInfo.js"
import { paramCountFromId } from "./ParamCount.js"

const num = (v: unknown): number | null => (typeof v === "number" && Number.isSafeInteger(v) && v > 0 ? v : null)

/**
 * Parameter count of a decoder-only transformer from a Hugging Face
 * `config.json` (the metadata an MLX or safetensors model directory carries),
 * using the config's own shape keys (`hidden_size`, `num_hidden_layers`,
 * `intermediate_size`, `vocab_size`, `num_attention_heads`,
 * `num_key_value_heads`, `head_dim`, `tie_word_embeddings`):
 * embeddings (×2 unless tied) + per layer q/o (hidden × heads·head_dim each),
 * k/v (hidden × kv_heads·head_dim each) and a gated MLP (3 × hidden × intermediate).
 * Norms and biases are left out (< 0.1 %). Null when a shape key is missing or
 * the config nests its text model elsewhere — the caller then falls back to the id.
 */
export const paramCountFromHfConfig = (config: unknown): number | null => {
  if (typeof config !== "object" || config === null) return null
  const c = config as Record<string, unknown>
  const hidden = num(c["hidden_size"])
  const layers = num(c["num_hidden_layers"])
  const inter = num(c["intermediate_size"])
  const vocab = num(c["vocab_size"])
  const heads = num(c["num_attention_heads"])
  if (hidden === null || layers === null || inter === null || vocab === null || heads === null) return null
  const kvHeads = num(c["num_key_value_heads"]) ?? heads
  const headDim = num(c["head_dim"]) ?? hidden / heads
  const attention = 2 * hidden * heads * headDim + 2 * hidden * kvHeads * headDim
  const mlp = 3 * hidden * inter
  const embeddings = vocab * hidden * (c["tie_word_embeddings"] === true ? 1 : 2)
  return Math.round(embeddings + layers * (attention + mlp))
}

/**
 * The parameter count of a candidate (SPEC A-4, F-1), in parameters: a local
 * GGUF file's header (sum of tensor elements), else a local model directory's
 * `config.json` (paramCountFromHfConfig), else a size token in the id's last
 * path segment (`Llama-3.2-1B-4bit` → 1e9), else null (unknown: sorted last,
 * never an alternate). Never fails.
 */
export const modelParamCount = (id: string): Effect.Effect<number | null> =>
  Effect.gen(function*() {
    const fromId = Option.getOrNull(paramCountFromId(path.basename(id)))
    const stat = fs.statSync(id, { throwIfNoEntry: false })
    if (stat?.isFile()) {
      const info = yield* readModelInfo(id).pipe(Effect.option)
      return Option.match(info, { onNone: () => fromId, onSome: (m) => m.paramCount })
    }
    if (stat?.isDirectory()) {
      const config = path.join(id, "config.json")
      const parsed = yield* Effect.try(() => JSON.parse(fs.readFileSync(config, "utf8")) as unknown).pipe(Effect.option)
      return Option.match(parsed, { onNone: () => fromId, onSome: (c) => paramCountFromHfConfig(c) ?? fromId })
    }
    return fromId
  })
