import { Effect } from "effect"
import type { Knobs } from "../domain/Knobs.js"

/** The figures the new-best rule compares: median tokens/s and TTFT (ms, null when missing). */
export interface CellScore {
  readonly tps: number | null
  readonly ttftMs: number | null
}

/**
 * SPEC B-3 `isNewBest`: does `next` beat the incumbent `best`?
 * - best throughput ≤ 0 (or no best yet): `next` wins iff its throughput > 0;
 * - otherwise a strictly higher throughput outside the tie band
 *   |next − best| ≤ ε·best wins (a lower one outside the band loses);
 * - inside the band the lower TTFT wins; a missing TTFT never beats a present
 *   one, and two missing TTFTs keep the incumbent.
 * `epsilon` is `--tps-tie-epsilon` (default 0.10). Missing throughput counts as 0.
 */
export const isNewBest = (best: CellScore | null, next: CellScore, epsilon: number): boolean => {
  const bestTps = best?.tps ?? 0
  const nextTps = next.tps ?? 0
  if (best === null || bestTps <= 0) return nextTps > 0
  if (Math.abs(nextTps - bestTps) > epsilon * bestTps) return nextTps > bestTps
  if (next.ttftMs === null) return false
  if (best.ttftMs === null) return true
  return next.ttftMs < best.ttftMs
}

/** A measured Stage 2 cell, as the climb sees it. */
export interface ClimbCell<A> {
  readonly knobs: Knobs
  readonly feasible: boolean
  readonly score: CellScore
  readonly value: A
}

/**
 * Stage 2 (SPEC B-2, B-3): measures every cell in the given (deterministic)
 * order with `measure`, and returns the winner by `isNewBest` among feasible
 * cells, or null when none was feasible (then the caller recommends the Stage 1
 * configuration, B-5). `onCell` sees every cell with whether it is the new best.
 */
export const hillClimb = <A, E, R, E2, R2>(
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
