/**
 * The `autotune` command tree: `tune`, `serve`, `synth`. Handlers only parse
 * and call into the pipeline; failures are printed once, to stderr, here.
 */
import { Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { integerOption } from "./CliOptions.js"
import { UsageError } from "./domain/AutotuneError.js"
import { AUTOTUNE_VERSION } from "./domain/Versions.js"
import { writeSyntheticModel, type Quant } from "./gguf/SyntheticModel.js"
import { serve } from "./serve/Serve.js"
import { parseParamCount } from "./gguf/ParamCount.js"
import { tuneCommand } from "./TuneCommand.js"
import { reportCommand } from "./ReportCommand.js"

// ---- serve -----------------------------------------------------------------
const serveModel = Options.file("model", { exists: "either" }).pipe(
  Options.withDescription("GGUF model file to serve"))
const servePort = integerOption("port", { min: 1, max: 65535 }).pipe(Options.withDefault(8080),
  Options.withDescription("TCP port to listen on (default 8080)"))
const serveHost = Options.text("host").pipe(Options.withDefault("127.0.0.1"),
  Options.withDescription("address to bind (default 127.0.0.1)"))
const noJoin = Options.boolean("no-join").pipe(
  Options.withDescription("do not join a coordinator pool (the embedded provider never joins one; accepted for macprovider-cli compatibility)"))
const kvBits = Options.choice("kv-bits", ["4", "8"]).pipe(Options.optional,
  Options.withDescription("KV-cache bits: 4 (q4_0) or 8 (q8_0); unset = f16"))
const maxContext = integerOption("max-context", { min: 1 }).pipe(Options.optional,
  Options.withDescription("context size per sequence, in tokens (default: the model's training context)"))
const maxBatch = integerOption("max-batch", { min: 1 }).pipe(Options.withDefault(1),
  Options.withDescription("how many requests decode in parallel (sequences), default 1"))
const threads = integerOption("threads", { min: 1 }).pipe(Options.optional,
  Options.withDescription("CPU threads for inference (default: the core count)"))

const serveCommand = Command.make("serve",
  { model: serveModel, port: servePort, host: serveHost, noJoin, kvBits, maxContext, maxBatch, threads },
  (o) => Effect.gen(function*() {
    return yield* serve({
      modelPath: o.model, port: o.port, host: o.host, maxBatch: o.maxBatch, maxContext: o.maxContext, threads: o.threads,
      kvBits: Option.map(o.kvBits, (b) => (b === "4" ? 4 : 8) as 4 | 8)
    }).pipe(Effect.scoped)
  })
).pipe(Command.withDescription("Serve a GGUF model over an OpenAI-compatible HTTP API (the embedded provider)"))

// ---- synth -----------------------------------------------------------------
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

const synthCommand = Command.make("synth", { params: synthParams, quant: synthQuant, out: synthOut, seed: synthSeed },
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

// ---- root ------------------------------------------------------------------
const root = Command.make("autotune").pipe(
  Command.withDescription("Find the biggest model this machine can serve well, and the serving knobs for it"),
  Command.withSubcommands([tuneCommand, serveCommand, synthCommand, reportCommand])
)

/** Runs the command tree on `process.argv`. */
export const run = Command.run(root, { name: "autotune", version: AUTOTUNE_VERSION })
