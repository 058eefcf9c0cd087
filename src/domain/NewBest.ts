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

/** How a challenger stands against the incumbent on throughput alone (B-3): outside the band above, inside it, or below. */
const standing = (best: number, next: number, epsilon: number): "win" | "tie" | "lose" =>
  Math.abs(next - best) > epsilon * best ? (next > best ? "win" : "lose") : "tie"

/**
 * SPEC N-2: could the noise flip B-3's decision between incumbent `best` and
 * challenger `next`? True when some pair of throughputs within their 95 %
 * intervals stands differently (win, tie band, lose) than another — its
 * extremes are the incumbent's high end against the challenger's low end and
 * the reverse — or when both ends fall in the tie band, where the TTFT
 * decides, and the TTFT intervals overlap. False when an interval is missing
 * (nothing to judge the noise by) or the incumbent's throughput is ≤ 0 (B-3
 * then needs no comparison).
 */
export const decidedByNoise = (best: CellInterval, next: CellInterval, epsilon: number): boolean => {
  if (best.tps === null || next.tps === null || best.tps[0] <= 0) return false
  const worst = standing(best.tps[1], next.tps[0], epsilon)
  const bestCase = standing(best.tps[0], next.tps[1], epsilon)
  if (worst !== bestCase) return true
  if (worst !== "tie" || best.ttftMs === null || next.ttftMs === null) return false
  return !(next.ttftMs[1] < best.ttftMs[0] || next.ttftMs[0] > best.ttftMs[1])
}
