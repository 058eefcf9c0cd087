import { NO_SPREAD } from "../../src/domain/Trial.js"
/**
 * The trial store's migrations (SPEC S-3): a database written before the
 * verdict column (migration 0003) opens, gains the column, and keeps its rows,
 * which read back with no verdict; new rows carry theirs.
 */
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { createRequire } from "node:module"
import * as Path from "node:path"
import { Knobs } from "../../src/domain/Knobs.js"
import { TrialRow, type TrialOutcome } from "../../src/domain/Trial.js"
import { Verdict } from "../../src/domain/Verdict.js"
import { isEstimated } from "../../src/report/ReportHtml.js"
import { TrialStore } from "../../src/services/TrialStore.js"
import { tempDir } from "../support/cli.js"

/** better-sqlite3 directly, to write the database as the tool's 0002 schema left it. */
const Sqlite = createRequire(import.meta.url)("better-sqlite3") as new (file: string) => {
  exec: (sql: string) => void
  prepare: (sql: string) => { run: (...args: Array<unknown>) => unknown }
  close: () => void
}

const outcome = (verdict: Verdict): TrialOutcome => ({
  verdict, replicates: 0, nErr: 0, tpsMedian: null, ttftMedianMs: null, ttftP95Ms: null, calibration: null, samples: [],
  startedAt: "2026-01-01T00:00:00.000Z",
  server: { promptTokens: null, promptN: null, promptTps: null, decodeTps: null, requestMs: null },
  phases: { loadMs: null, preWarmMs: null, probeMs: null }, spread: NO_SPREAD, marginal: false, background: null
})

describe("trial store migrations (SPEC S-1, S-3)", () => {
  it.effect("S-3 N-1 a database from before the verdict and spread columns keeps its rows (NULL there, read by notes); new rows carry their verdict and spread", () =>
    Effect.gen(function*() {
      const db = Path.join(tempDir(), "runs.db")
      // Today's schema, taken back to 0002: no verdict or spread columns, migrations 3 and 4 not recorded.
      yield* Effect.flatMap(TrialStore, (s) => s.latestRunId()).pipe(Effect.provide(TrialStore.layer(db)))
      const old = new Sqlite(db)
      old.exec([
        "verdict", "tps_ci95_lo", "tps_ci95_hi", "ttft_ci95_lo_ms", "ttft_ci95_hi_ms", "tps_cv", "ttft_cv", "marginal",
        "background_cores", "disturbed", "superseded", "trial_key", "reused_from_run",
        "streams", "peak_rss_bytes", "estimated_bytes", "itl_p95_ms", "aggregate_tps", "flash_attn", "ubatch", "batch", "preload_ms"
      ].map((c) => `ALTER TABLE tune_trials DROP COLUMN ${c};`).join(" ") +
        ["parent_run_id", "flags_json", "identity_json"].map((c) => `ALTER TABLE tune_runs DROP COLUMN ${c};`).join(" ") +
        " DROP TABLE tune_measurements; DELETE FROM effect_sql_migrations WHERE migration_id >= 3;")
      old.exec(`INSERT INTO tune_runs (run_id, started_at, spec_version, machine_json, inputs_json) VALUES ('old', '2026-01-01T00:00:00.000Z', '1', '{}', '{}')`)
      old.prepare(`INSERT INTO tune_trials (run_id, stage, model, target_context, replicates_n, n_err, fits, notes, started_at)
        VALUES ('old', 1, 'huge', 2048, 0, 0, 0, ?, '2026-01-01T00:00:00.000Z')`).run("estimated 9.0 GiB > 8.0 GiB available")
      old.close()

      const rows = yield* Effect.gen(function*() {
        const store = yield* TrialStore
        const candidate = { id: "small", model: "small", rank: 2, paramCount: 1e6, ggufFile: false, fileBytes: null }
        yield* store.insertTrial(TrialRow.fromOutcome("old", 1, candidate, 2048, Knobs.defaults,
          outcome(Verdict.EstimatedOver({ neededBytes: 2 ** 33, availableBytes: 2 ** 32 }))))
        return yield* store.trials("old")
      }).pipe(Effect.provide(TrialStore.layer(db)))
      assert.deepStrictEqual(rows.map((r) => [r.model, r.verdict, r.notes]), [
        ["huge", null, "estimated 9.0 GiB > 8.0 GiB available"],
        ["small", "EstimatedOver", "estimated 8.0 GiB > 4.0 GiB available"]
      ])
      assert.deepStrictEqual(rows.map(isEstimated), [true, true])
      assert.deepStrictEqual(rows.map((r) => [r.tps_ci95_lo, r.marginal, r.disturbed]), [[null, null, null], [null, 0, null]])
      // a row stored before the ledger has no key (its identities were never read); the run row no parent or flags.
      assert.deepStrictEqual(rows.map((r) => r.trial_key), [null, null])
      // C-1 C-3 (migration 0006): rows stored before load and memory were measured read NULL there.
      assert.deepStrictEqual(
        rows.map((r) => [r.streams, r.peak_rss_bytes, r.estimated_bytes, r.itl_p95_ms, r.aggregate_tps, r.flash_attn, r.ubatch, r.batch]),
        [[null, null, null, null, null, null, null, null], [null, null, null, null, null, null, null, null]]
      )
      // Migration 0007: the time before a provider's spawn is NULL on rows stored before it and where none started.
      assert.deepStrictEqual(rows.map((r) => r.preload_ms), [null, null])
      const run = yield* Effect.flatMap(TrialStore, (s) => s.run("old")).pipe(Effect.provide(TrialStore.layer(db)))
      assert.deepStrictEqual(Option.map(run, (r) => [r.parent_run_id, r.flags_json, r.identity_json]), Option.some([null, null, null]))
    }).pipe(Effect.provide(NodeContext.layer)))

  it.effect("N-2 S-1 a cell given more replicates keeps its row: updateTrial replaces its figures, never its run, stage, model or kept mark", () =>
    Effect.gen(function*() {
      const db = Path.join(tempDir(), "runs.db")
      const rows = yield* Effect.gen(function*() {
        const store = yield* TrialStore
        yield* store.startRun({ run_id: "r", started_at: "2026-01-01T00:00:00.000Z", spec_version: "1", machine_json: "{}", inputs_json: "{}" })
        const candidate = { id: "m", model: "m", rank: 1, paramCount: 1e6, ggufFile: false, fileBytes: null }
        const first = {
          ...outcome(Verdict.Fits()),
          tpsMedian: 10,
          spread: { ...NO_SPREAD, tpsCi95: [9, 11] as const },
          phases: { preLoadMs: 250, loadMs: 400, preWarmMs: 50, probeMs: 900 }
        }
        const id = yield* store.insertTrial(TrialRow.fromOutcome("r", 2, candidate, 100, Knobs.defaults, first))
        yield* store.markKept(id)
        const inserted = yield* store.trials("r")
        // Migration 0007: the time before the provider's spawn, as stored.
        assert.deepStrictEqual(inserted.map((r) => [r.preload_ms, r.load_ms]), [[250, 400]])
        // The cell's new figures (any value: the update writes what it is given, here another pre-load).
        const more = {
          ...first,
          tpsMedian: 12,
          spread: { ...NO_SPREAD, tpsCi95: [8, 14] as const },
          phases: { preLoadMs: 260, loadMs: 800, preWarmMs: 100, probeMs: 1_800 }
        }
        yield* store.updateTrial(id, TrialRow.fromOutcome("other-run", 1, { ...candidate, id: "other" }, 100, Knobs.defaults, more))
        return yield* store.trials("r")
      }).pipe(Effect.provide(TrialStore.layer(db)))
      assert.deepStrictEqual(rows.map((r) => [r.run_id, r.stage, r.model, r.kept, r.tps, r.tps_ci95_lo, r.tps_ci95_hi]), [
        ["r", 2, "m", 1, 12, 8, 14]
      ])
      assert.deepStrictEqual(rows.map((r) => [r.preload_ms, r.load_ms, r.probe_ms]), [[260, 800, 1_800]])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.effect("S-4 pruneRuns keeps the newest N runs and only their trials and ledger measurements; 0 keeps all", () =>
    Effect.gen(function*() {
      const db = Path.join(tempDir(), "runs.db")
      const kept = yield* Effect.gen(function*() {
        const store = yield* TrialStore
        for (const [i, id] of ["r1", "r2", "r3"].entries()) {
          yield* store.startRun({ run_id: id, started_at: `2026-01-0${i + 1}T00:00:00.000Z`, spec_version: "1", machine_json: "{}", inputs_json: "{}" })
          const candidate = { id: "m", model: "m", rank: 1, paramCount: 1e6, ggufFile: false, fileBytes: null }
          yield* store.insertTrial(TrialRow.fromOutcome(id, 1, candidate, 100, Knobs.defaults, outcome(Verdict.Fits())))
          yield* store.insertMeasurement({ run_id: id, trial_key: "sha256:k", outcome_json: "{}", reused_from_run: null })
        }
        assert.deepStrictEqual(yield* store.pruneRuns(0), [])
        assert.deepStrictEqual(yield* store.pruneRuns(2), ["r1"])
        assert.deepStrictEqual(yield* store.pruneRuns(2), [])
        // L-3 R-2: the ledger goes with its run.
        assert.deepStrictEqual((yield* store.measurements("r1")).length, 0)
        assert.deepStrictEqual((yield* store.measurements("r3")).length, 1)
        return { r1: yield* store.trials("r1"), r3: yield* store.trials("r3"), latest: yield* store.latestRunId() }
      }).pipe(Effect.provide(TrialStore.layer(db)))
      assert.strictEqual(kept.r1.length, 0)
      // Rolled back whole on error: a delete of runs that fails leaves every trial and run in place.
      const db2 = Path.join(tempDir(), "runs.db")
      yield* Effect.gen(function*() {
        const store = yield* TrialStore
        for (const [i, id] of ["a", "b"].entries()) {
          yield* store.startRun({ run_id: id, started_at: `2026-01-0${i + 1}T00:00:00.000Z`, spec_version: "1", machine_json: "{}", inputs_json: "{}" })
          yield* store.insertTrial(TrialRow.fromOutcome(id, 1, { id: "m", model: "m", rank: 1, paramCount: 1e6, ggufFile: false, fileBytes: null },
            100, Knobs.defaults, outcome(Verdict.Fits())))
        }
      }).pipe(Effect.provide(TrialStore.layer(db2)))
      const raw = new Sqlite(db2)
      raw.exec("CREATE TRIGGER no_run_delete BEFORE DELETE ON tune_runs BEGIN SELECT RAISE(ABORT, 'refused'); END;")
      raw.close()
      const failed = yield* Effect.flatMap(TrialStore, (s) => Effect.either(s.pruneRuns(1))).pipe(Effect.provide(TrialStore.layer(db2)))
      assert.isTrue(failed._tag === "Left" && failed.left.message.includes("prune runs"))
      const after = yield* Effect.flatMap(TrialStore, (s) => Effect.all([s.trials("a"), s.trials("b")])).pipe(Effect.provide(TrialStore.layer(db2)))
      assert.deepStrictEqual(after.map((t) => t.length), [1, 1])
      assert.strictEqual(kept.r3.length, 1)
      assert.deepStrictEqual(kept.latest, Option.some("r3"))
    }).pipe(Effect.provide(NodeContext.layer)))
})
