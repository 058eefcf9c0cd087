/**
 * Budgets composed in a script through the library entry point (issue:
 * library surface, SPEC H-3): Stage 1 and the grid search are plain Effects,
 * the budget is `Effect.timeoutFail` around them, the best-so-far lives in a
 * Ref outside it. Probes take simulated time (TestClock): no real sleeping.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Ref, TestClock } from "effect"
import {
  BudgetExhausted,
  type Candidate,
  cells,
  climbCell,
  gridSearch,
  Knobs,
  runTrial,
  stage1,
  type StubEvent
} from "llm-autotune"
import { fakeHttp, fakeProvider, simulatedSettings, startsAndStops } from "../support/simulatedProvider.js"

const settings = simulatedSettings
const cand = (id: string, rank: number): Candidate => ({ id, model: id, rank, paramCount: null, ggufFile: false, fileBytes: null })
const over = (budgetMs: number) => new BudgetExhausted({ budgetMs, message: `budget of ${budgetMs} ms ran out` })

/**
 * The script under test: Stage 1 over `candidates`, then a grid search over kv-bits
 * unset/8/4, within `budgetMs`; the best (model, knobs, tok/s) so far is kept
 * in `best` so it survives the budget.
 */
const script = (candidates: ReadonlyArray<Candidate>, budgetMs: number, best: Ref.Ref<{ model: string; knobs: Knobs; tps: number | null } | null>) =>
  Effect.gen(function*() {
    const chosen = yield* stage1(settings, candidates, 3, () => Effect.void)
    yield* Ref.set(best, { model: chosen.candidate.id, knobs: Knobs.defaults, tps: chosen.outcome.tpsMedian })
    yield* gridSearch(
      cells({ kvBits: [null, 8, 4], maxContext: [100], maxBatch: [1], threads: [] }),
      // The replicate cap at the replicates: no close decision gets more (SPEC N-2).
      { epsilon: 0.1, maxReplicates: 3 },
      (knobs) =>
        Effect.map(runTrial(settings, chosen.candidate, knobs, 3, chosen.outcome.calibration), (o) => climbCell(knobs, o)),
      Effect.succeed,
      (cell, newBest) => newBest ? Ref.set(best, { model: chosen.candidate.id, knobs: cell.knobs, tps: cell.value.tpsMedian }) : Effect.void
    )
  }).pipe(Effect.timeoutFail({ duration: `${budgetMs} millis`, onTimeout: () => over(budgetMs) }))

/** Runs the script forked under TestClock, advancing `advanceS` simulated seconds; counts provider starts and stops. */
const run = (candidates: ReadonlyArray<Candidate>, budgetMs: number, advanceS: number) =>
  Effect.gen(function*() {
    const journal = yield* Ref.make<ReadonlyArray<StubEvent>>([])
    const best = yield* Ref.make<{ model: string; knobs: Knobs; tps: number | null } | null>(null)
    const wallStart = Date.now()
    const fiber = yield* Effect.fork(script(candidates, budgetMs, best).pipe(Effect.provide(Layer.merge(fakeProvider(journal), fakeHttp))))
    yield* TestClock.adjust(`${advanceS} seconds`)
    const exit = yield* Fiber.await(fiber)
    return { exit, best: yield* Ref.get(best), ...startsAndStops(yield* Ref.get(journal)), wallMs: Date.now() - wallStart }
  })

describe("budgets through the library, under TestClock (SPEC H-3)", () => {
  it.effect("H-3 a budget that expires in Stage 1 leaves no choice, and the one started provider is released", () =>
    Effect.gen(function*() {
      // slow-8b's trial takes 24 simulated seconds (3 pre-warm requests + 3 probes of 4 s TTFT).
      const r = yield* run([cand("slow-8b", 1), cand("fast-1b", 2)], 10_000, 60)
      expect(r.exit).toEqual(Exit.fail(over(10_000)))
      expect(r.best).toBeNull()
      expect([r.started, r.stopped]).toEqual([1, 1])
      expect(r.wallMs).toBeLessThan(1000)
    }))

  it.effect("H-3 a budget that expires in Stage 2 keeps the best cell measured so far; every provider is released", () =>
    Effect.gen(function*() {
      // fast-1b: Stage 1 ends at 6.6 s, cell unset at 13.2 s, cell 8 at 19.5 s (3 pre-warm requests each); 21 s cuts cell 4.
      const r = yield* run([cand("fast-1b", 1)], 21_000, 60)
      expect(r.exit).toEqual(Exit.fail(over(21_000)))
      expect(r.best?.model).toBe("fast-1b")
      expect(r.best?.knobs.kvBits).toBe(8)
      expect(r.best?.tps).toBeCloseTo(30)
      expect([r.started, r.stopped]).toEqual([4, 4])
      expect(r.wallMs).toBeLessThan(1000)
    }))

  it.effect("H-3 a budget cutting the next cell during its pre-warm: the finished cells count, the cut one is released", () =>
    Effect.gen(function*() {
      // Stage 1 ends at 6.6 s and cell unset at 13.2 s; a 13.5 s budget cuts cell 8 at its start (its pre-warm).
      const r = yield* run([cand("fast-1b", 1)], 13_500, 60)
      expect(r.exit).toEqual(Exit.fail(over(13_500)))
      expect(r.best?.knobs.kvBits).toBeNull()
      expect(r.best?.knobs.maxContext).toBe(100)
      expect([r.started, r.stopped]).toEqual([3, 3])
      expect(r.wallMs).toBeLessThan(1000)
    }))

  it.effect("H-3 without the budget running out, the composition finishes with the fastest cell", () =>
    Effect.gen(function*() {
      const r = yield* run([cand("fast-1b", 1)], 600_000, 600)
      expect(r.exit).toEqual(Exit.void)
      expect(r.best?.knobs.kvBits).toBe(8)
      expect([r.started, r.stopped]).toEqual([4, 4])
      expect(r.wallMs).toBeLessThan(1000)
    }))
})
