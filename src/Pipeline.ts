/**
 * One tune run, step by step (SPEC §2): run row → Stage 1 → Stage 2 →
 * recommend, with the run row updated and the result printed on every exit
 * path (Effect.onExit), each candidate provider in its own Scope.
 */
import type { FileSystem, HttpClient } from "@effect/platform"
import { Clock, Console, Effect, type Exit, Ref } from "effect"
import { randomUUID } from "node:crypto"
import * as Fs from "node:fs"
import type { Axes } from "./domain/Axes.js"
import { cells } from "./domain/Axes.js"
import {
  type AllInfeasible,
  type ApplyFailed,
  BudgetExhausted,
  type PreWarmIntegrityFailure,
  type StoreFailed
} from "./domain/AutotuneError.js"
import type { Candidate } from "./domain/Candidate.js"
import { fromExit } from "./domain/ExitReason.js"
import { describeKnobs, Knobs } from "./domain/Knobs.js"
import { TrialRow } from "./domain/Trial.js"
import { encodeTuneDocument, Inputs, type Machine, SPEC_VERSION } from "./domain/TuneDocument.js"
import type { CandidateProvider } from "./services/CandidateProvider.js"
import { TrialStore } from "./services/TrialStore.js"
import { jobState, resolveServiceManager, type ServiceManagerKind } from "./services/ServiceManager.js"
import { applyRecommendation, type ApplyResult } from "./steps/Apply.js"
import { hillClimb } from "./steps/HillClimb.js"
import { restartInstructions } from "./steps/RestartHint.js"
import { buildDocument, type Recommended, renderBlock, serveCommandOf } from "./steps/Recommend.js"
import type { TrialOutcome, TrialSettings } from "./steps/RunTrial.js"
import { runTrial } from "./steps/RunTrial.js"
import { abortOnIntegrity, formatParams, type Rejected, stage1 } from "./steps/Stage1.js"

/** Everything a tune needs, parsed and validated (flags, candidates, machine). */
export interface TunePlan extends TrialSettings {
  readonly candidates: ReadonlyArray<Candidate>
  readonly stage1Replicates: number
  readonly stage2Replicates: number
  readonly axes: Axes
  readonly tpsTieEpsilon: number
  readonly machine: Machine
  readonly json: boolean
  /** `--max-duration` in ms (SPEC H-3), null for no budget. */
  readonly budgetMs: number | null
  /** `--apply` (SPEC F-3): the config file to write and how to tell the operator to restart; null without it. */
  readonly apply: ApplyPlan | null
}

/** Where `--apply` writes (SPEC F-3) and what restart instructions follow it. */
export interface ApplyPlan {
  readonly configPath: string
  readonly serviceManager: ServiceManagerKind | "auto"
  readonly serviceLabel: string
  /** Whether the operator's provider was drained for this run (restored after it, E-2): then no restart is needed. */
  readonly drained?: Effect.Effect<boolean>
}

/** F-2 `inputs` of a plan. */
export const planInputs = (p: TunePlan): Inputs =>
  new Inputs({
    target_context: p.targetContext,
    candidate_models: p.candidates.map((c) => c.id),
    stage1_replicates: p.stage1Replicates,
    stage2_replicates: p.stage2Replicates,
    gate_ttft_ms: p.gateTtftMs,
    tps_tie_epsilon: p.tpsTieEpsilon
  })

const fmt = (n: number | null, unit: string, digits = 1) => (n === null ? `n/a ${unit}` : `${n.toFixed(digits)} ${unit}`)

/** One progress line per finished trial, on stderr (stdout carries the result only). */
const progress = (stage: 1 | 2, label: string, o: TrialOutcome, note = "") =>
  Console.error(
    `[stage ${stage}] ${label}: ${
      o.reason === null
        ? `fits, ${fmt(o.tpsMedian, "tok/s")}, TTFT median ${fmt(o.ttftMedianMs, "ms", 0)} p95 ${
          fmt(o.ttftP95Ms, "ms", 0)
        } over ${o.samples.length} replicate(s)`
        : `infeasible: ${o.reason}`
    }${note}`
  )

/**
 * Runs a tune (SPEC A, B, F-1, F-2, H-1, S-1, S-2): inserts the run row, runs
 * `prepare` (pre-flight and drain, E-1/E-2, so their outcome is recorded in the
 * row too; its scope is the caller's — the default does none: pass
 * `preflight(preflightOptionsFor(…), drain)` and `drain` as the CLI does), then Stage 1 and Stage 2, records every trial, marks the Stage 2 winner `kept`
 * (B-4), and on every exit path updates the run row (H-1; `ended_at` null when
 * interrupted, H-4) and prints the document (`--json`) or terminal block.
 * With a budget (H-3) the work is interrupted when it runs out: the best
 * recommendation so far is printed with `partial: true` if Stage 1 had chosen
 * a model, else none.
 * With `--apply` (F-3), a finished Stage 2 (never a partial or interrupted
 * run, H-4) writes the recommendation into the provider's config and the
 * restart instructions follow the result.
 * Fails with AllInfeasible (A-4), PreWarmIntegrityFailure (D-2, after its trial
 * row), BudgetExhausted (H-3), ApplyFailed (F-3; the recommendation is still
 * printed) or StoreFailed.
 */
export const tune = <E = never, R = never>(
  plan: TunePlan,
  prepare: Effect.Effect<void, E, R> = Effect.void as Effect.Effect<void, E, R>
): Effect.Effect<
  void,
  AllInfeasible | PreWarmIntegrityFailure | StoreFailed | BudgetExhausted | ApplyFailed | E,
  TrialStore | CandidateProvider | HttpClient.HttpClient | FileSystem.FileSystem | R
> =>
  Effect.gen(function*() {
    const store = yield* TrialStore
    const runId = randomUUID()
    const startedAt = new Date(yield* Clock.currentTimeMillis).toISOString()
    const inputs = planInputs(plan)
    yield* store.startRun({
      run_id: runId,
      started_at: startedAt,
      spec_version: SPEC_VERSION,
      machine_json: JSON.stringify(plan.machine),
      inputs_json: JSON.stringify(inputs)
    })
    // Best-so-far lives outside the budgeted work so a partial result survives it (SPEC H-3).
    const recommended = yield* Ref.make<Recommended | null>(null)
    const keptTrialId = yield* Ref.make<number | null>(null)
    const rejected = yield* Ref.make<ReadonlyArray<Rejected>>([])
    const applied = yield* Ref.make<ApplyResult | null>(null)

    const row = (stage: 1 | 2, c: Candidate, knobs: Knobs, o: TrialOutcome) =>
      new TrialRow({
        run_id: runId,
        stage,
        model: c.id,
        target_context: plan.targetContext,
        kv_bits: knobs.kvBits,
        max_context_cap: knobs.maxContext,
        max_batch: knobs.maxBatch,
        threads: knobs.threads,
        replicates_n: o.samples.length,
        tps: o.tpsMedian,
        ttft_ms: o.ttftMedianMs,
        ttft_p95_ms: o.ttftP95Ms,
        n_err: o.nErr,
        fits: o.reason === null ? 1 : 0,
        kept: 0,
        notes: o.reason,
        started_at: o.startedAt,
        prompt_tokens: o.server.promptTokens,
        server_prompt_n: o.server.promptN,
        server_prompt_tps: o.server.promptTps,
        server_decode_tps: o.server.decodeTps,
        server_request_ms: o.server.requestMs,
        load_ms: o.phases.loadMs,
        prewarm_ms: o.phases.preWarmMs,
        probe_ms: o.phases.probeMs,
        model_params: c.paramCount,
        model_bytes: c.ggufFile ? Fs.statSync(c.model, { throwIfNoEntry: false })?.size ?? null : null
      })

    const work = Effect.gen(function*() {
      yield* prepare
      yield* Console.error(
        `autotune: run ${runId}: ${plan.candidates.length} candidate(s) on ${plan.adapter.name}, target context ${plan.targetContext} tokens, TTFT gate ${plan.gateTtftMs} ms`
      )
      const chosen = yield* stage1(plan, plan.candidates, plan.stage1Replicates, (c, o) =>
        Effect.gen(function*() {
          yield* store.insertTrial(row(1, c, Knobs.defaults, o))
          if (o.reason !== null) yield* Ref.update(rejected, (rs) => [...rs, { candidate: c, reason: o.reason! }])
          yield* progress(1, `#${c.rank} ${c.id} (${formatParams(c.paramCount)})`, o)
        }))
      yield* Ref.set(recommended, { candidate: chosen.candidate, knobs: Knobs.defaults, outcome: chosen.outcome })

      const grid = cells(plan.axes)
      yield* Console.error(`autotune: stage 2 on ${chosen.candidate.id}: ${grid.length} cell(s)`)
      const best = yield* hillClimb(
        grid,
        plan.tpsTieEpsilon,
        (knobs) =>
          Effect.gen(function*() {
            const outcome = yield* runTrial(
              plan,
              chosen.candidate,
              knobs,
              plan.stage2Replicates,
              chosen.outcome.calibration
            )
            const trialId = yield* store.insertTrial(row(2, chosen.candidate, knobs, outcome))
            if (outcome.preWarmFailure === "integrity") {
              yield* Ref.update(rejected, (rs) => [...rs, { candidate: chosen.candidate, reason: outcome.reason! }])
            }
            yield* abortOnIntegrity(chosen.candidate, outcome)
            return {
              knobs,
              feasible: outcome.reason === null,
              score: { tps: outcome.tpsMedian, ttftMs: outcome.ttftMedianMs },
              value: { outcome, trialId }
            }
          }),
        (cell, newBest) =>
          Effect.gen(function*() {
            if (newBest) {
              yield* Ref.set(keptTrialId, cell.value.trialId)
              yield* Ref.set(recommended, { candidate: chosen.candidate, knobs: cell.knobs, outcome: cell.value.outcome })
            }
            yield* progress(2, describeKnobs(cell.knobs), cell.value.outcome, newBest ? "  <- best so far" : "")
          })
      )
      if (best === null) {
        yield* Console.error("autotune: no feasible Stage 2 cell; recommending the Stage 1 configuration (SPEC B-5)")
      }
      if (plan.apply !== null) {
        const rec = (yield* Ref.get(recommended))!
        // Once the write starts it finishes and is recorded, so an interrupt or budget
        // arriving mid-apply never leaves a written config reported as not applied.
        yield* Effect.uninterruptible(Effect.flatMap(
          applyRecommendation({
            configPath: plan.apply.configPath,
            values: {
              model: rec.candidate.model,
              kv_bits_override: rec.knobs.kvBits,
              max_context_override: rec.knobs.maxContext,
              max_concurrency_override: rec.knobs.maxBatch
            },
            nowMs: yield* Clock.currentTimeMillis
          }),
          (result) => Ref.set(applied, result)
        ))
      }
    })

    // SPEC H-3: the budget interrupts the running work (its trial and provider
    // stop through their scopes) and fails with BudgetExhausted.
    const budgeted = plan.budgetMs === null ? work : work.pipe(
      Effect.timeoutFail({
        duration: `${plan.budgetMs} millis`,
        onTimeout: () =>
          new BudgetExhausted({
            budgetMs: plan.budgetMs!,
            message: `the --max-duration budget of ${plan.budgetMs! / 1000} s ran out`
          })
      })
    )

    const finish = (exit: Exit.Exit<void, AllInfeasible | PreWarmIntegrityFailure | StoreFailed | BudgetExhausted | ApplyFailed | E>) =>
      Effect.gen(function*() {
        const exitReason = fromExit(exit)
        // H-3: a budget that ran out after Stage 1 chose a model still recommends the best so far.
        const partial = exitReason === "budget_exhausted" && (yield* Ref.get(recommended)) !== null
        // F-3: a failed apply leaves the measured recommendation standing (the config is untouched).
        const recommendedNow = exitReason === "ok" || exitReason === "apply_failed" || partial
          ? yield* Ref.get(recommended)
          : null
        // B-4: the winning Stage 2 row (final, or best so far of a partial run) is kept.
        const kept = yield* Ref.get(keptTrialId)
        if (recommendedNow !== null && kept !== null) {
          yield* store.markKept(kept).pipe(Effect.catchAll((e) => Console.error(`autotune: ${e.message}`)))
        }
        const summary = {
          runId,
          startedAt,
          endedAt: exitReason === "interrupted" ? null : new Date(yield* Clock.currentTimeMillis).toISOString(),
          exitReason,
          partial,
          machine: plan.machine,
          inputs,
          adapter: plan.adapter,
          candidates: plan.candidates,
          targetContext: plan.targetContext,
          maxTokens: plan.maxTokens,
          recommended: recommendedNow,
          rejected: yield* Ref.get(rejected)
        }
        const doc = buildDocument(summary)
        yield* store.finishRun(runId, {
          ended_at: doc.ended_at,
          exit_reason: doc.exit_reason,
          recommendation_json: doc.recommendation === null ? null : JSON.stringify(doc.recommendation),
          recipe_hash: doc.recipe_hash,
          partial: doc.partial
        }).pipe(Effect.catchAll((e) => Console.error(`autotune: ${e.message}`)))
        yield* Console.log(plan.json ? encodeTuneDocument(doc) : renderBlock(doc, summary))
        const done = yield* Ref.get(applied)
        const rec = yield* Ref.get(recommended)
        // Said whenever the config was written, even if an interrupt or the budget landed during
        // the (uninterruptible) write: the operator must never find a changed config unannounced.
        if (done !== null && plan.apply !== null && rec !== null) {
          // stdout carries the document only with --json: the apply report then goes to stderr.
          const say = plan.json ? Console.error : Console.log
          const serve = serveCommandOf(plan.adapter, rec, plan.targetContext, plan.maxTokens)
          // A drained provider comes back with the new config; else the job's manager only when
          // the job exists there; else a foreground provider: restart it by hand.
          const restoredLater = plan.apply.drained === undefined ? false : yield* plan.apply.drained
          const kind = yield* resolveServiceManager(plan.apply.serviceManager)
          const job = yield* jobState(kind, plan.apply.serviceLabel)
          const manager = job._tag === "Absent" ? "none" : kind
          yield* say([
            `applied:      ${done.configPath} (${done.changed.length === 0 ? "already up to date" : `changed ${done.changed.join(", ")}`}; backup ${done.backupPath})`,
            ...(exitReason === "ok" ? [] : [`              the config was written before the run ended (${exitReason})`]),
            restoredLater
              ? "the provider drained for this run is restored when it ends, and reads the new config then"
              : restartInstructions(manager, plan.apply.serviceLabel, serve, process.getuid?.() ?? 0)
          ].join("\n"))
        }
      })

    yield* budgeted.pipe(Effect.onExit(finish))
  })
