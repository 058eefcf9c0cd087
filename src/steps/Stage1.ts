/**
 * Stage 1, model selection (SPEC A): candidates in the given order, the first
 * feasible one chosen, later ones never started.
 */
import type { HttpClient } from "@effect/platform"
import { Effect } from "effect"
import { AllInfeasible, PreWarmIntegrityFailure } from "../domain/AutotuneError.js"
import { bySizeAscending, type Candidate, formatParams } from "../domain/Candidate.js"
import { Knobs } from "../domain/Knobs.js"
import { notesOf, type Verdict } from "../domain/Verdict.js"
import type { CandidateProvider } from "../services/CandidateProvider.js"
import type { CpuMeter } from "../services/CpuMeter.js"
import { replaysNext, throughLedger } from "./Ledger.js"
import { measureQuietly } from "./QuietGuard.js"
import type { TrialOutcome } from "../domain/Trial.js"
import { runTrial, type TrialSettings } from "./RunTrial.js"

/** A candidate found infeasible, with its verdict (SPEC G-1; never `Fits`). */
export interface Rejected {
  readonly candidate: Candidate
  readonly verdict: Verdict
  /** The trial that found it infeasible, when one ran (its marginal and disturbed flags, SPEC N-2, N-3). */
  readonly outcome?: TrialOutcome
}

/** The Stage 1 choice: the first feasible candidate and its measurement. */
export interface Chosen {
  readonly candidate: Candidate
  readonly outcome: TrialOutcome
}

/**
 * SPEC A-4 message: leads with the smallest candidate by parameter size
 * ("even <smallest>: <reason>"), then each larger one in size order.
 */
export const allInfeasibleMessage = (rejected: ReadonlyArray<Rejected>): string => {
  const [smallest, ...larger] = bySizeAscending(rejected)
  if (smallest === undefined) return "no candidates"
  return [
    `every candidate is infeasible; even ${smallest.candidate.id} (${formatParams(smallest.candidate.paramCount)}): ${
      notesOf(smallest.verdict)
    }`,
    ...larger.map((r) => `  ${r.candidate.id} (${formatParams(r.candidate.paramCount)}): ${notesOf(r.verdict)}`)
  ].join("\n")
}

/**
 * The knobs Stage 1 starts every candidate with (SPEC A-3): the provider's
 * defaults, with N slots under `--concurrency N` (C-1: a candidate is judged
 * serving N users at once, so it is started able to).
 */
export const stage1Knobs = (s: TrialSettings): Knobs => {
  const n = s.objective?.streams ?? 1
  return n > 1 ? new Knobs({ ...Knobs.defaults, maxBatch: n }) : Knobs.defaults
}

/**
 * Stage 1, model selection (SPEC A-1..A-3): tries candidates in the given order,
 * each with default knobs at the target context over `replicates` requests,
 * and STOPS at the first feasible one — later candidates are never started.
 * With `maxReplicates` (the CLI's `--max-replicates`) and no objective
 * (under one, C-1 asks every replicate to meet it), a call near the gate
 * (N-2) gets up to that many replicates and is made on their median TTFT
 * (`runTrial`, marked `marginal`); null keeps G-1's every-replicate rule; a disturbed
 * trial (N-3) is measured again when the machine is quiet (`measureQuietly`,
 * guard at `settings.maxBackgroundCores`); each trial goes through
 * `settings.ledger` when there is one (R-2: replayed on a resume).
 * `record` sees every trial as it finishes (persist, print), `superseded`
 * true for a disturbed one that was measured again. Fails with AllInfeasible
 * (message per A-4) when none is feasible, and with PreWarmIntegrityFailure
 * (D-2) as soon as a candidate's pre-warm failure is classified as integrity
 * — after `record` has seen that trial.
 */
export const stage1 = <E, R>(
  settings: TrialSettings,
  candidates: ReadonlyArray<Candidate>,
  replicates: number,
  record: (candidate: Candidate, outcome: TrialOutcome, superseded: boolean) => Effect.Effect<void, E, R>,
  maxReplicates: number | null = null
): Effect.Effect<
  Chosen,
  AllInfeasible | PreWarmIntegrityFailure | E,
  R | CandidateProvider | CpuMeter | HttpClient.HttpClient
> =>
  Effect.gen(function*() {
    const rejected: Array<Rejected> = []
    const knobs = stage1Knobs(settings)
    for (const candidate of candidates) {
      const outcome = yield* measureQuietly(
        throughLedger(settings.ledger, 1, candidate, knobs, replicates, runTrial(settings, candidate, knobs, replicates, null, maxReplicates)),
        settings.maxBackgroundCores,
        (o) => record(candidate, o, true),
        () => replaysNext(settings.ledger, 1, candidate, knobs, replicates)
      )
      yield* record(candidate, outcome, false)
      if (outcome.verdict._tag === "Fits") return { candidate, outcome }
      yield* abortOnIntegrity(candidate, outcome)
      rejected.push({ candidate, verdict: outcome.verdict, outcome })
    }
    return yield* new AllInfeasible({ message: allInfeasibleMessage(rejected) })
  })

/**
 * SPEC D-2: fails with PreWarmIntegrityFailure (exit_reason
 * `pre_warm_integrity_failure`) when a trial's pre-warm failure was classified
 * as integrity; succeeds otherwise. Call it after the trial row is written.
 */
export const abortOnIntegrity = (candidate: Candidate, outcome: TrialOutcome): Effect.Effect<void, PreWarmIntegrityFailure> =>
  outcome.verdict._tag === "Integrity"
    ? Effect.fail(new PreWarmIntegrityFailure({
      model: candidate.id,
      message: `${candidate.id}: ${notesOf(outcome.verdict)}; the whole run stops (SPEC D-2): replace or re-download the model, then tune again`
    }))
    : Effect.void
