import { Schema } from "effect"

/** KV-cache bits: 4 (q4_0), 8 (q8_0), or null = unset (provider default, f16). SPEC B-1. */
export const KvBits = Schema.NullOr(Schema.Literal(4, 8))
export type KvBits = typeof KvBits.Type

/**
 * One Stage 2 cell: the serving knobs a provider is started with (SPEC B-1).
 * `null` everywhere = the provider's defaults (Stage 1, SPEC A-3).
 * - kvBits: KV-cache bits (null = unset)
 * - maxContext: context cap in tokens (`max_context_override`)
 * - maxBatch: requests decoded in parallel (`max_concurrency_override`)
 * - threads: CPU threads, only for providers that have the setting (SPEC B-1)
 */
export class Knobs extends Schema.Class<Knobs>("Knobs")({
  kvBits: KvBits,
  maxContext: Schema.NullOr(Schema.Int),
  maxBatch: Schema.NullOr(Schema.Int),
  threads: Schema.NullOr(Schema.Int)
}) {
  /** The provider's defaults (Stage 1, SPEC A-3). */
  static readonly defaults = new Knobs({ kvBits: null, maxContext: null, maxBatch: null, threads: null })
}

/** Human form of a cell, e.g. `kv=unset ctx=2048 batch=1 threads=2` (SPEC F-1: nil kv-bits shows `unset`). */
export const describeKnobs = (k: Knobs): string =>
  [
    `kv=${k.kvBits ?? "unset"}`,
    `ctx=${k.maxContext ?? "default"}`,
    `batch=${k.maxBatch ?? "default"}`,
    ...(k.threads === null ? [] : [`threads=${k.threads}`])
  ].join(" ")
