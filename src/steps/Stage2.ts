/**
 * Stage 2 (SPEC B): every cell of the knob grid measured on the model Stage 1
 * chose, in the grid's deterministic order, the winner decided by B-3's
 * new-best rule (`isNewBest`, domain/NewBest.ts).
 */
import type { HttpClient } from "@effect/platform"
import { Effect } from "effect"
import type { PreWarmIntegrityFailure } from "../domain/AutotuneError.js"
import type { Knobs } from "../domain/Knobs.js"
import { type CellScore, isNewBest } from "../domain/NewBest.js"
import type { CandidateProvider } from "../services/CandidateProvider.js"
import type { TrialOutcome } from "../domain/Trial.js"
import { runTrial, type TrialSettings } from "./RunTrial.js"
import { abortOnIntegrity, type Chosen } from "./Stage1.js"

/** A measured Stage 2 cell, as the grid search sees it. */
export interface ClimbCell<A> {
  readonly knobs: Knobs
  readonly feasible: boolean
  readonly score: CellScore
  readonly value: A
}

/**
 * The grid search of Stage 2 (SPEC B-2, B-3): measures every cell in the given
 * (deterministic) order with `measure`, and returns the winner by `isNewBest`
 * among feasible cells, or null when none was feasible (then the caller
 * recommends the Stage 1 configuration, B-5). `onCell` sees every cell with
 * whether it is the new best.
 */
export const gridSearch = <A, E, R, E2, R2>(
  cells: ReadonlyArray<Knobs>,
  epsilon: number,
  measure: (knobs: Knobs) => Effect.Effect<ClimbCell<A>, E, R>,
  onCell: (cell: ClimbCell<A>, newBest: boolean) => Effect.Effect<void, E2, R2>
): Effect.Effect<ClimbCell<A> | null, E | E2, R | R2> =>
  Effect.reduce(cells, null as ClimbCell<A> | null, (best, knobs) =>
    Effect.gen(function*() {
      const cell = yield* measure(knobs)
      const wins = cell.feasible && isNewBest(best?.score ?? null, cell.score, epsilon)
      yield* onCell(cell, wins)
      return wins ? cell : best
    }))

/** A Stage 2 cell and what its trial measured. */
export interface MeasuredCell {
  readonly knobs: Knobs
  readonly outcome: TrialOutcome
}

/**
 * Stage 2 (SPEC B-1..B-5) on the model Stage 1 chose: one trial per cell of
 * `cells` (the Cartesian product of the axes, `domain/Axes.cells`), each over
 * `replicates` probes with the calibration Stage 1 measured, the winner by
 * `isNewBest` with tie band `epsilon` (`--tps-tie-epsilon`) among feasible
 * cells; null when none was feasible (the caller recommends the Stage 1
 * configuration, B-5). `record` sees every cell as it finishes, with whether
 * it is the new best (persist, print). Fails with PreWarmIntegrityFailure
 * (D-2) as soon as a cell's pre-warm failure is classified as integrity —
 * after `record` has seen that cell.
 */
export const stage2 = <E, R>(
  settings: TrialSettings,
  chosen: Chosen,
  cells: ReadonlyArray<Knobs>,
  replicates: number,
  epsilon: number,
  record: (cell: MeasuredCell, newBest: boolean) => Effect.Effect<void, E, R>
): Effect.Effect<MeasuredCell | null, PreWarmIntegrityFailure | E, R | CandidateProvider | HttpClient.HttpClient> =>
  Effect.map(
    gridSearch(
      cells,
      epsilon,
      (knobs) =>
        Effect.map(runTrial(settings, chosen.candidate, knobs, replicates, chosen.outcome.calibration), (outcome) => ({
          knobs,
          feasible: outcome.verdict._tag === "Fits",
          score: { tps: outcome.tpsMedian, ttftMs: outcome.ttftMedianMs },
          value: outcome
        })),
      (cell, newBest) =>
        Effect.zipRight(
          record({ knobs: cell.knobs, outcome: cell.value }, newBest),
          abortOnIntegrity(chosen.candidate, cell.value)
        )
    ),
    (best) => (best === null ? null : { knobs: best.knobs, outcome: best.value })
  )
