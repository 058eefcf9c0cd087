import { Effect, Option, Scope } from "effect"
import { ServeFailed } from "../domain/AutotuneError.js"

/** Options of `autotune serve` (same surface as `macprovider-cli serve`, SPEC E-5). */
export interface ServeOptions {
  readonly modelPath: string
  readonly port: number
  readonly host: string
  readonly kvBits: Option.Option<4 | 8>
  readonly maxContext: Option.Option<number>
  readonly maxBatch: number
  readonly threads: Option.Option<number>
}

/** PLACEHOLDER: replaced by the embedded server. */
export const serve = (o: ServeOptions): Effect.Effect<never, ServeFailed, Scope.Scope> =>
  Effect.fail(new ServeFailed({ message: `not implemented: ${o.modelPath}` }))
