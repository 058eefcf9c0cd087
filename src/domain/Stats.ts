/**
 * Order statistics over replicates (SPEC B-2: medians and p95).
 * Both return null for an empty sample.
 */

/** Median: the middle value, or the mean of the two middle values. */
export const median = (xs: ReadonlyArray<number>): number | null => {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** p-th percentile by the nearest-rank method (p in (0, 100]); p95 of 3 replicates is their max. */
export const percentile = (xs: ReadonlyArray<number>, p: number): number | null => {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1]!
}
