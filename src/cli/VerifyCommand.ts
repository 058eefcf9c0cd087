/**
 * `autotune verify <run-id | recipe.json> [--db-path <file>] [--replicates N]
 * [--gate-ttft-ms X] [--json]` (SPEC R-3): the flags and where the recipe
 * comes from; the work is `steps/Verify.ts`.
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { RecipeMiss, UsageError } from "../domain/AutotuneError.js"
import { decodeRunIdentity } from "../domain/TrialKey.js"
import { Inputs, Machine, StoredRecommendation } from "../domain/TuneDocument.js"
import { MAX_REPLICATES, MAX_TIMER_MS } from "../domain/Limits.js"
import { withExistingStore } from "../services/TrialStore.js"
import { resolveCandidates } from "../steps/Candidates.js"
import { launchOf, MIN_COMPARED_REPLICATES, type RecordedRecipe, renderVerify, verifyRecipe } from "../steps/Verify.js"
import { defaultDbPath } from "../system/UserDirs.js"
import { integerOption } from "./CliOptions.js"

const target = Args.text({ name: "run-id | recipe.json" }).pipe(
  Args.withDescription("a run in the database (autotune history lists them), or a `tune --json` document"))
const opt = {
  dbPath: Options.text("db-path").pipe(Options.optional,
    Options.withDescription("SQLite file for runs and trials (default <user data dir>/llm-autotune/autotune.db, as for tune)")),
  replicates: integerOption("replicates", { min: 1, max: MAX_REPLICATES }).pipe(Options.optional,
    Options.withDescription("requests to probe with (default: the recipe's replicates, at least 3)")),
  gateTtftMs: integerOption("gate-ttft-ms", { min: 1, max: MAX_TIMER_MS }).pipe(Options.optional,
    Options.withDescription("time-to-first-token gate, in ms (default: the recipe's)")),
  json: Options.boolean("json").pipe(Options.withDescription("print the comparison as one JSON document"))
}

/** The parts of a `--json` document (F-2) a recipe is verified from, in a document of any version. */
const RecipeOfDocument = Schema.Struct({ machine: Machine, inputs: Inputs, recommendation: Schema.NullOr(StoredRecommendation) })

/**
 * The recipe `target` names: a `tune --json` document when it is a file, else
 * a run of the database at `dbPath`. Fails with UsageError naming the input
 * when the document does not decode or has no recommendation, or the run does
 * not exist or has none.
 */
const loadRecipe = (targetText: string, dbPath: string) =>
  Effect.gen(function*() {
    if (fs.statSync(targetText, { throwIfNoEntry: false })?.isFile() === true) {
      const doc = yield* Schema.decodeUnknown(Schema.parseJson(RecipeOfDocument))(fs.readFileSync(targetText, "utf8")).pipe(
        Effect.mapError((e) => new UsageError({ flag: "recipe", message: `${targetText}: not a tune --json document: ${e.message}` }))
      )
      if (doc.recommendation === null) return yield* new UsageError({ flag: "recipe", message: `${targetText}: the run has no recommendation` })
      return { recommendation: doc.recommendation, inputs: doc.inputs, machine: doc.machine, identity: null } satisfies RecordedRecipe
    }
    return yield* withExistingStore(dbPath, (store) =>
      Effect.gen(function*() {
        const run = yield* store.run(targetText)
        if (Option.isNone(run)) {
          return yield* new UsageError({ flag: "run-id", message: `${targetText}: no such file, and no such run in ${dbPath} (autotune history lists the runs)` })
        }
        const r = run.value
        if (r.recommendation_json === null) return yield* new UsageError({ flag: "run-id", message: `run ${targetText} has no recommendation` })
        const decode = <A, I>(s: Schema.Schema<A, I>, text: string, what: string) =>
          Schema.decodeUnknown(Schema.parseJson(s))(text).pipe(
            Effect.mapError((e) => new UsageError({ flag: "run-id", message: `run ${targetText}: its ${what} cannot be read: ${e.message}` }))
          )
        return {
          recommendation: yield* decode(StoredRecommendation, r.recommendation_json, "recommendation"),
          inputs: yield* decode(Inputs, r.inputs_json, "inputs"),
          machine: yield* decode(Machine, r.machine_json, "machine"),
          identity: decodeRunIdentity(r.identity_json)
        } satisfies RecordedRecipe
      }))
  })

/**
 * `autotune verify` (SPEC R-3): prints the comparison (or `--json`), exits 0
 * when the recipe holds; fails with RecipeMiss (exit 1 regressed, 2
 * infeasible now) or UsageError (exit 64) on bad input.
 */
export const verifyCommand = Command.make("verify", { target, ...opt }, (f) =>
  Effect.gen(function*() {
    const db = Option.getOrElse(f.dbPath, defaultDbPath)
    const recipe = yield* loadRecipe(f.target, db)
    const rec = recipe.recommendation
    const launch = launchOf(rec)
    // Asks the binary what it accepts (llama-server's optional flags), as a tune does before it starts candidates.
    const adapter = yield* launch.adapter.probe
    const found = yield* resolveCandidates([launch.model], adapter.name).pipe(Effect.option)
    const candidate = Option.match(found, { onNone: () => null, onSome: ([c]) => ({ ...c!, id: rec.model }) })
    const gate = Option.getOrElse(f.gateTtftMs, () => recipe.inputs.gate_ttft_ms)
    const policy = recipe.identity?.policy
    const result = yield* verifyRecipe({
      adapter,
      targetContext: rec.target_context,
      maxTokens: policy?.max_tokens ?? launch.maxTokens,
      gateTtftMs: gate,
      requestTimeoutMs: Math.max(policy?.request_timeout_ms ?? 0, gate + 120_000),
      readyTimeoutMs: policy?.ready_timeout_ms ?? 300_000,
      logDir: path.join(f.dbPath._tag === "Some" ? path.dirname(path.resolve(db)) : os.tmpdir(), "logs", `verify-${Date.now()}`),
      estimate: false,
      memoryLimitGiB: null,
      maxBackgroundCores: null
    }, recipe, candidate, Option.getOrElse(f.replicates, () => Math.max(MIN_COMPARED_REPLICATES, rec.replicates)))
    yield* Console.log(f.json ? JSON.stringify(result, null, 2) : renderVerify(result))
    if (result.verdict !== "holds") {
      return yield* new RecipeMiss({
        verdict: result.verdict,
        message: result.verdict === "infeasible"
          ? `the recipe is infeasible now: ${result.reason}`
          : `the recipe regressed: ${[...result.changes, ...result.regressions].join("; ")}`
      })
    }
  })).pipe(Command.withDescription("Re-probe a recorded recipe and compare: exit 0 holds, 1 regressed, 2 infeasible now (SPEC R-3)"))
