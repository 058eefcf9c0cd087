/**
 * Capacity (SPEC C-4, `--find-max-concurrency`): how many concurrent users
 * the recommended configuration serves within the objective — double the
 * users until the objective fails, then bisect between the last N that met it
 * and the first that did not.
 */
import type { HttpClient } from "@effect/platform"
import { Effect } from "effect"
import type { Candidate } from "../domain/Candidate.js"
import type { Knobs } from "../domain/Knobs.js"
import type { Objective } from "../domain/Objective.js"
import type { TrialOutcome } from "../domain/Trial.js"
import type { CandidateProvider } from "../services/CandidateProvider.js"
import type { CpuMeter } from "../services/CpuMeter.js"
import { runTrial, type TrialSettings } from "./RunTrial.js"

/** SPEC C-4: the most users the search tries (it stops there, `capped`). */
export const MAX_CAPACITY_USERS = 256

/** One step of the search: N users (`streams`) on the recommended configuration, and what its trial measured. */
export interface CapacityStep {
  readonly streams: number
  readonly outcome: TrialOutcome
}

/**
 * The search's answer (SPEC C-4): `users`, the largest N whose every
 * replicate met the objective (0 when not even the first step did);
 * `missedAt`, the smallest N measured not to (null when the search reached
 * MAX_CAPACITY_USERS first: `capped`); the `objective` the steps were judged
 * by (its `streams` the starting N); every step in the order measured.
 */
export interface Capacity {
  readonly users: number
  readonly missedAt: number | null
  readonly capped: boolean
  readonly objective: Objective
  readonly steps: ReadonlyArray<CapacityStep>
}

/**
 * Finds the capacity of `candidate` served with `knobs` exactly as recommended
 * (its slots too: users beyond them wait in the provider's queue, as they
 * would in production) under `objective` (SPEC C-4). N starts at
 * `objective.streams` (Stage 2 measured it) and doubles while every replicate
 * of a `replicates`-replicate trial meets the objective and fits in memory
 * (C-1, C-3); the first N that does not ends the doubling and N is bisected
 * between the last met and that one. Each step is a trial of its own (a
 * provider started, pre-warmed with N requests, probed, stopped), reported to
 * `record` as it finishes. `calibration` is the recommendation's prompt
 * calibration. Never fails but through `record`.
 */
export const findCapacity = <E, R>(
  settings: TrialSettings,
  candidate: Candidate,
  knobs: Knobs,
  objective: Objective,
  replicates: number,
  calibration: TrialOutcome["calibration"],
  record: (step: CapacityStep) => Effect.Effect<void, E, R>
): Effect.Effect<Capacity, E, R | CandidateProvider | CpuMeter | HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const steps: Array<CapacityStep> = []
    const meets = (n: number) =>
      Effect.gen(function*() {
        const outcome = yield* runTrial({ ...settings, objective: { ...objective, streams: n } }, candidate, knobs, replicates, calibration)
        const step = { streams: n, outcome }
        steps.push(step)
        yield* record(step)
        return outcome.verdict._tag === "Fits"
      })
    // The largest N known to meet it, and the smallest known not to.
    let lo = 0
    let hi: number | null = null
    for (let n = Math.max(1, objective.streams); n <= MAX_CAPACITY_USERS; n *= 2) {
      if (yield* meets(n)) lo = n
      else {
        hi = n
        break
      }
    }
    if (hi === null) return { users: lo, missedAt: null, capped: true, objective, steps }
    // Bisect (lo, hi): a first step that missed leaves 0 … N to search from 1.
    let low = lo
    while (hi - low > 1) {
      const mid = Math.floor((low + hi) / 2)
      if (yield* meets(mid)) low = mid
      else hi = mid
    }
    return { users: low, missedAt: hi, capped: false, objective, steps }
  })
