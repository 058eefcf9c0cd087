import { Effect } from "effect"
import { SynthFailed } from "../domain/AutotuneError.js"

/** Weight quantization of a synthetic model. */
export type Quant = "q4_0" | "q8_0" | "f16"

/** What to write: parameter count (absolute), quantization, PRNG seed, output path. */
export interface SynthOptions {
  readonly params: number
  readonly quant: Quant
  readonly seed: number
  readonly outPath: string
}

/** What was written. */
export interface SynthResult {
  readonly path: string
  readonly paramCount: number
  readonly bytes: number
}

/** PLACEHOLDER: replaced by the GGUF writer. */
export const writeSyntheticModel = (o: SynthOptions): Effect.Effect<SynthResult, SynthFailed> =>
  Effect.fail(new SynthFailed({ message: `not implemented: ${o.outPath}` }))
