import { binomialDistribution, coefficientOfVariation, mean } from "simple-statistics"

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

/**
 * A 95 % confidence interval `[lo, hi]` of the median (SPEC N-1), distribution-free:
 * the order-statistic (sign-test) interval [x₍k₎, x₍n−k+1₎] with the largest k whose
 * binomial tail P(Binom(n, ½) ≤ k−1) stays ≤ 2.5 % (Conover, *Practical Nonparametric
 * Statistics*, 3rd ed., §3.2). It assumes nothing about the shape of the noise
 * (throughput noise is skewed: bursts of load only slow a replicate down), which a
 * normal-theory or bootstrap interval on 3–9 replicates cannot claim. Below 6
 * replicates no pair of order statistics reaches 95 % and the interval is the
 * sample's range (coverage 75 % at 3, 94 % at 5): `medianCoverage` says how much.
 * The binomial table is simple-statistics' `binomialDistribution` (a maintained
 * library; the rule itself is one line). Null for an empty sample.
 */
export const medianCi95 = (xs: ReadonlyArray<number>): readonly [number, number] | null => {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const k = orderStatisticRank(s.length)
  return [s[k - 1]!, s[s.length - k]!]
}

/**
 * The 1-based rank k of the lower bound of `medianCi95` for n replicates: the largest
 * k ≥ 1 with P(Binom(n, ½) ≤ k−1) ≤ 0.025 (1 when none is).
 */
export const orderStatisticRank = (n: number): number => {
  const pmf = binomialDistribution(n, 0.5) ?? []
  let k = 1
  let tail = pmf[0] ?? 0
  while (k < Math.ceil(n / 2) && tail + (pmf[k] ?? 0) <= 0.025) {
    tail += pmf[k] ?? 0
    k++
  }
  return k
}

/**
 * The coverage of `medianCi95` for n replicates: the median lies below x₍k₎ when k−1
 * or fewer replicates fall below it, so coverage = 1 − 2·P(Binom(n, ½) ≤ k−1)
 * (0.75 at 3, 0.94 at 5, 0.96 at 9).
 */
export const medianCoverage = (n: number): number => {
  if (n <= 0) return 0
  const pmf = binomialDistribution(n, 0.5) ?? []
  return 1 - 2 * pmf.slice(0, orderStatisticRank(n)).reduce((a, p) => a + p, 0)
}

/**
 * Coefficient of variation (sample standard deviation ÷ mean, SPEC N-1) of a
 * sample; null below 2 values or when the mean is not positive. From
 * simple-statistics (`coefficientOfVariation`).
 */
export const cv = (xs: ReadonlyArray<number>): number | null => {
  if (xs.length < 2) return null
  const m = mean([...xs])
  return m > 0 ? coefficientOfVariation([...xs]) : null
}
