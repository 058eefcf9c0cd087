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
import { orderStatisticRank } from "../domain/Stats.js"
import { mergeOutcomes, type TrialOutcome } from "../domain/Trial.js"
import type { CandidateProvider } from "../services/CandidateProvider.js"
import type { CpuMeter } from "../services/CpuMeter.js"
import { replaysNext, throughLedger } from "./Ledger.js"
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
  /** Cells still within the noise of the winner at the replicate cap: the winner, incumbent, stayed (N-2). */
  readonly tiedWithinNoise: ReadonlyArray<ClimbCell<A>>
  /** Every feasible cell as last measured, in grid order. */
  readonly feasible: ReadonlyArray<ClimbCell<A>>
}

/**
 * Can more replicates, up to `cap`, narrow the interval of a cell measured
 * `n` times? The order-statistic interval (`medianCi95`) only drops a replicate
 * on each side when its rank grows (the range up to 8 replicates, one in from
 * each end at 9): below that, more replicates only widen it, and a decision
 * the noise could flip stays so.
 */
export const canNarrow = (n: number, cap: number): boolean => n < cap && orderStatisticRank(cap) > orderStatisticRank(n)

/**
 * B-3 with N-2's rule, over cells already measured (no more replicates): in
 * order, a feasible cell becomes the best when `isNewBest` says so and the
 * noise could not flip that (`decidedByNoise`); otherwise the incumbent stays.
 */
export const decideOver = <A>(cells: ReadonlyArray<ClimbCell<A>>, epsilon: number): ClimbCell<A> | null =>
  cells.filter((c) => c.feasible).reduce<ClimbCell<A> | null>(
    (b, c) =>
      b === null
        ? (isNewBest(null, c.score, epsilon) ? c : null)
        : !decidedByNoise(b, c, epsilon) && isNewBest(b.score, c.score, epsilon)
        ? c
        : b,
    null
  )

/**
 * The feasible cells still within the noise of `best` (N-2) when neither can
 * narrow its interval under the cap any more: tied within noise. `best` left out.
 */
const tiedWith = <A>(best: ClimbCell<A> | null, cells: ReadonlyArray<ClimbCell<A>>, policy: NoisePolicy) =>
  best === null || canNarrow(best.replicates, policy.maxReplicates) ? [] : cells.filter((c) =>
    c.knobs !== best.knobs && c.feasible && !canNarrow(c.replicates, policy.maxReplicates) &&
    decidedByNoise(best, c, policy.epsilon)
  )

/**
 * The grid search of Stage 2 (SPEC B-2, B-3, N-2): measures every cell in the
 * given (deterministic) order with `measure`, and keeps the winner by
 * `isNewBest` among feasible cells. When the noise could flip a decision
 * (`decidedByNoise`: the throughput ratio lies within the intervals' combined
 * uncertainty of a tie-band edge, or inside the band the TTFTs within theirs), both are given more replicates with `extend`,
 * interleaved — incumbent, then challenger, each round — while more can
 * narrow an interval (`canNarrow`, up to `policy.maxReplicates`) and the
 * decision is not yet clear; then, if it still is not, the incumbent stays
 * and the challenger is tied within noise. A clear decision costs no extra
 * replicate. An incumbent that turns infeasible when extended (B-2: every
 * replicate) gives its place to the best of the feasible cells by `decideOver`.
 * `onCell` sees every new cell, after any extension, with whether it is the
 * new best (`extend` itself tells the caller of changed figures); `onBest` every change of the best made outside `onCell` (an
 * incumbent that turned infeasible).
 */
export const gridSearch = <A, E, R, E2, R2>(
  cells: ReadonlyArray<Knobs>,
  policy: NoisePolicy,
  measure: (knobs: Knobs) => Effect.Effect<ClimbCell<A>, E, R>,
  extend: (cell: ClimbCell<A>) => Effect.Effect<ClimbCell<A>, E, R>,
  onCell: (cell: ClimbCell<A>, newBest: boolean) => Effect.Effect<void, E2, R2>,
  onBest: (cell: ClimbCell<A> | null) => Effect.Effect<void, E2, R2> = () => Effect.void
): Effect.Effect<GridResult<A>, E | E2, R | R2> =>
  Effect.gen(function*() {
    let best: ClimbCell<A> | null = null
    const feasible: Array<ClimbCell<A>> = []
    const cap = policy.maxReplicates
    for (const knobs of cells) {
      let cell = yield* measure(knobs)
      while (
        cell.feasible && best !== null && decidedByNoise(best, cell, policy.epsilon) &&
        (canNarrow(best.replicates, cap) || canNarrow(cell.replicates, cap))
      ) {
        if (best.replicates < cap) {
          const extended: ClimbCell<A> = yield* extend(best)
          const i = feasible.findIndex((c) => c.knobs === extended.knobs)
          if (extended.feasible) feasible[i] = extended
          else feasible.splice(i, 1)
          best = extended
          if (!extended.feasible) {
            // The incumbent failed a replicate it was given (B-2): the best of the others takes its place,
            // and the challenger is judged against that one (with more replicates where needed).
            best = decideOver(feasible, policy.epsilon)
            yield* onBest(best)
            continue
          }
        }
        if (cell.replicates < cap) cell = yield* extend(cell)
      }
      const wins = cell.feasible && (best === null
        ? isNewBest(null, cell.score, policy.epsilon)
        : !decidedByNoise(best, cell, policy.epsilon) && isNewBest(best.score, cell.score, policy.epsilon))
      if (cell.feasible) feasible.push(cell)
      yield* onCell(cell, wins)
      if (wins) best = cell
    }
    return { best, tiedWithinNoise: tiedWith(best, feasible, policy), feasible }
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
 * What Stage 2 tells its caller as it goes (persist, print), each as an
 * Effect: `measured` a cell's first measurement (its row); `superseded` a
 * disturbed measurement measured again (N-3: a row of its own that decides
 * nothing); `updated` a cell's figures over more replicates (N-2; `more` is
 * what the extra trial measured); `best` the best so far, whenever it changes
 * (null: none feasible any more).
 */
export interface Stage2Hooks<E, R> {
  readonly measured: (cell: MeasuredCell) => Effect.Effect<void, E, R>
  readonly superseded: (cell: MeasuredCell) => Effect.Effect<void, E, R>
  readonly updated: (cell: MeasuredCell, more: TrialOutcome) => Effect.Effect<void, E, R>
  readonly best: (cell: MeasuredCell | null) => Effect.Effect<void, E, R>
}

/**
 * Stage 2 (SPEC B-1..B-5, N-2, N-3) on the model Stage 1 chose: one trial per
 * cell of `cells` (the Cartesian product of the axes, `domain/Axes.cells`),
 * each over `replicates` probes with the calibration Stage 1 measured, the
 * winner by `isNewBest` with tie band `policy.epsilon` among feasible cells,
 * close decisions given more replicates in trials of their own (`gridSearch`),
 * and disturbed trials measured again (N-3, `measureQuietly`). Then the drift
 * check (`driftCheck`). `hooks` see every measurement and every change of the
 * best as it happens, so a budget or an interrupt at any point leaves the
 * caller with the best so far and a row for every trial (H-3, S-1). Fails
 * with PreWarmIntegrityFailure (D-2) as soon as a cell's pre-warm failure is
 * classified as integrity — after `hooks.measured` has seen that cell.
 */
export const stage2 = <E, R>(
  settings: TrialSettings,
  chosen: Chosen,
  cells: ReadonlyArray<Knobs>,
  replicates: number,
  policy: NoisePolicy,
  hooks: Stage2Hooks<E, R>
): Effect.Effect<Stage2Result, PreWarmIntegrityFailure | E, R | CandidateProvider | CpuMeter | HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const trial = (knobs: Knobs, n: number) =>
      measureQuietly(
        throughLedger(settings.ledger, 2, chosen.candidate, knobs, n, runTrial(settings, chosen.candidate, knobs, n, chosen.outcome.calibration)),
        settings.maxBackgroundCores,
        (o) => hooks.superseded({ knobs, outcome: o }),
        () => replaysNext(settings.ledger, 2, chosen.candidate, knobs, n)
      )
    const toMeasured = (c: ClimbCell<TrialOutcome>): MeasuredCell => ({ knobs: c.knobs, outcome: c.value })
    // More replicates for a cell: a trial of their own, merged into its figures (its row updated).
    const remeasure = (cell: ClimbCell<TrialOutcome>, n: number) =>
      Effect.gen(function*() {
        const more = yield* trial(cell.knobs, n)
        const merged = climbCell(cell.knobs, mergeOutcomes(cell.value, more))
        yield* hooks.updated(toMeasured(merged), more)
        // D-2 holds for every trial, extra replicates included: corrupt weights stop the run.
        yield* abortOnIntegrity(chosen.candidate, more)
        return { merged, more }
      })
    // N-2: as many as the stage's minimum, up to the cap.
    const extend = (cell: ClimbCell<TrialOutcome>) => {
      const n = Math.min(replicates, policy.maxReplicates - cell.replicates)
      return Console.error(`[stage 2] ${describeKnobs(cell.knobs)}: within the noise of the decision; ${n} more replicate(s) (SPEC N-2)`)
        .pipe(Effect.zipRight(remeasure(cell, n)), Effect.map((r) => r.merged))
    }
    const grid = yield* gridSearch(
      cells,
      policy,
      (knobs) =>
        trial(knobs, replicates).pipe(
          Effect.tap((o) => hooks.measured({ knobs, outcome: o })),
          Effect.tap((o) => abortOnIntegrity(chosen.candidate, o)),
          Effect.map((o) => climbCell(knobs, o))
        ),
      extend,
      (cell, newBest) => (newBest ? hooks.best(toMeasured(cell)) : Effect.void),
      (cell) => hooks.best(cell === null ? null : toMeasured(cell))
    )
    if (grid.best === null) return { best: null, tiedWithinNoise: [], drift: null }
    const drift = yield* driftCheck(grid.best, grid.feasible, policy, replicates, remeasure,
      (b) => hooks.best(b === null ? null : toMeasured(b)))
    if (drift.best?.knobs !== grid.best.knobs) yield* hooks.best(drift.best === null ? null : toMeasured(drift.best))
    return {
      best: drift.best === null ? null : toMeasured(drift.best),
      tiedWithinNoise: tiedWith(drift.best, drift.cells, policy).map(toMeasured),
      drift: drift.check
    }
  })

/** A Stage 2 cell as the grid search sees it, from its trial's outcome: medians, intervals (N-1), replicates. */
export const climbCell = (knobs: Knobs, outcome: TrialOutcome): ClimbCell<TrialOutcome> => ({
  knobs,
  feasible: outcome.verdict._tag === "Fits",
  score: { tps: outcome.tpsMedian, ttftMs: outcome.ttftMedianMs },
  interval: { tps: outcome.spread.tpsCi95, ttftMs: outcome.spread.ttftCi95Ms },
  replicates: outcome.samples.length,
  value: outcome
})

/**
 * SPEC N-2 drift check (issue 13 item 4): the winner, with at least
 * MIN_DRIFT_REPLICATES replicates, measured once more with `remeasure` (a
 * trial of its own whose replicates join the cell's) (the stage's replicates,
 * when the cap leaves room). It *moved* when the new measurement's interval
 * lies wholly outside the winner's (a new median merely outside a 3-replicate
 * range happens 40 % of the time by chance), or the new trial was infeasible.
 * Not moved: the winner keeps the extra replicates. Moved: every other
 * feasible cell within the tie band of the winner, or within the noise of its
 * new figures, that has room under the cap is measured again too, and the
 * winner is decided afresh over all replicates by the same rule as the grid,
 * the old winner first as the incumbent (`decideOver`: the noise never hands
 * over a win). A winner found infeasible is replaced through `onBest` at once. Returns
 * the winner (null when none stays feasible: B-5), the cells as last measured,
 * and what the check found.
 */
export const driftCheck = <E, R>(
  winner: ClimbCell<TrialOutcome>,
  feasible: ReadonlyArray<ClimbCell<TrialOutcome>>,
  policy: NoisePolicy,
  replicates: number,
  remeasure: (
    cell: ClimbCell<TrialOutcome>,
    n: number
  ) => Effect.Effect<{ readonly merged: ClimbCell<TrialOutcome>; readonly more: TrialOutcome }, E, R>,
  onBest: (cell: ClimbCell<TrialOutcome> | null) => Effect.Effect<void, E, R> = () => Effect.void
): Effect.Effect<
  {
    readonly best: ClimbCell<TrialOutcome> | null
    readonly cells: ReadonlyArray<ClimbCell<TrialOutcome>>
    readonly check: DriftCheck | null
  },
  E,
  R
> =>
  Effect.gen(function*() {
    const n = Math.min(replicates, policy.maxReplicates - winner.replicates)
    // Fewer than 3 replicates give no interval to drift out of (one replicate's is a point).
    if (n <= 0 || winner.interval.tps === null || winner.replicates < MIN_DRIFT_REPLICATES) {
      return { best: winner, cells: feasible, check: null }
    }
    const { merged: remeasured, more: again } = yield* remeasure(winner, n)
    const [lo, hi] = winner.interval.tps
    const newCi = again.spread.tpsCi95
    const moved = again.verdict._tag !== "Fits" || newCi === null || newCi[1] < lo || newCi[0] > hi
    const cells = new Map(feasible.map((c) => [c.knobs, c] as const))
    cells.set(winner.knobs, remeasured)
    if (!moved) {
      yield* Console.error(`[stage 2] drift check: ${describeKnobs(winner.knobs)} measured again within its interval`)
      return { best: remeasured, cells: [...cells.values()], check: { tpsMedian: again.tpsMedian, moved: false, remeasured: [] } }
    }
    // Measured again: every other feasible cell the winner's figures could now stand differently against.
    const near = feasible.filter((c) =>
      c.knobs !== winner.knobs && c.replicates < policy.maxReplicates && (
        decidedByNoise(remeasured, c, policy.epsilon) ||
        (c.score.tps !== null && winner.score.tps !== null && Math.abs(c.score.tps - winner.score.tps) <= policy.epsilon * winner.score.tps)
      )
    )
    yield* Console.error(
      `[stage 2] drift check: ${describeKnobs(winner.knobs)} moved outside its interval (${
        newCi === null ? "infeasible" : `${newCi[0].toFixed(1)}–${newCi[1].toFixed(1)}`
      } tok/s vs ${lo.toFixed(1)}–${hi.toFixed(1)}); measuring ${near.length} cell(s) near it again`
    )
    // The winner, first, is the incumbent: a win is handed over only on a difference the noise cannot flip.
    const decide = () => decideOver([cells.get(winner.knobs)!, ...[...cells.values()].filter((c) => c.knobs !== winner.knobs)], policy.epsilon)
    // A winner found infeasible is replaced now, not after the cells near it (a budget may end the run meanwhile).
    if (!remeasured.feasible) yield* onBest(decide())
    for (const c of near) cells.set(c.knobs, (yield* remeasure(c, Math.min(replicates, policy.maxReplicates - c.replicates))).merged)
    const all = [...cells.values()]
    return {
      best: decide(),
      cells: all.filter((c) => c.feasible),
      check: { tpsMedian: again.tpsMedian, moved: true, remeasured: near.map((c) => c.knobs) }
    }
  })
