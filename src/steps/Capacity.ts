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
 * SPEC C-4's search over users, apart from how a step is measured:
 * `meets(n)` measures n users and says whether they met the objective. From
 * `start` (≥ 1) the users double while they meet it — the last doubling step
 * is MAX_CAPACITY_USERS itself, so the cap is tried — and the first n that
 * does not ends the doubling; n is then bisected between the last met and
 * that one. `known`: a start already measured to meet it (not measured
 * again). Returns the largest n met (0 when not even 1 user was), the
 * smallest missed (null when the cap was met: `capped`).
 */
export const searchCapacity = <E, R>(
  start: number,
  meets: (n: number) => Effect.Effect<boolean, E, R>,
  known = false
): Effect.Effect<{ readonly users: number; readonly missedAt: number | null; readonly capped: boolean }, E, R> =>
  Effect.gen(function*() {
    let lo = 0
    let hi: number | null = null
    for (let n = Math.min(Math.max(1, start), MAX_CAPACITY_USERS);; n = Math.min(2 * n, MAX_CAPACITY_USERS)) {
      if ((known && n === start) || (yield* meets(n))) lo = n
      else {
        hi = n
        break
      }
      if (n === MAX_CAPACITY_USERS) break
    }
    if (hi === null) return { users: lo, missedAt: null, capped: true }
    // Bisect (lo, hi): a first step that missed leaves 1 … hi − 1 to search.
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2)
      if (yield* meets(mid)) lo = mid
      else hi = mid
    }
    return { users: lo, missedAt: hi, capped: false }
  })

/**
 * Finds the capacity of `candidate` served with `knobs` exactly as recommended
 * (its slots too: users beyond them wait in the provider's queue, as they
 * would in production) under `objective` (SPEC C-4), by `searchCapacity` from
 * `objective.streams` users. Each step is a trial of its own (a provider
 * started, pre-warmed, probed over `replicates` replicates of n streams,
 * stopped; C-1, C-3: it meets the objective when it fits), measured through
 * `measure` (the caller's quiet-machine guard, N-3) and reported to `record`
 * as it finishes. `recommended`: the recommendation's own trial when it was
 * measured under this objective at `objective.streams` users — the first
 * step then, not measured again (but recorded). `calibration` is the recommendation's
 * prompt calibration. Fails only as `measure` or `record` do.
 */
export const findCapacity = <E, R>(
  settings: TrialSettings,
  candidate: Candidate,
  knobs: Knobs,
  objective: Objective,
  replicates: number,
  calibration: TrialOutcome["calibration"],
  recommended: TrialOutcome | null,
  measure: (trial: Effect.Effect<TrialOutcome, never, CandidateProvider | CpuMeter | HttpClient.HttpClient>) => Effect.Effect<TrialOutcome, E, R>,
  record: (step: CapacityStep) => Effect.Effect<void, E, R>
): Effect.Effect<Capacity, E, R> =>
  Effect.gen(function*() {
    const steps: Array<CapacityStep> = recommended === null ? [] : [{ streams: objective.streams, outcome: recommended }]
    const meets = (n: number) =>
      Effect.gen(function*() {
        const outcome = yield* measure(runTrial({ ...settings, objective: { ...objective, streams: n } }, candidate, knobs, replicates, calibration))
        const step = { streams: n, outcome }
        steps.push(step)
        yield* record(step)
        return outcome.verdict._tag === "Fits"
      })
    // The reused first step is on record as a step too (its row, its progress line), like every other.
    if (recommended !== null) yield* record(steps[0]!)
    const found = yield* searchCapacity(objective.streams, meets, recommended !== null)
    return { ...found, objective, steps }
  })
