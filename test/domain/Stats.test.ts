import { describe, expect, it } from "@effect/vitest"
import { cv, median, medianCi95, medianCoverage, percentile } from "../../src/domain/Stats.js"

describe("replicate statistics (SPEC B-2)", () => {
  it("B-2 median of odd and even samples, null for none", () => {
    expect(median([30, 10, 20])).toBe(20)
    expect(median([40, 10, 20, 30])).toBe(25)
    expect(median([])).toBeNull()
  })
  it("B-2 p95 by nearest rank: the max of up to 20 replicates", () => {
    expect(percentile([100, 300, 200], 95)).toBe(300)
    expect(percentile(Array.from({ length: 40 }, (_, i) => i + 1), 95)).toBe(38)
    expect(percentile([], 95)).toBeNull()
  })
})

describe("the median's interval (SPEC N-1)", () => {
  const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1)
  it("N-1 order-statistic ranks: the range up to 8 replicates, one in from each end at 9, [6, 15] of 20", () => {
    expect(medianCi95([])).toBeNull()
    expect(medianCi95([7])).toEqual([7, 7])
    expect(medianCi95([3, 1, 2])).toEqual([1, 3])
    expect(medianCi95(upTo(8))).toEqual([1, 8])
    expect(medianCi95(upTo(9))).toEqual([2, 8])
    expect(medianCi95(upTo(20))).toEqual([6, 15])
  })
  it("N-1 coverage: 75 % at 3, 94 % at 5, 97 % at 6, 96 % at 9 and 20 (1 − 2·P(Binom(n, ½) ≤ k−1))", () => {
    expect(medianCoverage(3)).toBeCloseTo(0.75)
    expect(medianCoverage(5)).toBeCloseTo(0.9375)
    expect(medianCoverage(6)).toBeCloseTo(0.96875)
    expect(medianCoverage(9)).toBeCloseTo(0.9609, 3)
    expect(medianCoverage(20)).toBeCloseTo(0.9586, 3)
  })
  it("N-1 coefficient of variation: sample standard deviation ÷ mean; none below 2 values", () => {
    expect(cv([1, 2, 3, 4])).toBeCloseTo(0.5164, 3)
    expect(cv([5])).toBeNull()
  })
})
