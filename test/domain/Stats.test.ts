import { describe, expect, it } from "@effect/vitest"
import { median, percentile } from "../../src/domain/Stats.js"

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
