/**
 * Re-checks a recipe (SPEC F-2) on this machine: starts the provider with
 * exactly the recommended model and knobs, re-probes it with fresh replicates
 * at the recipe's target context and gate, and reports whether it still passes
 * and how far its tok/s moved. Run it after applying a recipe or after an
 * OS / provider upgrade.
 *
 *   npx tsx examples/verify-recipe.ts --json result.json          # a `tune --json` document
 *   npx tsx examples/verify-recipe.ts --db autotune.db --run <id>  # a run in the SQLite file
 *   [--replicates N] [--max-tokens N]   (default: the recipe's replicates and reply length)
 *
 * The provider, model file and reply length come from the recipe's serve
 * command. From a run id, the model file must also still be the one measured
 * (parameter count and file size recorded with the trial), so a replaced file
 * fails at once rather than by its speed.
 * Exit 0 when the recipe still passes the gate, 1 (with the reason) when it
 * does not, 64 for bad input.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Option, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import {
  describeKnobs,
  embedded,
  formatParams,
  modelParamCount,
  Inputs,
  Knobs,
  llamaServer,
  NO_OPTIONAL_FLAGS,
  macProvider,
  notesOf,
  type ProviderAdapter,
  ProviderLive,
  StoredRecommendation,
  runTrial,
  TrialStore,
  UsageError
} from "llm-autotune"

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}

/** Splits a serve command as `shellQuote` wrote it (words, some in single quotes). */
const shellWords = (cmd: string): Array<string> =>
  [...cmd.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : m[2]!))

/** The value after `flag` in `words`, if any. */
const after = (words: ReadonlyArray<string>, ...flags: ReadonlyArray<string>) => {
  const i = words.findIndex((w) => flags.includes(w))
  return i >= 0 ? words[i + 1] : undefined
}

/**
 * How the recipe was launched, from its serve command (F-1): the provider
 * (`autotune` → embedded; `llama-server`; a binary with a threads knob →
 * embedded run by `--provider-bin`; else macprovider), the model file as the
 * provider got it, and the probe's reply length, which the context size was
 * built from (ceil(cap × 1.05) + max_tokens per request, × slots for llama-server).
 */
const launchOf = (rec: StoredRecommendation) => {
  const words = shellWords(rec.serve_command)
  const binary = words[0]!
  const name = path.basename(binary)
  const adapter: ProviderAdapter = name === "autotune"
    ? embedded(null)
    : name === "llama-server"
    ? llamaServer(binary, NO_OPTIONAL_FLAGS) // asked for its flags below (probe)
    : rec.knobs.threads !== undefined
    ? embedded(binary)
    : macProvider(binary)
  const model = after(words, "--model", "-m") ?? rec.model
  const cap = rec.knobs.max_context_override ?? rec.target_context
  const perRequest = name === "llama-server"
    ? Number(after(words, "--ctx-size")) / Number(after(words, "--parallel") ?? 1)
    : adapter.name === "embedded"
    ? Number(after(words, "--max-context"))
    : Number.NaN
  const derived = perRequest - Math.ceil(cap * 1.05)
  return { adapter, model, maxTokens: Number.isInteger(derived) && derived > 0 ? derived : 64 }
}

/** The parts of a `--json` document (F-2) a recipe is verified from. */
const RecipeOfDocument = Schema.Struct({ inputs: Inputs, recommendation: Schema.NullOr(StoredRecommendation) })

/** The recipe to verify: its recommendation and the inputs it was measured with. */
const loadRecipe = Effect.gen(function*() {
  const json = arg("json")
  const db = arg("db")
  if (json !== undefined) {
    // Only what a recipe needs, read from a document of any version (older ones lack the SPEC N fields).
    const doc = yield* Schema.decodeUnknown(Schema.parseJson(RecipeOfDocument))(fs.readFileSync(json, "utf8")).pipe(
      Effect.mapError((e) => new UsageError({ flag: "json", message: `--json ${json}: not a tune document: ${e.message}` }))
    )
    if (doc.recommendation === null) return yield* new UsageError({ flag: "json", message: `--json ${json}: the run has no recommendation` })
    // A JSON document does not record the model file's size: only the re-probe can tell.
    return { recommendation: doc.recommendation, inputs: doc.inputs, measuredAs: null }
  }
  const runId = arg("run")
  if (db === undefined || runId === undefined || !fs.existsSync(db)) {
    return yield* new UsageError({ flag: "db", message: "give --json <document> or --db <existing sqlite file> --run <run id>" })
  }
  const run = yield* Effect.flatMap(TrialStore, (s) => s.run(runId)).pipe(Effect.provide(TrialStore.layer(db)))
  if (Option.isNone(run) || run.value.recommendation_json === null) {
    return yield* new UsageError({ flag: "run", message: `--run ${runId}: no such run with a recommendation in ${db}` })
  }
  // What the run measured the model as (size and file length), to tell a replaced file from a slower machine.
  const measured = yield* Effect.flatMap(TrialStore, (s) => s.trials(runId)).pipe(Effect.provide(TrialStore.layer(db)))
  const recommendation = Schema.decodeUnknownSync(Schema.parseJson(StoredRecommendation))(run.value.recommendation_json)
  const row = measured.find((t) => t.model === recommendation.model && t.fits === 1)
  return {
    recommendation,
    inputs: Schema.decodeUnknownSync(Schema.parseJson(Inputs))(run.value.inputs_json),
    measuredAs: row === undefined ? null : { params: row.model_params, bytes: row.model_bytes }
  }
})

const program = Effect.gen(function*() {
  const { inputs, measuredAs, recommendation: rec } = yield* loadRecipe
  const launch = launchOf(rec)
  const { maxTokens, model } = launch
  // Asks the binary what it accepts (llama-server's optional flags), as a tune does before it starts candidates.
  const adapter = yield* launch.adapter.probe
  const isFile = fs.statSync(model, { throwIfNoEntry: false })?.isFile() === true
  if (adapter.name !== "macprovider" && !isFile) {
    return yield* new UsageError({ flag: "json", message: `the recipe's model file ${model} does not exist here` })
  }
  // The file the recipe names must still be the one measured (SPEC A-4 size; file length).
  if (measuredAs !== null && isFile) {
    const now = { params: yield* modelParamCount(model), bytes: fs.statSync(model).size }
    if ((measuredAs.params !== null && now.params !== measuredAs.params) || (measuredAs.bytes !== null && now.bytes !== measuredAs.bytes)) {
      yield* Console.error(
        `FAILED: the recipe's model file changed since it was measured: ${formatParams(measuredAs.params)}, ${measuredAs.bytes} bytes → ` +
          `${formatParams(now.params)}, ${now.bytes} bytes (${model})`
      )
      process.exitCode = 1
      return
    }
  }
  const knobs = new Knobs({
    kvBits: rec.knobs.kv_bits,
    maxContext: rec.knobs.max_context_override,
    maxBatch: rec.knobs.max_concurrency_override,
    threads: rec.knobs.threads ?? null
  })
  const replicates = Number(arg("replicates") ?? rec.replicates)
  const outcome = yield* runTrial(
    {
      adapter,
      targetContext: rec.target_context,
      maxTokens: Number(arg("max-tokens") ?? maxTokens),
      gateTtftMs: inputs.gate_ttft_ms,
      requestTimeoutMs: inputs.gate_ttft_ms + 120_000,
      readyTimeoutMs: 300_000,
      logDir: path.join(os.tmpdir(), "llm-autotune-examples", "logs"),
      estimate: false,
      memoryLimitGiB: null,
      maxBackgroundCores: null
    },
    { id: rec.model, model, rank: 1, paramCount: null, ggufFile: isFile, fileBytes: isFile ? fs.statSync(model).size : null },
    knobs,
    replicates,
    null
  )
  const moved = outcome.tpsMedian !== null && rec.tps_median !== null
    ? `${((outcome.tpsMedian / rec.tps_median - 1) * 100).toFixed(1)} %`
    : "n/a"
  yield* Console.log(
    `recipe ${rec.model} on ${adapter.name} (${describeKnobs(knobs)}) at ${rec.target_context} tokens, gate ${inputs.gate_ttft_ms} ms\n` +
      `  then: ${rec.tps_median?.toFixed(1)} tok/s, TTFT p95 ${rec.ttft_p95_ms?.toFixed(0)} ms over ${rec.replicates}\n` +
      `  now:  ${outcome.tpsMedian?.toFixed(1) ?? "n/a"} tok/s (${moved}), TTFT p95 ${outcome.ttftP95Ms?.toFixed(0) ?? "n/a"} ms over ${outcome.samples.length}`
  )
  if (outcome.verdict._tag !== "Fits") {
    yield* Console.error(`FAILED: the recipe no longer passes: ${notesOf(outcome.verdict)}`)
    process.exitCode = 1
  } else {
    yield* Console.log("OK: the recipe still passes the gate")
  }
}).pipe(
  Effect.catchTag("UsageError", (e) => Console.error(e.message).pipe(Effect.zipRight(Effect.sync(() => (process.exitCode = 64))))),
  Effect.provide(Layer.mergeAll(ProviderLive))
)

NodeRuntime.runMain(program)
