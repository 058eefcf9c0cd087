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

/** 95 % intervals of a cell's median tokens/s and TTFT (ms), as `medianCi95` gives them (SPEC N-1); null when unmeasured. */
export interface CellInterval {
  readonly tps: readonly [number, number] | null
  readonly ttftMs: readonly [number, number] | null
}

/** A measured cell as the noise rule sees it: its medians and their intervals. */
export interface NoisyScore {
  readonly score: CellScore
  readonly interval: CellInterval
}

/** Half an interval's width relative to `at` (0 when `at` ≤ 0). */
const relHalfWidth = (ci: readonly [number, number], at: number) => (at > 0 ? (ci[1] - ci[0]) / 2 / at : 0)

/**
 * SPEC N-2: could the noise flip B-3's decision between incumbent `best` and
 * challenger `next`? B-3 compares the throughput ratio next ÷ best with the
 * tie band's edges 1 ± ε. The ratio's uncertainty is taken as the two
 * intervals' relative half-widths combined in quadrature (as for a ratio of
 * two independent estimates): the decision is noise when an edge lies within
 * that uncertainty of the ratio (times the edge). Inside the band, where the
 * lower TTFT wins, it is noise when the TTFT medians differ by less than their
 * intervals' half-widths combined. False when a median or interval is missing
 * (nothing to judge the noise by) or the incumbent's throughput is ≤ 0 (B-3
 * then needs no comparison).
 */
export const decidedByNoise = (best: NoisyScore, next: NoisyScore, epsilon: number): boolean => {
  const [b, n] = [best.score.tps, next.score.tps]
  if (b === null || n === null || best.interval.tps === null || next.interval.tps === null || b <= 0) return false
  const ratio = n / b
  const u = Math.hypot(relHalfWidth(best.interval.tps, b), relHalfWidth(next.interval.tps, n))
  for (const edge of [1 + epsilon, 1 - epsilon]) if (Math.abs(ratio - edge) < u * edge) return true
  if (Math.abs(n - b) > epsilon * b) return false
  const [bt, nt] = [best.score.ttftMs, next.score.ttftMs]
  if (bt === null || nt === null || best.interval.ttftMs === null || next.interval.ttftMs === null) return false
  const half = (ci: readonly [number, number]) => (ci[1] - ci[0]) / 2
  return Math.abs(nt - bt) < Math.hypot(half(best.interval.ttftMs), half(next.interval.ttftMs))
}
