/**
 * The tune pipeline under TestClock with stand-in services: providers whose
 * requests take simulated time, so budgets (SPEC H-3) cut in at known points,
 * deterministically and without real sleeping. The trial store is a real SQLite file.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Ref, TestClock } from "effect"
import * as Path from "node:path"
import { BudgetExhausted } from "../src/domain/AutotuneError.js"
import { tune } from "../src/Pipeline.js"
import type { StubEvent } from "../src/services/CandidateProvider.js"
import { Exec } from "../src/services/Exec.js"
import { ProcessTable } from "../src/services/ProcessTable.js"
import { ServiceManager } from "../src/services/ServiceManager.js"
import type { TunePlan } from "../src/TunePlan.js"
import { tempDir } from "./support/cli.js"
import { readRows } from "./support/db.js"
import { HttpClient } from "@effect/platform"
import { CandidateProvider, serverWithoutProcess } from "../src/services/CandidateProvider.js"
import { CpuMeter } from "../src/services/CpuMeter.js"
import { clockedSseResponse, deltaData, usageData } from "./support/clockedSse.js"
import { fakeHttp, fakeProvider, simulatedSettings, startsAndStops, ttftSeconds } from "./support/simulatedProvider.js"

/** The plan of a simulated tune (ids carry their size: slow-8b, fast-1b), its database in a fresh temp dir. */
const plan = (candidateIds: ReadonlyArray<string>, budgetMs: number | null): TunePlan => {
  const dir = tempDir()
  return {
    ...simulatedSettings,
    candidateIds,
    demoLadderDir: null,
    stage1Replicates: 3,
    stage2Replicates: 3,
    maxReplicates: 9,
    waitQuietMs: null,
    axes: { kvBits: [null, 8, 4], maxContext: [100], maxBatch: [1], threads: [] },
    tpsTieEpsilon: 0.1,
    json: true,
    budgetMs,
    dbPath: Path.join(dir, "runs.db"),
    dataDir: dir,
    lifecycle: {
      preflight: { serviceManager: "none", serviceLabel: "test", providerBinary: "fake", providerSubcommand: "serve" },
      drain: false,
      restartForeground: false
    },
    apply: null,
    keepRuns: 100
  }
}

interface RunRow {
  exit_reason: string
  recipe_hash: string | null
  partial: number
  recommendation_json: string | null
  ended_at: string | null
}

/** Runs `tune` forked, advances the test clock by `advanceS`, and returns its exit, rows and start/stop counts. */
const runWithClock = (p: TunePlan, advanceS: number) =>
  Effect.gen(function*() {
    const journal = yield* Ref.make<ReadonlyArray<StubEvent>>([])
    const db = p.dbPath
    // A quiet machine (no service job, no provider process); Exec is live: the provider binary "fake" has no --version.
    const layer = Layer.mergeAll(
      fakeProvider(journal),
      fakeHttp,
      ServiceManager.Stub("none", { _tag: "Absent" }),
      ProcessTable.Stub([]),
      Exec.Default
    ).pipe(Layer.provideMerge(NodeContext.layer))
    return yield* Effect.gen(function*() {
      const fiber = yield* Effect.fork(tune(p))
      yield* TestClock.adjust(`${advanceS} seconds`)
      const exit = yield* Fiber.await(fiber)
      const runs = yield* Effect.promise(() => readRows<RunRow>(db, "SELECT * FROM tune_runs"))
      const trials = yield* Effect.promise(() =>
        readRows<{ stage: number; model: string; kept: number; kv_bits: number | null }>(db,
          "SELECT stage, model, kept, kv_bits FROM tune_trials ORDER BY trial_id")
      )
      return { exit, run: runs[0]!, trials, ...startsAndStops(yield* Ref.get(journal)) }
    }).pipe(Effect.provide(layer))
  })

describe("budget (SPEC H-3) through the pipeline, under TestClock", () => {
  it.effect("H-3 expiry mid-Stage-1: budget_exhausted, no recommendation, the running provider stopped", () =>
    Effect.gen(function*() {
      // slow-8b: 2 pre-warm short + 1 full + 3 probes = 24 s; the 10 s budget cuts its trial.
      const r = yield* runWithClock(plan(["slow-8b", "fast-1b"], 10_000), 60)
      expect(r.exit).toEqual(Exit.fail(new BudgetExhausted({ budgetMs: 10_000, message: "the --max-duration budget of 10 s ran out" })))
      expect(r.run).toMatchObject({ exit_reason: "budget_exhausted", partial: 0, recommendation_json: null })
      expect(r.run.ended_at).not.toBeNull()
      expect(r.trials).toEqual([]) // the cut trial has no row; fast-1b was never started
      expect(r.started).toBe(1)
      expect(r.stopped).toBe(1)
    }))

  it.effect("H-3 expiry mid-Stage-2: partial recommendation of the best cell so far, kept, every provider stopped", () =>
    Effect.gen(function*() {
      // fast-1b: Stage 1 = 3 warm-ups of 1 s + 3 probes of 1.2 s (0–6.6 s); a cell's pre-warm is the same 3
      // requests (two short ones, and the full-length one macprovider still gets): cell unset = 3 + 3 × 1.2 s
      // (to 13.2 s), cell 8 = 3 + 3 × 1.1 s (to 19.5 s): a 21 s budget cuts cell 4-bit, the third.
      const r = yield* runWithClock(plan(["fast-1b"], 21_000), 60)
      expect(r.exit._tag).toBe("Failure")
      expect(r.run).toMatchObject({ exit_reason: "budget_exhausted", partial: 1 })
      const rec = JSON.parse(r.run.recommendation_json!)
      expect(rec.model).toBe("fast-1b")
      // Cells unset and 8 were measured; 8 is faster (3 tokens in 100 ms vs 200 ms: 30 vs 15 tok/s, P-2).
      expect(r.trials.map((t) => [t.stage, t.kv_bits])).toEqual([[1, null], [2, null], [2, 8]])
      expect(rec.knobs.kv_bits).toBe(8)
      expect(rec.tps_median).toBeCloseTo(30)
      expect(r.trials.filter((t) => t.kept === 1).map((t) => t.kv_bits)).toEqual([8])
      expect(r.started).toBe(4) // stage 1 + three cells begun
      expect(r.stopped).toBe(4)
    }))

  it.effect("H-3 a budget that is not reached changes nothing: ok, not partial", () =>
    Effect.gen(function*() {
      const r = yield* runWithClock(plan(["fast-1b"], 600_000), 600)
      expect(r.exit).toEqual(Exit.void)
      expect(r.run).toMatchObject({ exit_reason: "ok", partial: 0 })
      expect(r.trials.filter((t) => t.stage === 2)).toHaveLength(3)
      expect(r.started).toBe(r.stopped)
    }))
})

describe("resume (SPEC R-1, R-2) through the pipeline, under TestClock", () => {
  interface KeyedRow { readonly stage: number; readonly kv_bits: number | null; readonly trial_key: string | null; readonly reused_from_run: string | null }
  const runsOf = (db: string) =>
    Effect.promise(() => readRows<{ run_id: string; exit_reason: string; recipe_hash: string | null; parent_run_id: string | null }>(db,
      "SELECT run_id, exit_reason, recipe_hash, parent_run_id FROM tune_runs ORDER BY rowid"))
  const keyedRows = (db: string, runId: string) =>
    Effect.promise(() => readRows<KeyedRow>(db,
      `SELECT stage, kv_bits, trial_key, reused_from_run FROM tune_trials WHERE run_id = '${runId}' ORDER BY trial_id`))

  it.effect("R-2 a budget-cut run resumed: measured trials reused (no provider started for them), the rest measured, the same recipe_hash as an uninterrupted run", () =>
    Effect.gen(function*() {
      // The 21 s budget cuts Stage 2's third cell (see H-3 above): Stage 1 and two cells are measured.
      const cut = plan(["fast-1b"], 21_000)
      const first = yield* runWithClock(cut, 60)
      expect(first.run).toMatchObject({ exit_reason: "budget_exhausted" })
      const [parent] = yield* runsOf(cut.dbPath)
      const resumed = yield* runWithClock({ ...cut, budgetMs: 600_000, resume: { parentRunId: parent!.run_id } }, 600)
      expect(resumed.exit).toEqual(Exit.void)
      const runs = yield* runsOf(cut.dbPath)
      expect(runs).toHaveLength(2)
      const child = runs[1]!
      expect(child).toMatchObject({ exit_reason: "ok", parent_run_id: parent!.run_id })
      // Only the cut cell (and what it leads to: N-2 extras, the drift check) started a provider.
      const rows = yield* keyedRows(cut.dbPath, child.run_id)
      const reused = rows.filter((r) => r.reused_from_run === parent!.run_id)
      expect(reused.map((r) => [r.stage, r.kv_bits])).toEqual([[1, null], [2, null], [2, 8]])
      expect(resumed.started).toBe(resumed.stopped)
      const uninterrupted = yield* runWithClock(plan(["fast-1b"], 600_000), 600)
      expect(resumed.started).toBe(uninterrupted.started - 3)
      // every row keyed; the same trial has the same key in both runs.
      const parentRows = yield* keyedRows(cut.dbPath, parent!.run_id)
      expect(rows.every((r) => r.trial_key !== null && /^sha256:[0-9a-f]{64}$/.test(r.trial_key))).toBe(true)
      expect(rows.slice(0, 3).map((r) => r.trial_key)).toEqual(parentRows.map((r) => r.trial_key))
      // F-2h: the same choice as the run never cut.
      expect(child.recipe_hash).not.toBeNull()
      expect(child.recipe_hash).toBe(uninterrupted.run.recipe_hash)
    }))
})

/**
 * A simulated world whose figures move from trial to trial and request to
 * request, deterministically: the k-th trial of a cell (counted across the
 * runs of one world: a resumed run's fresh trial is the cell's next one)
 * streams with a token gap that varies with k and the request's index, so N-2
 * extra replicates and the drift check happen. `cutAt`: the start (1-based,
 * counted in this world) that interrupts the run instead, before it counts —
 * as a Ctrl-C between two trials would.
 */
const movingWorld = () => {
  const trialsOfCell = new Map<string, number>()
  const requestsOfTrial = new Map<string, number>()
  let started = 0
  let cutAt: number | null = null
  const gapMs = (kv: string, k: number, r: number) =>
    Math.round(({ unset: 100, "8": 60, "4": 66 } as Record<string, number>)[kv]! * (1 + 0.3 * Math.sin(k * 7.3 + r * 2.9)))
  const http = Layer.succeed(
    HttpClient.HttpClient,
    HttpClient.make((request, url) => {
      const host = url.hostname
      const [model, rest] = host.split(".kv-") as [string, string]
      const [kv, k] = rest.split(".t") as [string, string]
      const r = (requestsOfTrial.get(host) ?? 0) + 1
      requestsOfTrial.set(host, r)
      const body = request.body._tag === "Uint8Array" ? JSON.parse(new TextDecoder().decode(request.body.body)) : {}
      const words = String(body.messages?.[0]?.content ?? "").split(" ").length
      const n = Math.min(3, Number(body.max_tokens ?? 3))
      return clockedSseResponse(request, [
        ...Array.from({ length: n }, (_, i) => ({
          afterMs: i === 0 ? ttftSeconds[model]! * 1000 : gapMs(kv, Number(k), r),
          data: deltaData(`t${i}`)
        })),
        { afterMs: 0, data: usageData(words + 5, n) }
      ])
    })
  )
  const provider = Layer.merge(
    CandidateProvider.Stub((o) =>
      Effect.gen(function*() {
        if (started + 1 === cutAt) {
          cutAt = null
          return yield* Effect.interrupt
        }
        started++
        const cell = `${o.spec.model}.kv-${o.spec.knobs.kvBits ?? "unset"}`
        const k = (trialsOfCell.get(cell) ?? 0) + 1
        trialsOfCell.set(cell, k)
        return serverWithoutProcess(`http://${cell}.t${k}`, o.spec.model)
      })
    ),
    CpuMeter.Stub(() => 0)
  )
  const layer = Layer.mergeAll(
    provider,
    http,
    ServiceManager.Stub("none", { _tag: "Absent" }),
    ProcessTable.Stub([]),
    Exec.Default
  ).pipe(Layer.provideMerge(NodeContext.layer))
  return {
    started: () => started,
    cut: (at: number) => {
      cutAt = at
    },
    run: (p: TunePlan) =>
      Effect.gen(function*() {
        const fiber = yield* Effect.fork(tune(p))
        yield* TestClock.adjust("3600 seconds")
        return yield* Fiber.await(fiber)
      }).pipe(Effect.provide(layer))
  }
}

describe("resume equals the run never interrupted (SPEC R-2), under TestClock", () => {
  interface Row { run_id: string; stage: number; kv_bits: number | null; tps: number | null; replicates_n: number; kept: number; reused_from_run: string | null }
  const rowsOf = (db: string, runId: string) =>
    Effect.promise(() => readRows<Row>(db, `SELECT * FROM tune_trials WHERE run_id = '${runId}' ORDER BY trial_id`))
  const runIds = (db: string) =>
    Effect.promise(() => readRows<{ run_id: string; exit_reason: string | null; recipe_hash: string | null }>(db,
      "SELECT run_id, exit_reason, recipe_hash FROM tune_runs ORDER BY rowid"))
  const figures = (rows: ReadonlyArray<Row>) => rows.map((r) => [r.stage, r.kv_bits, r.tps, r.replicates_n, r.kept])

  it.effect("R-2 interrupted before each trial in turn and resumed: the same trials, figures and recipe_hash as the uninterrupted run, and only the unmeasured trials start a provider", () =>
    Effect.gen(function*() {
      const whole = movingWorld()
      const p0 = plan(["slow-8b", "fast-1b"], null)
      const exit0 = yield* whole.run({ ...p0, gateTtftMs: 2000 })
      expect(exit0).toEqual(Exit.void)
      const [u] = yield* runIds(p0.dbPath)
      const expected = figures(yield* rowsOf(p0.dbPath, u!.run_id))
      const n = whole.started()
      // The world moves enough that Stage 2 asks for more replicates (N-2): rows with more than 3 of them.
      expect(expected.some(([stage, , , replicates]) => stage === 2 && (replicates as number) > 3)).toBe(true)
      expect(n).toBeGreaterThan(5)
      for (let cut = 1; cut <= n; cut++) {
        const world = movingWorld()
        world.cut(cut)
        const p = { ...plan(["slow-8b", "fast-1b"], null), gateTtftMs: 2000 }
        const parentExit = yield* world.run(p)
        expect(Exit.isInterrupted(parentExit), `cut ${cut}`).toBe(true)
        const [parent] = yield* runIds(p.dbPath)
        expect(parent!.exit_reason).toBe("interrupted")
        const before = world.started()
        expect(before).toBe(cut - 1)
        const childExit = yield* world.run({ ...p, resume: { parentRunId: parent!.run_id } })
        expect(childExit, `cut ${cut}`).toEqual(Exit.void)
        const [, child] = yield* runIds(p.dbPath)
        expect(child!.recipe_hash, `cut ${cut}`).toBe(u!.recipe_hash)
        const rows = yield* rowsOf(p.dbPath, child!.run_id)
        expect(figures(rows), `cut ${cut}`).toEqual(expected)
        // Every trial the parent finished was replayed, none measured twice: the starts add up to the whole run's.
        expect(world.started() - before, `cut ${cut}`).toBe(n - (cut - 1))
        expect(rows.filter((r) => r.reused_from_run === parent!.run_id).length, `cut ${cut}`).toBeGreaterThanOrEqual(Math.min(cut - 1, 1))
      }
    }))

  it.effect("R-2 a chain: interrupted, resumed, the resumed run interrupted after one more trial and resumed again — still the uninterrupted run's trials, figures and recipe_hash", () =>
    Effect.gen(function*() {
      const whole = movingWorld()
      const p0 = { ...plan(["slow-8b", "fast-1b"], null), gateTtftMs: 2000 }
      expect(yield* whole.run(p0)).toEqual(Exit.void)
      const [u] = yield* runIds(p0.dbPath)
      const expected = figures(yield* rowsOf(p0.dbPath, u!.run_id))
      const n = whole.started()
      for (let cut = 1; cut + 1 <= n; cut++) {
        const world = movingWorld()
        const p = { ...plan(["slow-8b", "fast-1b"], null), gateTtftMs: 2000 }
        world.cut(cut)
        yield* world.run(p)
        const [parent] = yield* runIds(p.dbPath)
        // The resumed run measures one trial, then is interrupted before its next.
        world.cut(cut + 1)
        const childExit = yield* world.run({ ...p, resume: { parentRunId: parent!.run_id } })
        expect(Exit.isInterrupted(childExit), `cut ${cut}`).toBe(true)
        const [, child] = yield* runIds(p.dbPath)
        expect(yield* world.run({ ...p, resume: { parentRunId: child!.run_id } }), `cut ${cut}`).toEqual(Exit.void)
        const [, , grandchild] = yield* runIds(p.dbPath)
        expect(grandchild!.recipe_hash, `cut ${cut}`).toBe(u!.recipe_hash)
        expect(figures(yield* rowsOf(p.dbPath, grandchild!.run_id)), `cut ${cut}`).toEqual(expected)
        expect(world.started(), `cut ${cut}`).toBe(n)
      }
    }))
})
