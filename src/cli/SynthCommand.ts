/** `autotune synth`: writes a synthetic GGUF model (gguf/SyntheticModel.ts). */
import { Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { UsageError } from "../domain/AutotuneError.js"
import { parseParamCount } from "../gguf/ParamCount.js"
import { type Quant, writeSyntheticModel } from "../gguf/SyntheticModel.js"
import { integerOption } from "./CliOptions.js"

/** Parameter counts the synthetic writer supports within 10 % (src/gguf/LlamaShape.ts). */
const MIN_SYNTH_PARAMS = 5e6
const MAX_SYNTH_PARAMS = 3.3e9
const synthParams = Options.text("params").pipe(
  Options.withDescription("parameter count, e.g. 15M, 130M, 1.1B"))
const synthQuant = Options.choice("quant", ["q4_0", "q8_0", "f16"]).pipe(Options.withDefault("q4_0" as const),
  Options.withDescription("weight quantization (default q4_0)"))
const synthOut = Options.file("out").pipe(Options.withDescription("output GGUF file"))
const synthSeed = integerOption("seed").pipe(Options.withDefault(1),
  Options.withDescription("PRNG seed; the same seed writes the same file (default 1)"))

/** `autotune synth --params 130M [--quant q4_0|q8_0|f16] --out <file> [--seed N]`: prints the written file's summary as JSON. */
export const synthCommand = Command.make("synth", { params: synthParams, quant: synthQuant, out: synthOut, seed: synthSeed },
  (o) => Effect.gen(function*() {
    const params = yield* Option.match(parseParamCount(o.params), {
      onNone: () => Effect.fail(new UsageError({ flag: "params", message: `--params must look like 15M or 1.1B, got "${o.params}"` })),
      onSome: Effect.succeed
    })
    if (params < MIN_SYNTH_PARAMS || params > MAX_SYNTH_PARAMS) {
      return yield* new UsageError({
        flag: "params",
        message: `--params must be between 5M and 3.3B (the shapes this writer keeps within 10 %), got ${o.params}`
      })
    }
    const r = yield* writeSyntheticModel({ params, quant: o.quant as Quant, seed: o.seed, outPath: o.out })
    yield* Console.log(JSON.stringify(r))
  })
).pipe(Command.withDescription("Write a synthetic llama-architecture GGUF model with random weights"))

