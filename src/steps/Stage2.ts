/**
 * Stage 2 (SPEC B, N-2): every cell of the knob grid measured on the model
 * Stage 1 chose, in the grid's deterministic order, the winner decided by
 * B-3's new-best rule (`isNewBest`, domain/NewBest.ts) on medians that the
 * noise cannot flip: a close decision gets more replicates, interleaved.
 */
import type { HttpClient } from "@effect/platform"
import { Console, Effect } from "effect"
import type { PreWarmIntegrityFailure } from "../domain/AutotuneError.js"
import { describeKnobs, type Knobs } from "../domain/Knobs.js"
import { type CellInterval, type CellScore, decidedByNoise, isNewBest } from "../domain/NewBest.js"
import { mergeOutcomes, type TrialOutcome } from "../domain/Trial.js"
import type { CandidateProvider } from "../services/CandidateProvider.js"
import type { CpuMeter } from "../services/CpuMeter.js"
import { measureQuietly } from "./QuietGuard.js"
import { runTrial, type TrialSettings } from "./RunTrial.js"
import { abortOnIntegrity, type Chosen } from "./Stage1.js"

/** A measured Stage 2 cell, as the grid search sees it: medians, their intervals, replicates so far. */
export interface ClimbCell<A> {
  readonly knobs: Knobs
  readonly feasible: boolean
  readonly score: CellScore
  readonly interval: CellInterval
  readonly replicates: number
  readonly value: A
}

/** SPEC B-3 and N-2: the tie band, and the replicate cap a close decision may reach. */
export interface NoisePolicy {
  /** `--tps-tie-epsilon`. */
  readonly epsilon: number
  /** `--max-replicates`: no cell is extended past it. */
  readonly maxReplicates: number
}

/** What the grid search decided. */
export interface GridResult<A> {
  /** The winner, or null when no cell was feasible (B-5). */
  readonly best: ClimbCell<A> | null
  /** Challengers still within the noise of the winner at the replicate cap: the incumbent stayed (N-2). */
  readonly tiedWithinNoise: ReadonlyArray<ClimbCell<A>>
  /** Every feasible cell as last measured, in grid order. */
  readonly feasible: ReadonlyArray<ClimbCell<A>>
}

/**
 * The grid search of Stage 2 (SPEC B-2, B-3, N-2): measures every cell in the
 * given (deterministic) order with `measure`, and keeps the winner by
 * `isNewBest` among feasible cells. When the noise could flip a decision
 * (`decidedByNoise`: the challenger's interval overlaps the incumbent's
 * around the tie band), both are given more replicates with `extend`,
 * interleaved — incumbent, then challenger, each round — until the decision
 * is clear or both reached `policy.maxReplicates`; then the incumbent stays
 * and the challenger is listed in `tiedWithinNoise`. A clear decision costs
 * no extra replicate. An incumbent that turns infeasible when extended (B-2:
 * every replicate) loses its place to the challenger. `onCell` sees every new
 * cell with whether it is the new best (after any extension), `onExtended`
 * every incumbent given more replicates (its figures changed).
 */
export const gridSearch = <A, E, R, E2, R2>(
  cells: ReadonlyArray<Knobs>,
  policy: NoisePolicy,
  measure: (knobs: Knobs) => Effect.Effect<ClimbCell<A>, E, R>,
  extend: (cell: ClimbCell<A>) => Effect.Effect<ClimbCell<A>, E, R>,
  onCell: (cell: ClimbCell<A>, newBest: boolean) => Effect.Effect<void, E2, R2>,
  onExtended: (cell: ClimbCell<A>) => Effect.Effect<void, E2, R2> = () => Effect.void
): Effect.Effect<GridResult<A>, E | E2, R | R2> =>
  Effect.gen(function*() {
    let best: ClimbCell<A> | null = null
    const feasible: Array<ClimbCell<A>> = []
    const tied: Array<ClimbCell<A>> = []
    const replace = (cell: ClimbCell<A>) => {
      const i = feasible.findIndex((c) => c.knobs === cell.knobs)
      if (i >= 0) cell.feasible ? (feasible[i] = cell) : feasible.splice(i, 1)
    }
    for (const knobs of cells) {
      let cell = yield* measure(knobs)
      let noise = false
      while (cell.feasible && best !== null && (noise = decidedByNoise(best.interval, cell.interval, policy.epsilon))) {
        const room = best.replicates < policy.maxReplicates || cell.replicates < policy.maxReplicates
        if (!room) break
        if (best.replicates < policy.maxReplicates) {
          best = yield* extend(best)
          replace(best)
          yield* onExtended(best)
          if (!best.feasible) break
        }
        if (cell.replicates < policy.maxReplicates) cell = yield* extend(cell)
      }
      if (best !== null && !best.feasible) {
        // The incumbent failed a replicate it was given (B-2): the best feasible cell measured before it takes over.
        best = feasible.reduce<ClimbCell<A> | null>((b, c) => (isNewBest(b?.score ?? null, c.score, policy.epsilon) ? c : b), null)
        noise = false
      }
      const tiedNow = noise && cell.feasible && best !== null && decidedByNoise(best.interval, cell.interval, policy.epsilon)
      const wins = cell.feasible && !tiedNow && isNewBest(best?.score ?? null, cell.score, policy.epsilon)
      if (cell.feasible) feasible.push(cell)
      if (tiedNow) tied.push(cell)
      yield* onCell(cell, wins)
      if (wins) best = cell
    }
    return { best, tiedWithinNoise: best === null ? [] : tied.filter((c) => c.knobs !== best!.knobs), feasible }
  })

/** A Stage 2 cell and what its trial measured. */
export interface MeasuredCell {
  readonly knobs: Knobs
  readonly outcome: TrialOutcome
}

/** The fewest replicates of a winner whose interval the drift check compares against. */
export const MIN_DRIFT_REPLICATES = 3

/** SPEC N-2 drift check: the winner measured once more after the grid. */
export interface DriftCheck {
  /** The re-measurement's median tokens/s. */
  readonly tpsMedian: number | null
  /** Whether it fell outside the winner's 95 % interval. */
  readonly moved: boolean
  /** The cells within the tie band of the winner measured again because it moved. */
  readonly remeasured: ReadonlyArray<Knobs>
}

/** What Stage 2 decided (SPEC B-4, B-5, N-2). */
export interface Stage2Result {
  /** The winner, over all its replicates; null when no cell was feasible (B-5). */
  readonly best: MeasuredCell | null
  /** Cells the noise could not tell from the winner at `--max-replicates` (the incumbent stayed). */
  readonly tiedWithinNoise: ReadonlyArray<MeasuredCell>
  /** The drift check, null when there was no winner or no replicate left to spend. */
  readonly drift: DriftCheck | null
}

/**
 * Stage 2 (SPEC B-1..B-5, N-2) on the model Stage 1 chose: one trial per cell
 * of `cells` (the Cartesian product of the axes, `domain/Axes.cells`), each over
 * `replicates` probes with the calibration Stage 1 measured, the winner by
 * `isNewBest` with tie band `policy.epsilon` among feasible cells, close
 * decisions given more replicates in trials of their own (`gridSearch`), and
 * disturbed trials measured again (N-3, `measureQuietly`). Then the drift
 * check: the winner is measured once more; when that median falls outside its
 * interval, every feasible cell within the tie band of it is measured again
 * and the winner decided afresh on all the replicates (B-3, in grid order).
 * `record` sees every new cell as it finishes, with whether it is the new best
 * (`superseded` for a disturbed one measured again); `update` every cell whose
 * figures changed with more replicates. Fails with PreWarmIntegrityFailure
 * (D-2) as soon as a cell's pre-warm failure is classified as integrity —
 * after `record` has seen that cell.
 */
export const stage2 = <E, R>(
  settings: TrialSettings,
  chosen: Chosen,
  cells: ReadonlyArray<Knobs>,
  replicates: number,
  policy: NoisePolicy,
  record: (cell: MeasuredCell, newBest: boolean, superseded: boolean) => Effect.Effect<void, E, R>,
  update: (cell: MeasuredCell) => Effect.Effect<void, E, R> = () => Effect.void
): Effect.Effect<Stage2Result, PreWarmIntegrityFailure | E, R | CandidateProvider | CpuMeter | HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const trial = (knobs: Knobs, n: number) =>
      measureQuietly(
        runTrial(settings, chosen.candidate, knobs, n, chosen.outcome.calibration),
        settings.maxBackgroundCores,
        (o) => record({ knobs, outcome: o }, false, true)
      ).pipe(Effect.tap((o) => abortOnIntegrity(chosen.candidate, o)))
    const climbCell = (knobs: Knobs, outcome: TrialOutcome): ClimbCell<TrialOutcome> => ({
      knobs,
      feasible: outcome.verdict._tag === "Fits",
      score: { tps: outcome.tpsMedian, ttftMs: outcome.ttftMedianMs },
      interval: { tps: outcome.spread.tpsCi95, ttftMs: outcome.spread.ttftCi95Ms },
      replicates: outcome.samples.length,
      value: outcome
    })
    // More replicates for a cell: a trial of their own, as many as the stage's minimum, up to the cap.
    const extend = (cell: ClimbCell<TrialOutcome>) =>
      Effect.gen(function*() {
        const n = Math.min(replicates, policy.maxReplicates - cell.replicates)
        yield* Console.error(`[stage 2] ${describeKnobs(cell.knobs)}: within the noise of the decision; ${n} more replicate(s) (SPEC N-2)`)
        return climbCell(cell.knobs, mergeOutcomes(cell.value, yield* trial(cell.knobs, n)))
      })
    const toMeasured = (c: ClimbCell<TrialOutcome>): MeasuredCell => ({ knobs: c.knobs, outcome: c.value })
    const grid = yield* gridSearch(
      cells,
      policy,
      (knobs) => Effect.map(trial(knobs, replicates), (o) => climbCell(knobs, o)),
      extend,
      (cell, newBest) => record(toMeasured(cell), newBest, false),
      (cell) => update(toMeasured(cell))
    )
    if (grid.best === null) return { best: null, tiedWithinNoise: [], drift: null }
    const drift = yield* driftCheck(grid.best, grid.feasible, policy, replicates, trial, climbCell, update, toMeasured)
    const best = drift.best
    return {
      best: best === null ? null : toMeasured(best),
      tiedWithinNoise: best === null ? [] : grid.tiedWithinNoise.filter((c) => c.knobs !== best.knobs).map(toMeasured),
      drift: drift.check
    }
  })

/**
 * SPEC N-2 drift check (issue 13 item 4): the winner measured once more (the
 * stage's replicates, when the cap leaves room and the winner has at least
 * MIN_DRIFT_REPLICATES). Inside its interval: nothing
 * changes but its replicates. Outside: every feasible cell within the tie band
 * of the winner is measured again too, and the winner is decided afresh over
 * all replicates, by B-3 in grid order (null when none stays feasible: B-5).
 */
const driftCheck = <E, R>(
  winner: ClimbCell<TrialOutcome>,
  feasible: ReadonlyArray<ClimbCell<TrialOutcome>>,
  policy: NoisePolicy,
  replicates: number,
  trial: (knobs: Knobs, n: number) => Effect.Effect<TrialOutcome, E, R>,
  climbCell: (knobs: Knobs, o: TrialOutcome) => ClimbCell<TrialOutcome>,
  update: (cell: MeasuredCell) => Effect.Effect<void, E, R>,
  toMeasured: (c: ClimbCell<TrialOutcome>) => MeasuredCell
): Effect.Effect<{ readonly best: ClimbCell<TrialOutcome> | null; readonly check: DriftCheck | null }, E, R> =>
  Effect.gen(function*() {
    const n = Math.min(replicates, policy.maxReplicates - winner.replicates)
    // Fewer than 3 replicates give no interval to drift out of (one replicate's is a point).
    if (n <= 0 || winner.interval.tps === null || winner.replicates < MIN_DRIFT_REPLICATES) return { best: winner, check: null }
    const again = yield* trial(winner.knobs, n)
    const [lo, hi] = winner.interval.tps
    const moved = again.verdict._tag !== "Fits" || again.tpsMedian === null || again.tpsMedian < lo || again.tpsMedian > hi
    const remeasuredWinner = climbCell(winner.knobs, mergeOutcomes(winner.value, again))
    yield* update(toMeasured(remeasuredWinner))
    if (!moved) {
      yield* Console.error(`[stage 2] drift check: ${describeKnobs(winner.knobs)} measured again within its interval`)
      return { best: remeasuredWinner, check: { tpsMedian: again.tpsMedian, moved: false, remeasured: [] } }
    }
    const near = feasible.filter((c) =>
      c.knobs !== winner.knobs && c.score.tps !== null && winner.score.tps !== null &&
      Math.abs(c.score.tps - winner.score.tps) <= policy.epsilon * winner.score.tps
    )
    yield* Console.error(
      `[stage 2] drift check: ${describeKnobs(winner.knobs)} moved outside its interval (${again.tpsMedian?.toFixed(1) ?? "n/a"} tok/s vs ${
        lo.toFixed(1)
      }–${hi.toFixed(1)}); measuring ${near.length} cell(s) within its tie band again`
    )
    const cells = new Map(feasible.map((c) => [c.knobs, c] as const))
    cells.set(winner.knobs, remeasuredWinner)
    for (const c of near) {
      const m = Math.max(1, Math.min(replicates, policy.maxReplicates - c.replicates))
      const merged = climbCell(c.knobs, mergeOutcomes(c.value, yield* trial(c.knobs, m)))
      cells.set(c.knobs, merged)
      yield* update(toMeasured(merged))
    }
    const best = [...cells.values()].filter((c) => c.feasible).reduce<ClimbCell<TrialOutcome> | null>(
      (b, c) => (isNewBest(b?.score ?? null, c.score, policy.epsilon) ? c : b),
      null
    )
    return {
      best,
      check: { tpsMedian: again.tpsMedian, moved: true, remeasured: near.map((c) => c.knobs) }
    }
  })
