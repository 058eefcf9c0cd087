import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Knobs } from "../../src/domain/Knobs.js"
import { decidedByNoise, isNewBest } from "../../src/domain/NewBest.js"
import { median, medianCi95 } from "../../src/domain/Stats.js"
import { type ClimbCell, driftCheck, gridSearch } from "../../src/steps/Stage2.js"
import { mergeOutcomes, type ProbeSample, summarizeTrial, type TrialOutcome } from "../../src/domain/Trial.js"
import { Verdict } from "../../src/domain/Verdict.js"

/** A feasible probe sample of `tps` tokens/s and a 100 ms TTFT. */
const sampleOf = (tps: number): ProbeSample => ({
  failure: null, ttftMs: 100, tps, promptTokens: null, completionTokens: 8, totalMs: 200, serverTimings: null
})

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

/** A simulated cell over its replicates' tok/s (TTFT fixed at 100 ms). */
const simCell = (knobs: Knobs, tps: ReadonlyArray<number>, feasible = true): ClimbCell<Sim> => ({
  knobs,
  feasible,
  score: { tps: median(tps), ttftMs: 100 },
  interval: { tps: medianCi95(tps), ttftMs: [100, 100] },
  replicates: tps.length,
  value: { tps }
})

/**
 * A grid search over simulated measurements (SPEC N-2): each cell's replicates
 * come in order from its own list of tok/s figures (TTFT fixed at 100 ms), 3
 * per measurement; every measure and extend is logged, to see the interleaving.
 */
const simulate = (draws: Record<number, ReadonlyArray<number>>, feasible: Record<number, boolean> = {}, maxReplicates = 9) =>
  Effect.gen(function*() {
    const log: Array<string> = []
    const cell = (knobs: Knobs, tps: ReadonlyArray<number>) => simCell(knobs, tps, feasible[knobs.maxBatch!] ?? true)
    const next = (knobs: Knobs, have: number) => draws[knobs.maxBatch!]!.slice(have, have + 3)
    const result = yield* gridSearch(
      Object.keys(draws).map((b) => k(Number(b))),
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
      // Medians 100 and 104 with a spread of ±20: the ratio 1.04 lies within its uncertainty (±0.2 each, in quadrature) of the band's edge 1.1.
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
      // Cell 2's first replicate is an outlier (a burst of load): its interval — the range, up to 8
      // replicates — is too wide to tell it from cell 1's beyond the tie band. At 9 the order-statistic interval leaves one replicate out on
      // each side and cell 2 is clearly ≈ 30 % faster: decided there, under the cap of 12.
      const { log, result } = yield* simulate({
        1: [100, 99, 101, 100, 100, 100, 100, 100, 100, 100, 100, 100],
        2: [60, 130, 131, 130, 131, 130, 130, 130, 130, 130, 130, 130]
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

describe("gridSearch under noise, edge cases (SPEC N-2)", () => {
  it.effect("N-2 a cap where more replicates cannot narrow an interval (8: still the range) costs none: the incumbent stays at once", () =>
    Effect.gen(function*() {
      const { log, result } = yield* simulate({ 1: [100, 80, 120], 2: [104, 84, 124] }, {}, 8)
      expect(log).toEqual(["measure 1", "measure 2"])
      expect(result.best?.knobs.maxBatch).toBe(1)
      expect(result.tiedWithinNoise.map((c) => c.knobs.maxBatch)).toEqual([2])
    }))
  it.effect("N-2 tied within noise lists only cells tied with the final winner, not with an incumbent it later beat", () =>
    Effect.gen(function*() {
      const { log, result } = yield* simulate({
        1: [100, 80, 120, 96, 104, 85, 115, 90, 110],
        2: [104, 84, 124, 100, 108, 89, 119, 94, 114],
        3: [150, 149, 151]
      })
      expect(result.best?.knobs.maxBatch).toBe(3)
      expect(result.tiedWithinNoise).toEqual([])
      expect(log).toEqual(["measure 1", "measure 2", "extend 1", "extend 2", "extend 1", "extend 2", "measure 3"])
    }))
  it.effect("N-2 B-2 an incumbent that fails a replicate it was given loses its place; the challenger is judged against the best left", () =>
    Effect.gen(function*() {
      const bests: Array<number | null> = []
      const first: Record<number, ReadonlyArray<number>> = { 1: [100, 80, 120], 2: [104, 84, 124] }
      const result = yield* gridSearch([k(1), k(2)], { epsilon: eps, maxReplicates: 9 },
        (knobs) => Effect.succeed(simCell(knobs, first[knobs.maxBatch!]!)),
        // Cell 1 fails one of its extra replicates (an out-of-memory, say): infeasible now (B-2).
        (c) => Effect.succeed(simCell(c.knobs, [...c.value.tps, 100, 100, 100], c.knobs.maxBatch !== 1)),
        () => Effect.void,
        (b) => Effect.sync(() => void bests.push(b?.knobs.maxBatch ?? null)))
      expect(bests).toEqual([null])
      expect(result.best?.knobs.maxBatch).toBe(2)
      expect(result.feasible.map((c) => c.knobs.maxBatch)).toEqual([2])
    }))
})

describe("a cell measured again in a start of its own (SPEC N-2)", () => {
  it("N-2 the merged outcome keeps the first start's startedAt and time before its spawn; the providers' phases add up", () => {
    const at = (startedAt: string, preLoadMs: number) =>
      summarizeTrial(Verdict.Fits(), [sampleOf(100)], {
        calibration: null, replicates: 1, startedAt,
        phases: { preLoadMs, loadMs: 400, preWarmMs: 50, probeMs: 900 }, marginal: false, background: null
      })
    const merged = mergeOutcomes(at("2026-01-01T00:00:00.000Z", 30), at("2026-01-01T00:01:00.000Z", 7))
    expect(merged.startedAt).toBe("2026-01-01T00:00:00.000Z")
    expect(merged.phases).toEqual({ preLoadMs: 30, loadMs: 800, preWarmMs: 100, probeMs: 1800 })
  })
})

describe("the drift check (SPEC N-2, issue 13 item 4)", () => {
  const cellOf = (maxBatch: number, tps: ReadonlyArray<number>): ClimbCell<TrialOutcome> => {
    const outcome = summarizeTrial(Verdict.Fits(), tps.map((t) => sampleOf(t)), {
      calibration: null, replicates: tps.length, startedAt: "2026-01-01T00:00:00.000Z",
      phases: { loadMs: null, preWarmMs: null, probeMs: null }, marginal: false, background: null
    })
    return {
      knobs: k(maxBatch), feasible: true, score: { tps: outcome.tpsMedian, ttftMs: outcome.ttftMedianMs },
      interval: { tps: outcome.spread.tpsCi95, ttftMs: outcome.spread.ttftCi95Ms }, replicates: tps.length, value: outcome
    }
  }
  /** A remeasure that adds `more[maxBatch]` tok/s replicates and logs which cell it measured. */
  const remeasurer = (more: Record<number, ReadonlyArray<number>>, log: Array<number>) => (c: ClimbCell<TrialOutcome>, n: number) =>
    Effect.sync(() => {
      log.push(c.knobs.maxBatch!)
      const extra = cellOf(c.knobs.maxBatch!, more[c.knobs.maxBatch!]!.slice(0, n)).value
      const merged = mergeOutcomes(c.value, extra)
      return { merged: { ...c, score: { tps: merged.tpsMedian, ttftMs: merged.ttftMedianMs }, interval: { tps: merged.spread.tpsCi95, ttftMs: merged.spread.ttftCi95Ms }, replicates: merged.samples.length, value: merged }, more: extra }
    })
  it.effect("N-2 a winner measured again inside its interval keeps the extra replicates; nothing else is measured", () =>
    Effect.gen(function*() {
      const log: Array<number> = []
      const w = cellOf(1, [100, 98, 102])
      const r = yield* driftCheck(w, [w, cellOf(2, [95, 94, 96])], { epsilon: eps, maxReplicates: 9 }, 3, remeasurer({ 1: [101, 99, 100] }, log))
      expect(log).toEqual([1])
      expect(r.check).toMatchObject({ moved: false, remeasured: [] })
      expect(r.best?.knobs.maxBatch).toBe(1)
      expect(r.best?.replicates).toBe(6)
    }))
  it.effect("N-2 a winner that moved wholly outside its interval: the cells in its tie band are measured again and the noise never hands over the win", () =>
    Effect.gen(function*() {
      const log: Array<number> = []
      const w = cellOf(1, [100, 98, 102])
      const near = cellOf(2, [95, 94, 96])
      const far = cellOf(3, [50, 49, 51])
      const r = yield* driftCheck(w, [w, near, far], { epsilon: eps, maxReplicates: 9 }, 3,
        remeasurer({ 1: [80, 79, 81], 2: [95, 96, 94] }, log))
      expect(log).toEqual([1, 2])
      expect(r.check?.moved).toBe(true)
      expect(r.check?.remeasured.map((kn) => kn.maxBatch)).toEqual([2])
      // Cell 1's interval now spans 79–102: cell 2's ratio to it lies within that uncertainty of the band's edge, so it stays.
      expect(r.best?.knobs.maxBatch).toBe(1)
    }))
  it.effect("N-2 after a move the old winner is the incumbent, whatever the grid order: a cell earlier in the grid takes over only on a clear difference", () =>
    Effect.gen(function*() {
      const log: Array<number> = []
      const earlier = cellOf(1, [80, 78, 82])
      const w = cellOf(2, [100, 98, 102])
      const r = yield* driftCheck(w, [earlier, w], { epsilon: eps, maxReplicates: 9 }, 3,
        remeasurer({ 2: [70, 72, 75], 1: [80, 79, 81] }, log))
      expect(r.check?.moved).toBe(true)
      // The winner's new figures (70–102) put the earlier cell's ratio within their uncertainty of a band edge: it is measured again too.
      expect(log).toEqual([2, 1])
      expect(r.best?.knobs.maxBatch).toBe(2)
    }))
  it.effect("N-2 fewer than 3 replicates give no interval to drift out of: no check", () =>
    Effect.gen(function*() {
      const log: Array<number> = []
      const w = cellOf(1, [100])
      const r = yield* driftCheck(w, [w], { epsilon: eps, maxReplicates: 9 }, 1, remeasurer({ 1: [50] }, log))
      expect(log).toEqual([])
      expect(r.check).toBeNull()
    }))
})

describe("decidedByNoise (SPEC N-2)", () => {
  /** A cell measured at `tps` tok/s within [lo, hi] and `ttft` ms within [tlo, thi]. */
  const at = (tps: number, lo: number, hi: number, ttft: number | null = null, tlo = 0, thi = 0) => ({
    score: { tps, ttftMs: ttft },
    interval: { tps: [lo, hi] as const, ttftMs: ttft === null ? null : [tlo, thi] as const }
  })
  it("N-2 a ratio within the intervals' combined uncertainty of a tie-band edge could flip B-3's decision", () => {
    // 112.5 ÷ 100 = 1.125, 0.025 from the 1.1 edge; the intervals' relative half-widths (0.10, 0.11) combine to 0.15.
    expect(decidedByNoise(at(100, 90, 110), at(112.5, 100, 125), eps)).toBe(true)
  })
  it("N-2 a difference well beyond the noise, or inside the band with TTFTs apart, is decided on measurement", () => {
    expect(decidedByNoise(at(100, 98, 102, 105, 100, 110), at(130, 128, 133, 105, 100, 110), eps)).toBe(false)
    expect(decidedByNoise(at(100, 99, 101, 105, 100, 110), at(101, 100, 102, 210, 200, 220), eps)).toBe(false)
    // The demo's case: 38 % apart with skewed intervals (158–195 against 202–238) is no tie.
    expect(decidedByNoise(at(165.8, 158, 195.3), at(228.3, 202.2, 237.7), eps)).toBe(false)
  })
  it("N-2 inside the band the TTFT decides: TTFTs closer than their combined half-widths are noise", () => {
    expect(decidedByNoise(at(100, 99, 101, 125, 100, 150), at(101, 100, 102, 160, 120, 200), eps)).toBe(true)
  })
  it("N-2 no interval, or no throughput to beat, is nothing to judge the noise by", () => {
    expect(decidedByNoise({ score: { tps: null, ttftMs: null }, interval: { tps: null, ttftMs: null } }, at(1.5, 1, 2), eps)).toBe(false)
    expect(decidedByNoise(at(0, 0, 0), at(1.5, 1, 2), eps)).toBe(false)
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
