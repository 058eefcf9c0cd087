import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Knobs } from "../../src/domain/Knobs.js"
import { isNewBest } from "../../src/domain/NewBest.js"
import { gridSearch } from "../../src/steps/Stage2.js"

const eps = 0.1

describe("isNewBest (SPEC B-3)", () => {
  it("B-3 with no best yet, a cell wins iff its throughput > 0", () => {
    expect(isNewBest(null, { tps: 5, ttftMs: 100 }, eps)).toBe(true)
    expect(isNewBest(null, { tps: 0, ttftMs: 100 }, eps)).toBe(false)
    expect(isNewBest(null, { tps: null, ttftMs: 100 }, eps)).toBe(false)
  })
  it("B-3 best throughput <= 0: a new cell wins iff its throughput > 0", () => {
    expect(isNewBest({ tps: 0, ttftMs: 10 }, { tps: 0.5, ttftMs: 9999 }, eps)).toBe(true)
    expect(isNewBest({ tps: 0, ttftMs: 10 }, { tps: 0, ttftMs: 1 }, eps)).toBe(false)
    expect(isNewBest({ tps: -1, ttftMs: 10 }, { tps: 0, ttftMs: 1 }, eps)).toBe(false)
  })
  it("B-3 strictly higher throughput outside the tie band wins, lower outside loses", () => {
    expect(isNewBest({ tps: 100, ttftMs: 100 }, { tps: 111, ttftMs: 500 }, eps)).toBe(true)
    expect(isNewBest({ tps: 100, ttftMs: 500 }, { tps: 89, ttftMs: 100 }, eps)).toBe(false)
  })
  it("B-3 inside the band (|new - best| <= eps*best, edge included) the lower TTFT wins", () => {
    expect(isNewBest({ tps: 100, ttftMs: 500 }, { tps: 110, ttftMs: 499 }, eps)).toBe(true)
    expect(isNewBest({ tps: 100, ttftMs: 500 }, { tps: 110, ttftMs: 501 }, eps)).toBe(false)
    expect(isNewBest({ tps: 100, ttftMs: 500 }, { tps: 90, ttftMs: 100 }, eps)).toBe(true)
    expect(isNewBest({ tps: 100, ttftMs: 500 }, { tps: 105, ttftMs: 500 }, eps)).toBe(false)
  })
  it("B-3 inside the band a missing TTFT never beats a present one; two missing keep the incumbent", () => {
    expect(isNewBest({ tps: 100, ttftMs: 500 }, { tps: 105, ttftMs: null }, eps)).toBe(false)
    expect(isNewBest({ tps: 100, ttftMs: null }, { tps: 95, ttftMs: 900 }, eps)).toBe(true)
    expect(isNewBest({ tps: 100, ttftMs: null }, { tps: 105, ttftMs: null }, eps)).toBe(false)
  })
})

describe("gridSearch (SPEC B-2, B-5)", () => {
  const k = (maxBatch: number) => new Knobs({ kvBits: null, maxContext: 512, maxBatch, threads: 2 })
  it.effect("B-2 measures every cell in order and keeps the best feasible one", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const table: Record<number, { tps: number; feasible: boolean }> = {
        1: { tps: 50, feasible: true },
        2: { tps: 90, feasible: false },
        3: { tps: 70, feasible: true },
        4: { tps: 72, feasible: true }
      }
      const best = yield* gridSearch([k(1), k(2), k(3), k(4)], eps, (knobs) =>
        Effect.succeed({
          knobs,
          feasible: table[knobs.maxBatch!]!.feasible,
          score: { tps: table[knobs.maxBatch!]!.tps, ttftMs: 100 },
          value: knobs.maxBatch
        }), (c) => Effect.sync(() => void seen.push(c.knobs.maxBatch!)))
      expect(seen).toEqual([1, 2, 3, 4])
      expect(best?.value).toBe(3) // 72 is inside 3's tie band with equal TTFT: incumbent stays
    }))
  it.effect("B-5 no feasible cell gives null (the caller recommends Stage 1's configuration)", () =>
    Effect.gen(function*() {
      const best = yield* gridSearch([k(1)], eps, (knobs) =>
        Effect.succeed({ knobs, feasible: false, score: { tps: 10, ttftMs: 1 }, value: 0 }), () => Effect.void)
      expect(best).toBeNull()
    }))
})
