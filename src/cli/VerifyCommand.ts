/**
 * `autotune verify [<run-id | recipe.json>] [--config <file>] [--db-path <file>]
 * [--replicates N] [--gate-ttft-ms X] [--json]` (SPEC R-3, F-6): the flags and
 * where the recipe comes from; the work is `steps/Verify.ts`.
 */
import { Args, Command, Options } from "@effect/cli"
import { Clock, Console, Effect, Either, Option, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { RecipeMiss, UsageError } from "../domain/AutotuneError.js"
import type { Objective } from "../domain/Objective.js"
import { decodeRunIdentity, type RunIdentity } from "../domain/TrialKey.js"
import { Inputs, Machine, StoredRecommendation } from "../domain/TuneDocument.js"
import { MAX_REPLICATES, MAX_TIMER_MS } from "../domain/Limits.js"
import { withExistingStore } from "../services/TrialStore.js"
import { DEFAULT_MEMORY_HEADROOM } from "../steps/RunTrial.js"
import { resolveCandidates } from "../steps/Candidates.js"
import {
  adapterOfIdentity,
  DEFAULT_VERIFY_TOLERANCE,
  knobsOfRecipe,
  launchOf,
  MIN_COMPARED_REPLICATES,
  type RecordedRecipe,
  renderVerify,
  verifyMissText,
  verifyRecipe
} from "../steps/Verify.js"
import { adapterBinary, type LaunchSpec, type ProviderAdapter } from "../providers/ProviderAdapter.js"
import { holdSignals } from "../system/HoldSignals.js"
import { acquireRunLock, runLockPaths } from "../system/RunLock.js"
import { dataDir, defaultDbPath } from "../system/UserDirs.js"
import { dbPathOption, floatOption, integerOption } from "./CliOptions.js"
import { storedProviderBin } from "./Resume.js"

const target = Args.text({ name: "run-id | recipe.json" }).pipe(Args.optional,
  Args.withDescription("a run in the database (autotune history lists them), or a `tune --json` document (with --config, default: the newest run that ended ok)"))
const opt = {
  config: Options.file("config", { exists: "yes" }).pipe(Options.optional,
    Options.withDescription("start the provider from this config file, as its restart line does (what tune --apply wrote: the embedded provider's config.yaml, a llama-server preset), after checking it holds the recipe (SPEC F-6)")),
  dbPath: dbPathOption,
  replicates: integerOption("replicates", { min: 1, max: MAX_REPLICATES }).pipe(Options.optional,
    Options.withDescription("requests to probe with (default: the recipe's replicates, at least 3)")),
  gateTtftMs: integerOption("gate-ttft-ms", { min: 1, max: MAX_TIMER_MS }).pipe(Options.optional,
    Options.withDescription("time-to-first-token gate, in ms (default: the recipe's)")),
  tolerance: floatOption("tolerance").pipe(Options.withDefault(DEFAULT_VERIFY_TOLERANCE),
    Options.withDescription("how far (a fraction) tok/s may fall or TTFT p95 rise, beyond the noise, before it is a regression (default 0.2, the trial-to-trial variance SPEC §4 reports; never below the recipe's tie band)")),
  json: Options.boolean("json").pipe(Options.withDescription("print the comparison as one JSON document"))
}

/** The parts of a `--json` document (F-2) a recipe is verified from, in a document of any version. */
const RecipeOfDocument = Schema.Struct({
  machine: Machine,
  inputs: Inputs,
  recommendation: Schema.NullOr(StoredRecommendation),
  noise_policy: Schema.optional(Schema.Struct({ max_background_cores: Schema.NullOr(Schema.Number) }))
})

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
      return {
        recipe: { recommendation: doc.recommendation, inputs: doc.inputs, machine: doc.machine, identity: null } satisfies RecordedRecipe,
        maxBackgroundCores: doc.noise_policy?.max_background_cores ?? null,
        givenBin: null
      }
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
        const identity = decodeRunIdentity(r.identity_json)
        return {
          recipe: {
            recommendation: yield* decode(StoredRecommendation, r.recommendation_json, "recommendation"),
            inputs: yield* decode(Inputs, r.inputs_json, "inputs"),
            machine: yield* decode(Machine, r.machine_json, "machine"),
            identity
          } satisfies RecordedRecipe,
          maxBackgroundCores: identity?.policy.max_background_cores ?? null,
          givenBin: storedProviderBin(r.flags_json)
        }
      }))
  })

/**
 * `autotune verify` (SPEC R-3): prints the comparison (or `--json`), exits 0
 * when the recipe holds; fails with RecipeMiss (exit 1 regressed, 2
 * infeasible now), UsageError (exit 64) on bad input, or RunLocked (exit 75)
 * while a tune of the same provider or database runs. Like a tune it holds
 * the run locks and signals for its life (Ctrl-C stops the probe and its
 * provider, exit 130), and measures under the recipe's quiet-machine guard.
 * With `--config <file>` (F-6) the provider is started from that file as its
 * restart line says, once the file is known to hold the recipe (exit 1 naming
 * the keys where it does not); the run defaults to the newest that ended ok.
 */
export const verifyCommand = Command.make("verify", { target, ...opt }, (f) =>
  Effect.gen(function*() {
    if (!(f.tolerance >= 0 && f.tolerance < 1)) {
      return yield* new UsageError({ flag: "tolerance", message: `--tolerance must be a fraction in [0, 1), got ${f.tolerance}` })
    }
    yield* holdSignals
    const db = path.resolve(Option.getOrElse(f.dbPath, defaultDbPath))
    const targetText = Option.isSome(f.target) ? f.target.value : yield* newestRecipe(db, Option.isSome(f.config))
    const { givenBin, maxBackgroundCores, recipe } = yield* loadRecipe(targetText, db)
    const rec = recipe.recommendation
    const launch = launchOf(rec)
    const recorded = recipe.identity?.provider
    // Asks the binary what it accepts (llama-server's optional flags), as a tune does before it starts candidates.
    const probed = yield* (recorded === undefined ? launch.adapter : adapterOfIdentity(recorded, givenBin, launch.adapter)).probe
    const policy = recipe.identity?.policy
    // F-5: the budget the run started its candidates with; a run from before it, its probe length; a document, its inputs.
    const replyTokens = policy !== undefined
      ? policy.reply_tokens ?? policy.max_tokens
      : recipe.inputs.reply_tokens ?? launch.replyTokens
    const spec = { model: launch.model, port: null, knobs: knobsOfRecipe(rec), targetContext: rec.target_context, replyTokens }
    // F-6: from the operator's config file, once it is known to hold this recipe.
    const adapter = Option.isNone(f.config) ? probed : yield* fromConfig(probed, f.config.value, spec, targetText, f.json)
    // One measurement of a provider at a time: a tune of it (or of this database) running now waits for this, or this for it.
    yield* acquireRunLock(runLockPaths(db, adapterBinary(adapter), dataDir()))
    const found = yield* resolveCandidates([launch.model], adapter.name).pipe(Effect.option)
    const candidate = Option.match(found, { onNone: () => null, onSome: ([c]) => ({ ...c!, id: rec.model }) })
    const gate = Option.getOrElse(f.gateTtftMs, () => recipe.inputs.gate_ttft_ms)
    const startedAt = new Date(yield* Clock.currentTimeMillis).toISOString().replace(/[:.]/g, "-")
    const result = yield* verifyRecipe({
      adapter,
      targetContext: rec.target_context,
      // The probe's length as the tune had it (a document does not say: 64, the tune's default, within the budget).
      maxTokens: policy?.max_tokens ?? Math.min(64, replyTokens),
      replyTokens,
      gateTtftMs: gate,
      requestTimeoutMs: Math.max(policy?.request_timeout_ms ?? 0, gate + 120_000),
      readyTimeoutMs: policy?.ready_timeout_ms ?? 300_000,
      logDir: path.join(path.dirname(db), "logs", `verify-${startedAt}`),
      estimate: policy?.estimate ?? true,
      memoryLimitGiB: policy?.memory_limit_gib ?? null,
      // C-1, C-3: the recipe is checked as it was tuned: at its users, against its objective and memory headroom.
      objective: recipeObjective(recipe.inputs, policy, gate),
      memoryHeadroom: policy?.memory_headroom ?? recipe.inputs.memory_headroom ?? DEFAULT_MEMORY_HEADROOM,
      maxBackgroundCores
    }, recipe, candidate, Option.getOrElse(f.replicates, () => Math.max(MIN_COMPARED_REPLICATES, rec.replicates)), f.tolerance)
    yield* Console.log(f.json ? JSON.stringify(result, null, 2) : renderVerify(result))
    if (result.verdict !== "holds") {
      return yield* new RecipeMiss({
        verdict: result.verdict,
        message: result.verdict === "infeasible" ? `the recipe is infeasible now: ${result.reason}` : `the recipe regressed: ${verifyMissText(result)}`
      })
    }
  }).pipe(Effect.scoped)).pipe(Command.withDescription("Re-probe a recorded recipe and compare: exit 0 holds, 1 regressed, 2 infeasible now (SPEC R-3, F-6)"))

/**
 * The objective a recipe was tuned under (SPEC C-1): its run's policy, else
 * its document's inputs (`concurrency`, `slo_*`); null for a single user. Its
 * TTFT bound is at most `gateMs`, the gate this verification uses.
 */
const recipeObjective = (inputs: Inputs, policy: RunIdentity["policy"] | undefined, gateMs: number): Objective | null => {
  const o = policy !== undefined
    ? policy.objective ?? null
    : inputs.concurrency === undefined && inputs.slo_ttft_p95_ms === undefined && inputs.slo_itl_p95_ms === undefined &&
        inputs.slo_decode_tps === undefined
    ? null
    : {
      streams: inputs.concurrency ?? 1,
      ttft_p95_ms: inputs.slo_ttft_p95_ms ?? inputs.gate_ttft_ms,
      itl_p95_ms: inputs.slo_itl_p95_ms ?? null,
      decode_tps: inputs.slo_decode_tps ?? null
    }
  return o === null ? null : { streams: o.streams, ttftP95Ms: Math.min(o.ttft_p95_ms, gateMs), itlP95Ms: o.itl_p95_ms, decodeTps: o.decode_tps }
}

/**
 * `verify --config` without a run: the newest run of the database that ended
 * ok with a recommendation (SPEC F-6: the recipe an apply wrote). Fails with
 * UsageError when there is none, or when neither a run nor --config is given.
 */
const newestRecipe = (db: string, withConfig: boolean) =>
  withConfig
    ? withExistingStore(db, (store) =>
      Effect.gen(function*() {
        const run = (yield* store.runs()).find((r) => r.exit_reason === "ok" && r.recommendation_json !== null)
        if (run === undefined) {
          return yield* new UsageError({ flag: "config", message: `--config: no run in ${db} ended ok with a recommendation; name the run to verify` })
        }
        return run.run_id
      }))
    : Effect.fail(new UsageError({ flag: "run-id", message: "verify needs a run id or a recipe.json (autotune history lists the runs), or --config <file>" }))

/**
 * The provider as `configFile`'s restart line starts it (F-6), after checking
 * that the file holds the recipe (`spec`): the recipe's own edit of it must
 * change nothing. Fails with UsageError (`config`) when this tool cannot start
 * the provider from a file or cannot read it, or RecipeMiss (regressed, exit
 * 1) naming the keys where the file and the recipe differ.
 */
const fromConfig = (adapter: ProviderAdapter, configFile: string, spec: LaunchSpec, recipeName: string, json: boolean) =>
  Effect.gen(function*() {
    const launchFrom = adapter.config?.launchFrom ?? null
    if (adapter.config === null || launchFrom === null) {
      return yield* new UsageError({ flag: "config", message: `--config: this tool cannot start the ${adapter.name} provider from a config file` })
    }
    const source = yield* Effect.try({
      try: () => new TextDecoder("utf-8", { fatal: true }).decode(fs.readFileSync(configFile)),
      catch: (e) => new UsageError({ flag: "config", message: `--config ${configFile}: cannot be read: ${e instanceof Error ? e.message : String(e)}` })
    })
    const edit = adapter.config.edit(spec, configFile)(source)
    if (Either.isLeft(edit)) return yield* new UsageError({ flag: "config", message: `--config ${configFile}: ${edit.left}` })
    if (edit.right.changed.length > 0) {
      const message = `${configFile} does not hold the recipe of ${recipeName}: it differs in ${edit.right.changed.join(", ")}`
      yield* Console.log(json ? JSON.stringify({ verdict: "regressed", config: configFile, differs: edit.right.changed, reason: message }, null, 2) : `regressed: ${message}`)
      return yield* new RecipeMiss({ verdict: "regressed", message })
    }
    return launchFrom(configFile)
  })
