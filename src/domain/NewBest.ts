/** SPEC B-3: the rule that decides whether a Stage 2 cell beats the best so far. */

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
