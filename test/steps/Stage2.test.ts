import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Knobs } from "../../src/domain/Knobs.js"
import { decidedByNoise, isNewBest } from "../../src/domain/NewBest.js"
import { median, medianCi95 } from "../../src/domain/Stats.js"
import { type ClimbCell, gridSearch } from "../../src/steps/Stage2.js"

const eps = 0.1
const k = (maxBatch: number) => new Knobs({ kvBits: null, maxContext: 512, maxBatch, threads: 2 })

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

/** A simulated cell: its replicates' tok/s so far, drawn in order from `draws`. */
interface Sim {
  readonly tps: ReadonlyArray<number>
}

/**
 * A grid search over simulated measurements (SPEC N-2): each cell's replicates
 * come in order from its own list of tok/s figures (TTFT fixed at 100 ms), 3
 * per measurement; every measure and extend is logged, to see the interleaving.
 */
const simulate = (draws: Record<number, ReadonlyArray<number>>, feasible: Record<number, boolean> = {}, maxReplicates = 9) =>
  Effect.gen(function*() {
    const log: Array<string> = []
    const cell = (knobs: Knobs, tps: ReadonlyArray<number>): ClimbCell<Sim> => ({
      knobs,
      feasible: feasible[knobs.maxBatch!] ?? true,
      score: { tps: median(tps), ttftMs: 100 },
      interval: { tps: medianCi95(tps), ttftMs: [100, 100] },
      replicates: tps.length,
      value: { tps }
    })
    const next = (knobs: Knobs, have: number) => draws[knobs.maxBatch!]!.slice(have, have + 3)
    const result = yield* gridSearch(
      [k(1), k(2)],
      { epsilon: eps, maxReplicates },
      (knobs) => Effect.sync(() => (log.push(`measure ${knobs.maxBatch}`), cell(knobs, next(knobs, 0)))),
      (c) => Effect.sync(() => (log.push(`extend ${c.knobs.maxBatch}`), cell(c.knobs, [...c.value.tps, ...next(c.knobs, c.replicates)]))),
      () => Effect.void
    )
    return { log, result }
  })

describe("gridSearch under noise (SPEC N-2)", () => {
  it.effect("N-2 two cells whose medians differ by less than the noise get more replicates, interleaved, up to the cap; the incumbent stays", () =>
    Effect.gen(function*() {
      // Medians 100 and 104 with a spread of ±20: the intervals overlap across the tie band's edges.
      const { log, result } = yield* simulate({
        1: [100, 80, 120, 96, 104, 85, 115, 90, 110],
        2: [104, 84, 124, 100, 108, 89, 119, 94, 114]
      })
      expect(log).toEqual(["measure 1", "measure 2", "extend 1", "extend 2", "extend 1", "extend 2"])
      expect(result.best?.knobs.maxBatch).toBe(1)
      expect(result.best?.replicates).toBe(9)
      expect(result.tiedWithinNoise.map((c) => c.knobs.maxBatch)).toEqual([2])
    }))
  it.effect("N-2 a real 30 % difference is decided at the minimum replicates: no extra cost when the answer is clear", () =>
    Effect.gen(function*() {
      const { log, result } = yield* simulate({ 1: [100, 98, 102], 2: [130, 128, 133] })
      expect(log).toEqual(["measure 1", "measure 2"])
      expect(result.best?.knobs.maxBatch).toBe(2)
      expect(result.best?.replicates).toBe(3)
      expect(result.tiedWithinNoise).toEqual([])
    }))
  it.effect("N-2 more replicates that settle the decision stop there, before the cap", () =>
    Effect.gen(function*() {
      // Cell 2's first replicate is an outlier (a burst of load): its interval — the range, below 6
      // replicates — overlaps cell 1's. At 9 the order-statistic interval leaves one replicate out on
      // each side and cell 2 is clearly ≈ 30 % faster: decided there, under the cap of 12.
      const { log, result } = yield* simulate({
        1: [100, 99, 101, 100, 100, 100, 100, 100, 100, 100, 100, 100],
        2: [100, 130, 131, 130, 131, 130, 130, 130, 130, 130, 130, 130]
      }, {}, 12)
      expect(log).toEqual(["measure 1", "measure 2", "extend 1", "extend 2", "extend 1", "extend 2"])
      expect(result.best?.knobs.maxBatch).toBe(2)
      expect(result.best?.replicates).toBe(9)
      expect(result.tiedWithinNoise).toEqual([])
    }))
  it.effect("N-2 a cap at the minimum replicates never extends: the incumbent stays, tied within noise", () =>
    Effect.gen(function*() {
      const { log, result } = yield* simulate({ 1: [100, 80, 120], 2: [104, 84, 124] }, {}, 3)
      expect(log).toEqual(["measure 1", "measure 2"])
      expect(result.best?.knobs.maxBatch).toBe(1)
      expect(result.tiedWithinNoise.map((c) => c.knobs.maxBatch)).toEqual([2])
    }))
})

describe("decidedByNoise (SPEC N-2)", () => {
  it("N-2 overlapping intervals across the tie band's edge could flip B-3's decision", () => {
    expect(decidedByNoise({ tps: [90, 110], ttftMs: null }, { tps: [100, 125], ttftMs: null }, eps)).toBe(true)
  })
  it("N-2 intervals wholly apart, or wholly inside the band with TTFTs apart, decide on measurement", () => {
    expect(decidedByNoise({ tps: [98, 102], ttftMs: [100, 110] }, { tps: [128, 133], ttftMs: [100, 110] }, eps)).toBe(false)
    expect(decidedByNoise({ tps: [99, 101], ttftMs: [100, 110] }, { tps: [100, 102], ttftMs: [200, 220] }, eps)).toBe(false)
  })
  it("N-2 inside the band the TTFT decides: overlapping TTFT intervals are noise", () => {
    expect(decidedByNoise({ tps: [99, 101], ttftMs: [100, 150] }, { tps: [100, 102], ttftMs: [140, 220] }, eps)).toBe(true)
  })
  it("N-2 no interval, or no throughput to beat, is nothing to judge the noise by", () => {
    expect(decidedByNoise({ tps: null, ttftMs: null }, { tps: [1, 2], ttftMs: null }, eps)).toBe(false)
    expect(decidedByNoise({ tps: [0, 0], ttftMs: null }, { tps: [1, 2], ttftMs: null }, eps)).toBe(false)
  })
})

describe("gridSearch (SPEC B-2, B-5)", () => {
  it.effect("B-2 measures every cell in order and keeps the best feasible one", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const table: Record<number, { tps: number; feasible: boolean }> = {
        1: { tps: 50, feasible: true },
        2: { tps: 90, feasible: false },
        3: { tps: 70, feasible: true },
        4: { tps: 72, feasible: true }
      }
      const { best } = yield* gridSearch([k(1), k(2), k(3), k(4)], { epsilon: eps, maxReplicates: 3 }, (knobs) =>
        Effect.succeed({
          knobs,
          feasible: table[knobs.maxBatch!]!.feasible,
          score: { tps: table[knobs.maxBatch!]!.tps, ttftMs: 100 },
          interval: { tps: [table[knobs.maxBatch!]!.tps, table[knobs.maxBatch!]!.tps] as const, ttftMs: [100, 100] as const },
          replicates: 3,
          value: knobs.maxBatch
        }), Effect.succeed, (c) => Effect.sync(() => void seen.push(c.knobs.maxBatch!)))
      expect(seen).toEqual([1, 2, 3, 4])
      expect(best?.value).toBe(3) // 72 is inside 3's tie band with equal TTFT: incumbent stays
    }))
  it.effect("B-5 no feasible cell gives null (the caller recommends Stage 1's configuration)", () =>
    Effect.gen(function*() {
      const { best } = yield* gridSearch([k(1)], { epsilon: eps, maxReplicates: 3 }, (knobs) =>
        Effect.succeed({ knobs, feasible: false, score: { tps: 10, ttftMs: 1 }, interval: { tps: null, ttftMs: null }, replicates: 3, value: 0 }), Effect.succeed, () => Effect.void)
      expect(best).toBeNull()
    }))
})
