/**
 * The serving knobs (SPEC B-1) and their one vocabulary. Each knob has one
 * spelling per place it appears; this file is the only home of the mapping:
 *
 * | knob      | Knobs field  | tune axis flag       | serve flag      | F-2 JSON / config.yaml key                       | tune_trials column | llama.cpp                       |
 * |-----------|--------------|----------------------|-----------------|--------------------------------------------------|--------------------|---------------------------------|
 * | KV bits   | `kvBits`     | `--kv-bits-axis`     | `--kv-bits`     | `kv_bits` / `kv_bits_override`                   | `kv_bits`          | `--cache-type-k/-v q4_0\|q8_0` (`kvCacheType`; node-llama-cpp `Q4_0`/`Q8_0`, `kvGgmlType`) |
 * | context   | `maxContext` | `--max-context-axis` | `--max-context` | `max_context_override` (both)                    | `max_context_cap`  | `--ctx-size` (× slots)          |
 * | batch     | `maxBatch`   | `--max-batch-axis`   | `--max-batch`   | `max_concurrency_override` (both)                | `max_batch`        | `--parallel`                    |
 * | threads   | `threads`    | `--threads-axis`     | `--threads`     | `threads` / `threads_override` (embedded only; F-3, F-4)   | `threads`          | `--threads`                     |
 * | flash attention | `flashAttn` | `--flash-attn-axis` (on,off) | `--flash-attn on\|off` | `flash_attn` ("on"/"off") / `flash_attn_override` (embedded, true/false) | `flash_attn` | `--flash-attn on\|off` |
 * | micro-batch | `ubatch`   | `--ubatch-axis`      | —               | `ubatch_size` (JSON only)                        | `ubatch`           | `--ubatch-size` (`-ub`)         |
 * | batch     | `batch`      | `--batch-axis`       | —               | `batch_size` (JSON only)                         | `batch`            | `--batch-size` (`-b`)           |
 *
 * The last three are llama-server's throughput knobs (issue 17 part 3; flash
 * attention the embedded provider has too, issue 14): null leaves them to the
 * build (flash attention `auto`, 512, 2048), and their JSON keys appear only
 * when set, so a recipe without them hashes as before.
 */
import { Schema } from "effect"

/** KV-cache bits: 4 (q4_0), 8 (q8_0), or null = unset (provider default, f16). SPEC B-1. */
export const KvBits = Schema.NullOr(Schema.Literal(4, 8))
export type KvBits = typeof KvBits.Type

/** KV-cache bits as the flags spell them: `4`, `8`, or `unset` for null (SPEC F-1). */
export const kvBitsText = (b: KvBits): "4" | "8" | "unset" => (b === null ? "unset" : b === 4 ? "4" : "8")

/** Parses `4`, `8` or `unset` (the inverse of kvBitsText); undefined for anything else. */
export const parseKvBits = (s: string): KvBits | undefined => (s === "4" ? 4 : s === "8" ? 8 : s === "unset" ? null : undefined)

/** ggml's name of the KV-cache type for kv-bits: `q4_0`, `q8_0`, or `f16` when unset (llama.cpp `--cache-type-k/-v`). */
export const kvCacheType = (b: KvBits): "q4_0" | "q8_0" | "f16" => (b === 4 ? "q4_0" : b === 8 ? "q8_0" : "f16")

/** The same type as ggml (and node-llama-cpp's `GgmlType`) names it: `Q4_0`, `Q8_0`, `F16`. */
export const kvGgmlType = (b: KvBits): "Q4_0" | "Q8_0" | "F16" => (b === 4 ? "Q4_0" : b === 8 ? "Q8_0" : "F16")

/**
 * One Stage 2 cell: the serving knobs a provider is started with (SPEC B-1).
 * `null` everywhere = the provider's defaults (Stage 1, SPEC A-3).
 * - kvBits: KV-cache bits (null = unset)
 * - maxContext: context cap in tokens (`max_context_override`)
 * - maxBatch: requests decoded in parallel (`max_concurrency_override`)
 * - threads: CPU threads, only for providers that have the setting (SPEC B-1)
 * - flashAttn, ubatch, batch: flash attention (on/off; llama-server and embedded),
 *   llama-server's micro-batch and logical batch sizes in tokens (issue 17 part 3,
 *   issue 14); null = the build's default
 */
export class Knobs extends Schema.Class<Knobs>("Knobs")({
  kvBits: KvBits,
  maxContext: Schema.NullOr(Schema.Int),
  maxBatch: Schema.NullOr(Schema.Int),
  threads: Schema.NullOr(Schema.Int),
  flashAttn: Schema.optionalWith(Schema.NullOr(Schema.Boolean), { default: () => null }),
  ubatch: Schema.optionalWith(Schema.NullOr(Schema.Int), { default: () => null }),
  batch: Schema.optionalWith(Schema.NullOr(Schema.Int), { default: () => null })
}) {
  /** The provider's defaults (Stage 1, SPEC A-3). */
  static readonly defaults = new Knobs({ kvBits: null, maxContext: null, maxBatch: null, threads: null })
}

/** Human form of a cell, e.g. `kv=unset ctx=2048 batch=1 threads=2` (SPEC F-1: nil kv-bits shows `unset`). */
export const describeKnobs = (k: Knobs): string =>
  [
    `kv=${kvBitsText(k.kvBits)}`,
    `ctx=${k.maxContext ?? "default"}`,
    `batch=${k.maxBatch ?? "default"}`,
    ...(k.threads === null ? [] : [`threads=${k.threads}`]),
    ...(k.flashAttn === null ? [] : [`fa=${k.flashAttn ? "on" : "off"}`]),
    ...(k.ubatch === null ? [] : [`ubatch=${k.ubatch}`]),
    ...(k.batch === null ? [] : [`batch-size=${k.batch}`])
  ].join(" ")
