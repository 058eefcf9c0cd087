/**
 * The Pareto front of measured cells (issue 17, part 6): the cells no other
 * cell beats on both throughput and latency at once.
 */

/** A measured point: `tps` (aggregate tokens/s, higher is better) and `ttftP95Ms` (ms, lower is better). */
export interface ParetoPoint {
  readonly tps: number
  readonly ttftP95Ms: number
}

/**
 * Indexes (into `points`, ascending) of the Pareto front: a point is on it
 * unless another has at least its tok/s and at most its TTFT p95, and is
 * better in one of them. Equal points are all on the front. O(n²): a tune
 * measures tens of cells, not thousands.
 */
export const paretoFront = (points: ReadonlyArray<ParetoPoint>): Array<number> =>
  points.flatMap((p, i) =>
    points.some((q) => q.tps >= p.tps && q.ttftP95Ms <= p.ttftP95Ms && (q.tps > p.tps || q.ttftP95Ms < p.ttftP95Ms)) ? [] : [i]
  )
