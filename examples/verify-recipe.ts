/**
 * Re-checks a recipe (SPEC F-2) on this machine: starts the provider with
 * exactly the recommended model and knobs, re-probes it with fresh replicates
 * at the recipe's target context and gate, and reports whether it still passes
 * and how far its tok/s moved. Run it after applying a recipe or after an
 * OS / provider upgrade.
 *
 *   npx tsx examples/verify-recipe.ts --json result.json          # a `tune --json` document
 *   npx tsx examples/verify-recipe.ts --db autotune.db --run <id>  # a run in the SQLite file
 *   [--replicates 3] [--max-tokens 64]
 *
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
  Inputs,
  Knobs,
  llamaServer,
  macProvider,
  type ProviderAdapter,
  ProviderLive,
  RecommendationJson,
  runTrial,
  TrialStore,
  TuneDocument,
  UsageError
} from "llm-autotune"

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}

/** The provider of a recipe, from the first word of its serve command (F-1): autotune, llama-server, else macprovider. */
const adapterOf = (serveCommand: string): ProviderAdapter => {
  const binary = serveCommand.split(" ")[0]!.replace(/^'(.*)'$/, "$1")
  const name = path.basename(binary)
  return name === "autotune" ? embedded(null) : name === "llama-server" ? llamaServer(binary) : macProvider(binary)
}

/** The recipe to verify: its recommendation and the inputs it was measured with. */
const loadRecipe = Effect.gen(function*() {
  const json = arg("json")
  const db = arg("db")
  if (json !== undefined) {
    const doc = yield* Schema.decodeUnknown(Schema.parseJson(TuneDocument))(fs.readFileSync(json, "utf8")).pipe(
      Effect.mapError((e) => new UsageError({ flag: "json", message: `--json ${json}: not a tune document: ${e.message}` }))
    )
    if (doc.recommendation === null) return yield* new UsageError({ flag: "json", message: `--json ${json}: the run has no recommendation` })
    return { recommendation: doc.recommendation, inputs: doc.inputs }
  }
  const runId = arg("run")
  if (db === undefined || runId === undefined || !fs.existsSync(db)) {
    return yield* new UsageError({ flag: "db", message: "give --json <document> or --db <existing sqlite file> --run <run id>" })
  }
  const run = yield* Effect.flatMap(TrialStore, (s) => s.run(runId)).pipe(Effect.provide(TrialStore.layer(db)))
  if (Option.isNone(run) || run.value.recommendation_json === null) {
    return yield* new UsageError({ flag: "run", message: `--run ${runId}: no such run with a recommendation in ${db}` })
  }
  return {
    recommendation: Schema.decodeUnknownSync(Schema.parseJson(RecommendationJson))(run.value.recommendation_json),
    inputs: Schema.decodeUnknownSync(Schema.parseJson(Inputs))(run.value.inputs_json)
  }
})

const program = Effect.gen(function*() {
  const { inputs, recommendation: rec } = yield* loadRecipe
  const adapter = adapterOf(rec.serve_command)
  const file = path.resolve(rec.model)
  const model = fs.existsSync(file) ? file : rec.model
  const knobs = new Knobs({
    kvBits: rec.knobs.kv_bits,
    maxContext: rec.knobs.max_context_override,
    maxBatch: rec.knobs.max_concurrency_override,
    threads: rec.knobs.threads ?? null
  })
  const replicates = Number(arg("replicates") ?? 3)
  const outcome = yield* runTrial(
    {
      adapter,
      targetContext: rec.target_context,
      maxTokens: Number(arg("max-tokens") ?? 64),
      gateTtftMs: inputs.gate_ttft_ms,
      requestTimeoutMs: inputs.gate_ttft_ms + 120_000,
      readyTimeoutMs: 300_000,
      logDir: path.join(os.tmpdir(), "llm-autotune-examples", "logs"),
      estimate: false,
      memoryLimitGiB: null
    },
    { id: rec.model, model, rank: 1, paramCount: null, ggufFile: fs.existsSync(file) },
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
  if (outcome.reason !== null) {
    yield* Console.error(`FAILED: the recipe no longer passes: ${outcome.reason}`)
    process.exitCode = 1
  } else {
    yield* Console.log("OK: the recipe still passes the gate")
  }
}).pipe(
  Effect.catchTag("UsageError", (e) => Console.error(e.message).pipe(Effect.zipRight(Effect.sync(() => (process.exitCode = 64))))),
  Effect.provide(Layer.mergeAll(ProviderLive))
)

NodeRuntime.runMain(program)
