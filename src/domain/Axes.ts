/** The Stage 2 axes (SPEC B-1): parsed strictly from their flags, and their cells in a fixed order (B-2). */
import { Effect } from "effect"
import { UsageError } from "./AutotuneError.js"
import { Knobs, type KvBits, parseKvBits } from "./Knobs.js"
import { MAX_SLOTS_OR_THREADS, MAX_TARGET_CONTEXT } from "./Limits.js"

/** Parsed Stage 2 axes (SPEC B-1). Each array is non-empty; maxContext is sorted ascending. */
export interface Axes {
  readonly kvBits: ReadonlyArray<KvBits>
  readonly maxContext: ReadonlyArray<number>
  readonly maxBatch: ReadonlyArray<number>
  /** Empty when the provider has no thread-count setting. */
  readonly threads: ReadonlyArray<number>
  /**
   * The throughput knobs (issue 17 part 3): `--flash-attn-axis` (on = true,
   * off = false; llama-server and, issue 14, embedded), and llama-server's
   * `--ubatch-axis`, `--batch-axis` (tokens). Absent
   * or empty: not searched (the build's default).
   */
  readonly flashAttn?: ReadonlyArray<boolean>
  readonly ubatch?: ReadonlyArray<number>
  readonly batch?: ReadonlyArray<number>
}

const fail = (flag: string, message: string) => Effect.fail(new UsageError({ flag, message: `--${flag} ${message}` }))

/**
 * Splits a comma list strictly (SPEC B-1): no empty cells ("stray commas"), no
 * duplicates, each cell parsed by `cell`. Fails with UsageError naming `flag`.
 */
const splitStrict = <A>(
  flag: string,
  raw: string,
  cell: (s: string) => A | undefined,
  expected: string
): Effect.Effect<ReadonlyArray<A>, UsageError> =>
  Effect.gen(function*() {
    const parts = raw.split(",").map((s) => s.trim())
    if (parts.some((p) => p === "")) {
      return yield* fail(flag, `contains an empty cell; check for stray commas (got "${raw}")`)
    }
    const out: Array<A> = []
    for (const p of parts) {
      const v = cell(p)
      if (v === undefined) return yield* fail(flag, `has a bad cell "${p}": expected ${expected}`)
      if (out.includes(v)) return yield* fail(flag, `has a duplicate cell "${p}"`)
      out.push(v)
    }
    return out
  })

/** A positive integer up to `max`, or undefined. */
const positiveInt = (max: number) => (s: string): number | undefined =>
  /^[0-9]+$/.test(s) && Number(s) > 0 && Number(s) <= max ? Number(s) : undefined

/** `--kv-bits-axis`: cells from {4, 8, unset}; default `unset` only (no kv-bits prior, SPEC B-1). */
export const parseKvBitsAxis = (raw: string) =>
  splitStrict<KvBits>("kv-bits-axis", raw, parseKvBits, "4, 8 or unset")

/**
 * `--max-context-axis`: absolute caps in tokens, each a positive integer ≥ targetContext,
 * sorted ascending; the empty string means `[targetContext]` (SPEC B-1).
 */
export const parseMaxContextAxis = (raw: string, targetContext: number) =>
  raw.trim() === ""
    ? Effect.succeed([targetContext] as ReadonlyArray<number>)
    : splitStrict("max-context-axis", raw, positiveInt(MAX_TARGET_CONTEXT), `a positive integer up to ${MAX_TARGET_CONTEXT}`).pipe(
      Effect.flatMap((cells) => {
        const low = cells.find((c) => c < targetContext)
        return low !== undefined
          ? fail("max-context-axis", `cell ${low} is below --target-context ${targetContext}`)
          : Effect.succeed([...cells].sort((a, b) => a - b) as ReadonlyArray<number>)
      })
    )

/** `--max-batch-axis`: positive integers (SPEC B-1), default `1`. */
export const parseMaxBatchAxis = (raw: string) =>
  splitStrict("max-batch-axis", raw, positiveInt(MAX_SLOTS_OR_THREADS), `a positive integer up to ${MAX_SLOTS_OR_THREADS}`)

/** `--threads-axis`: positive integers (SPEC B-1), default the core count. */
export const parseThreadsAxis = (raw: string) =>
  splitStrict("threads-axis", raw, positiveInt(MAX_SLOTS_OR_THREADS), `a positive integer up to ${MAX_SLOTS_OR_THREADS}`)

/** `--flash-attn-axis`: `on`, `off` (issue 17 part 3: measured, not assumed; `auto` regresses on some CPUs). */
export const parseFlashAttnAxis = (raw: string) =>
  splitStrict<boolean>("flash-attn-axis", raw, (s) => (s === "on" ? true : s === "off" ? false : undefined), "on or off")

/** `--ubatch-axis`: llama-server's `--ubatch-size` cells, positive integers (tokens). */
export const parseUbatchAxis = (raw: string) =>
  splitStrict("ubatch-axis", raw, positiveInt(MAX_TARGET_CONTEXT), `a positive integer up to ${MAX_TARGET_CONTEXT}`)

/** `--batch-axis`: llama-server's `--batch-size` cells, positive integers (tokens). */
export const parseBatchAxis = (raw: string) =>
  splitStrict("batch-axis", raw, positiveInt(MAX_TARGET_CONTEXT), `a positive integer up to ${MAX_TARGET_CONTEXT}`)

/** llama-server's `--batch-size` when not given (`llama-server --help`: "default: 2048"), tokens. */
export const LLAMA_SERVER_DEFAULT_BATCH = 2048

/** An axis's cells, or one "not searched" (null) cell when it is absent or empty. */
const orUnset = <A>(xs: ReadonlyArray<A> | undefined): ReadonlyArray<A | null> => (xs === undefined || xs.length === 0 ? [null] : xs)

/**
 * The Stage 2 cells: the Cartesian product in axis order kv-bits × max-context ×
 * max-batch × threads × flash-attn × ubatch × batch, first axis outermost
 * (SPEC B-2: deterministic order). A quantized KV cache with flash attention
 * off is left out: llama.cpp refuses a quantized V cache without it, so the
 * cell could only fail to start; so is a micro-batch larger than the batch
 * (its cell's, else LLAMA_SERVER_DEFAULT_BATCH: llama.cpp clamps it to the
 * batch, so it would run another cell's configuration).
 */
export const cells = (axes: Axes): ReadonlyArray<Knobs> =>
  axes.kvBits.flatMap((kvBits) =>
    axes.maxContext.flatMap((maxContext) =>
      axes.maxBatch.flatMap((maxBatch) =>
        orUnset(axes.threads).flatMap((threads) =>
          orUnset(axes.flashAttn).flatMap((flashAttn) =>
            kvBits !== null && flashAttn === false ? [] : orUnset(axes.ubatch).flatMap((ubatch) =>
              orUnset(axes.batch).flatMap((batch) =>
                ubatch !== null && ubatch > (batch ?? LLAMA_SERVER_DEFAULT_BATCH)
                  ? []
                  : [new Knobs({ kvBits, maxContext, maxBatch, threads, flashAttn, ubatch, batch })]
              )
            )
          )
        )
      )
    )
  )
