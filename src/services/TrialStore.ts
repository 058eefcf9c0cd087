/** The trial store (SPEC S-1..S-4): runs and trials in SQLite, migrated additively on open, pruned to the newest runs. */
import { SqlClient, SqlSchema } from "@effect/sql"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqliteMigrator from "@effect/sql-sqlite-node/SqliteMigrator"
import { Context, Effect, Layer, Option, Schema } from "effect"
import * as fs from "node:fs"
import { StoreFailed, UsageError } from "../domain/AutotuneError.js"
import type { ExitReason } from "../domain/ExitReason.js"
import { RunRow } from "../domain/Run.js"
import { TrialRow } from "../domain/Trial.js"

/** The start of a `tune_runs` row (SPEC S-2, H-1). */
export interface RunStart {
  readonly run_id: string
  readonly started_at: string
  readonly spec_version: string
  readonly machine_json: string
  readonly inputs_json: string
  /** SPEC R-2: the run this one resumes, null for a fresh tune. */
  readonly parent_run_id?: string | null
  /** The `tune` flags, as `--resume` re-reads them (cli/Resume.ts); null for a run started from the library. */
  readonly flags_json?: string | null
  /** The run's identities (domain/TrialKey.ts RunIdentity) as JSON: what its trial keys were made of. */
  readonly identity_json?: string | null
}

/** One measurement in the ledger (SPEC R-2): a trial's whole outcome (domain/OutcomeJson.ts) under its key. */
export const MeasurementRow = Schema.Struct({
  measurement_id: Schema.Number,
  run_id: Schema.String,
  trial_key: Schema.String,
  outcome_json: Schema.String,
  /** The run that measured it, when this run replayed it from its parent's ledger; null when measured here. */
  reused_from_run: Schema.NullOr(Schema.String)
})
export type MeasurementRow = typeof MeasurementRow.Type

/** The end of a run, written by UPDATE, never delete-and-insert (SPEC H-1). `ended_at` null when interrupted (H-4). */
export interface RunEnd {
  readonly ended_at: string | null
  readonly exit_reason: ExitReason
  readonly recommendation_json: string | null
  readonly recipe_hash: string | null
  readonly partial: boolean
}

/**
 * Schema migrations, additive only (SPEC S-3): a new column or table is a new
 * entry; existing entries never change, so existing rows survive.
 */
/** `ALTER TABLE … ADD COLUMN` for each of `columns` ("name TYPE"), in order: one additive migration step (S-3). */
const addColumns = (table: string, columns: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.forEach(columns, (column) => sql.unsafe(`ALTER TABLE ${table} ADD COLUMN ${column}`), { discard: true }))

const migrations = SqliteMigrator.fromRecord({
  "0001_runs_and_trials": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE tune_runs (
      run_id TEXT PRIMARY KEY,
      started_at TEXT NOT NULL,
      ended_at TEXT,
      exit_reason TEXT,
      spec_version TEXT NOT NULL,
      machine_json TEXT NOT NULL,
      inputs_json TEXT NOT NULL,
      recommendation_json TEXT,
      recipe_hash TEXT,
      partial INTEGER NOT NULL DEFAULT 0
    )`
    yield* sql`CREATE TABLE tune_trials (
      trial_id INTEGER PRIMARY KEY AUTOINCREMENT,
      run_id TEXT NOT NULL REFERENCES tune_runs(run_id),
      stage INTEGER NOT NULL,
      model TEXT NOT NULL,
      target_context INTEGER NOT NULL,
      kv_bits INTEGER,
      max_context_cap INTEGER,
      max_batch INTEGER,
      threads INTEGER,
      replicates_n INTEGER NOT NULL,
      tps REAL,
      ttft_ms REAL,
      ttft_p95_ms REAL,
      n_err INTEGER NOT NULL,
      fits INTEGER NOT NULL,
      kept INTEGER NOT NULL DEFAULT 0,
      notes TEXT,
      started_at TEXT NOT NULL
    )`
    yield* sql`CREATE INDEX tune_trials_run ON tune_trials(run_id)`
  }),
  // The provider's own measurements beside the client's (issue "llama-server", P-1), and phase times.
  "0002_server_timings": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE tune_trials ADD COLUMN prompt_tokens REAL`
    yield* sql`ALTER TABLE tune_trials ADD COLUMN server_prompt_n REAL`
    yield* sql`ALTER TABLE tune_trials ADD COLUMN server_prompt_tps REAL`
    yield* sql`ALTER TABLE tune_trials ADD COLUMN server_decode_tps REAL`
    yield* sql`ALTER TABLE tune_trials ADD COLUMN server_request_ms REAL`
    yield* sql`ALTER TABLE tune_trials ADD COLUMN load_ms REAL`
    yield* sql`ALTER TABLE tune_trials ADD COLUMN prewarm_ms REAL`
    yield* sql`ALTER TABLE tune_trials ADD COLUMN probe_ms REAL`
    yield* sql`ALTER TABLE tune_trials ADD COLUMN model_params INTEGER`
    yield* sql`ALTER TABLE tune_trials ADD COLUMN model_bytes INTEGER`
  }),
  // The trial's verdict as data (its Verdict tag, domain/Verdict.ts); rows stored before stay NULL.
  "0003_trial_verdict": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE tune_trials ADD COLUMN verdict TEXT`
  }),
  // The measurement's own error (SPEC N-1..N-3): intervals, variation, marginal calls, background load,
  // and disturbed trials measured again.
  "0004_trial_spread": addColumns("tune_trials", [
    "tps_ci95_lo REAL",
    "tps_ci95_hi REAL",
    "ttft_ci95_lo_ms REAL",
    "ttft_ci95_hi_ms REAL",
    "tps_cv REAL",
    "ttft_cv REAL",
    "marginal INTEGER",
    "background_cores REAL",
    "disturbed INTEGER",
    "superseded INTEGER"
  ]),
  // The ledger (SPEC ): each trial's key, the run a resumed run continued and replayed from,
  // the flags and identities a run can be resumed with, and every measurement's whole outcome.
  "0005_ledger": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE tune_trials ADD COLUMN trial_key TEXT`
    yield* sql`ALTER TABLE tune_trials ADD COLUMN reused_from_run TEXT`
    yield* sql`ALTER TABLE tune_runs ADD COLUMN parent_run_id TEXT`
    yield* sql`ALTER TABLE tune_runs ADD COLUMN flags_json TEXT`
    yield* sql`ALTER TABLE tune_runs ADD COLUMN identity_json TEXT`
    // No foreign key: a version from before this migration prunes runs without knowing this table.
    yield* sql`CREATE TABLE tune_measurements (
      measurement_id INTEGER PRIMARY KEY AUTOINCREMENT,
      run_id TEXT NOT NULL,
      trial_key TEXT NOT NULL,
      outcome_json TEXT NOT NULL,
      reused_from_run TEXT
    )`
    yield* sql`CREATE INDEX tune_measurements_run ON tune_measurements(run_id)`
  }),
  // Load and memory (SPEC C-1, C-3): streams per replicate, peak resident memory and the estimate, ITL, aggregate decode;
  // and llama-server's throughput knobs (issue 17 part 3).
  "0006_load": addColumns("tune_trials", [
    "streams INTEGER",
    "peak_rss_bytes REAL",
    "estimated_bytes REAL",
    "itl_p95_ms REAL",
    "aggregate_tps REAL",
    "flash_attn INTEGER",
    "ubatch INTEGER",
    "batch INTEGER"
  ]),
  // The tuner's own time before a provider's spawn (the pre-load check and memory estimate), ms: where the
  // provider's phases begin (bench/TuneCost.ts places its probe windows and quiet-machine waits by it).
  "0007_preload": addColumns("tune_trials", ["preload_ms REAL"])
})

const storeFailed = (what: string) => (e: { readonly message: string }) =>
  new StoreFailed({ message: `trial store: ${what} failed: ${e.message}` })

/**
 * Persists runs and trials in SQLite (SPEC S-1..S-3). Every method fails with
 * StoreFailed naming the operation.
 */
export class TrialStore extends Effect.Service<TrialStore>()("llm-autotune/TrialStore", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const insertTrialRow = SqlSchema.single({
      Request: TrialRow,
      Result: Schema.Struct({ trial_id: Schema.Number }),
      execute: (t) => sql`INSERT INTO tune_trials ${sql.insert(t)} RETURNING trial_id`
    })
    // SPEC R-2: the parent's measurements, each still naming the run that measured it, in their order.
    const copyLedger = (fromRunId: string, toRunId: string) =>
      sql`INSERT INTO tune_measurements (run_id, trial_key, outcome_json, reused_from_run)
        SELECT ${toRunId}, trial_key, outcome_json, COALESCE(reused_from_run, run_id)
        FROM tune_measurements WHERE run_id = ${fromRunId} ORDER BY measurement_id`
    return {
      /**
       * Inserts the run row at start (H-1); for a resumed run (SPEC R-2,
       * `r.parent_run_id`) its ledger starts as a copy of the parent's, in the
       * same transaction: a run row with a parent always has the parent's
       * measurements. Fails with StoreFailed ("insert run").
       */
      startRun: (r: RunStart) =>
        sql.withTransaction(Effect.gen(function*() {
          yield* sql`INSERT INTO tune_runs ${sql.insert({ parent_run_id: null, flags_json: null, identity_json: null, ...r })}`
          if (r.parent_run_id != null) yield* copyLedger(r.parent_run_id, r.run_id)
        })).pipe(Effect.mapError(storeFailed("insert run"))),
      /** Updates the run row at the end (H-1): never deletes it. */
      finishRun: (runId: string, e: RunEnd) =>
        sql`UPDATE tune_runs SET ${
          sql.update({ ...e, partial: e.partial ? 1 : 0 })
        } WHERE run_id = ${runId}`.pipe(Effect.asVoid, Effect.mapError(storeFailed("update run"))),
      /** Inserts one trial row (S-1); returns its trial_id. */
      insertTrial: (t: TrialRow) =>
        insertTrialRow(t).pipe(Effect.map((r) => r.trial_id), Effect.mapError(storeFailed("insert trial"))),
      /**
       * Replaces the figures of trial `trialId` with `t`'s (SPEC N-2: a cell
       * given more replicates keeps one row); run, stage, model, knobs,
       * `kept`, its key and where it was first measured (R-1, R-2) stay. Fails with StoreFailed ("update trial").
       */
      updateTrial: (trialId: number, t: TrialRow) => {
        const { run_id: _r, stage: _s, model: _m, kept: _k, trial_key: _t, reused_from_run: _u, ...figures } = t
        return sql`UPDATE tune_trials SET ${sql.update({ ...figures })} WHERE trial_id = ${trialId}`.pipe(
          Effect.asVoid,
          Effect.mapError(storeFailed("update trial"))
        )
      },
      /** Appends one measurement to the run's ledger (SPEC R-2), in the order the run measured them. */
      insertMeasurement: (m: Omit<MeasurementRow, "measurement_id">) =>
        sql`INSERT INTO tune_measurements ${sql.insert({ ...m })}`.pipe(
          Effect.asVoid,
          Effect.mapError(storeFailed("insert measurement"))
        ),
      /** The ledger of run `runId` (SPEC R-2): its measurements in the order they were made. */
      measurements: (runId: string) =>
        SqlSchema.findAll({
          Request: Schema.String,
          Result: MeasurementRow,
          execute: (id) => sql`SELECT * FROM tune_measurements WHERE run_id = ${id} ORDER BY measurement_id`
        })(runId).pipe(Effect.mapError(storeFailed("read measurements"))),
      /**
       * Every run, newest first (by `started_at`, then insertion), for
       * `autotune history`. Fails with StoreFailed ("read runs").
       */
      runs: (): Effect.Effect<ReadonlyArray<RunRow>, StoreFailed> =>
        SqlSchema.findAll({
          Request: Schema.Void,
          Result: RunRow,
          execute: () => sql`SELECT * FROM tune_runs ORDER BY started_at DESC, rowid DESC`
        })(undefined).pipe(Effect.mapError(storeFailed("read runs"))),
      /** Marks the final Stage 2 winner (B-4). */
      markKept: (trialId: number) =>
        sql`UPDATE tune_trials SET kept = 1 WHERE trial_id = ${trialId}`.pipe(
          Effect.asVoid,
          Effect.mapError(storeFailed("mark kept"))
        ),
      /** All trial rows of a run, in insertion order. */
      trials: (runId: string) =>
        SqlSchema.findAll({
          Request: Schema.String,
          Result: TrialRow,
          execute: (id) => sql`SELECT * FROM tune_trials WHERE run_id = ${id} ORDER BY trial_id`
        })(runId).pipe(Effect.mapError(storeFailed("read trials"))),
      /**
       * The `tune_runs` row of `runId` (S-2), or None when there is no such run.
       * Fails with StoreFailed ("read run") on a SQL error or a row that does not decode.
       */
      run: (runId: string): Effect.Effect<Option.Option<RunRow>, StoreFailed> =>
        SqlSchema.findOne({
          Request: Schema.String,
          Result: RunRow,
          execute: (id) => sql`SELECT * FROM tune_runs WHERE run_id = ${id}`
        })(runId).pipe(Effect.mapError(storeFailed("read run"))),
      /**
       * Retention (SPEC S-4, L-3): deletes every run but the newest `keep` (by
       * `started_at`, then insertion), trials and ledger measurements first, in one `BEGIN IMMEDIATE`
       * transaction that rolls back whole on any error (nothing half-deleted).
       * `keep` 0 keeps all. Returns the ids of the runs deleted. Fails with
       * StoreFailed ("prune runs"). The statements run one after another on
       * SQLite's single connection; the caller runs no other query meanwhile
       * (`tune` prunes last, alone, holding the database's run lock).
       */
      pruneRuns: (keep: number): Effect.Effect<ReadonlyArray<string>, StoreFailed> =>
        keep <= 0 ? Effect.succeed([]) : Effect.gen(function*() {
          yield* sql.unsafe("BEGIN IMMEDIATE")
          return yield* Effect.gen(function*() {
            // The same subquery decides both deletes (no bound on how many ids a statement may bind).
            const older = sql`SELECT run_id FROM tune_runs ORDER BY started_at DESC, rowid DESC LIMIT -1 OFFSET ${keep}`
            const old = (yield* sql<{ run_id: string }>`${older}`).map((r) => r.run_id)
            if (old.length > 0) {
              yield* sql`DELETE FROM tune_trials WHERE run_id IN (${older})`
              yield* sql`DELETE FROM tune_measurements WHERE run_id IN (${older})`
              yield* sql`DELETE FROM tune_runs WHERE run_id IN (${older})`
            }
            yield* sql.unsafe("COMMIT")
            return old
          }).pipe(Effect.onError(() => sql.unsafe("ROLLBACK").pipe(Effect.ignore)))
        }).pipe(Effect.mapError(storeFailed("prune runs"))),
      /**
       * The id of the most recently started run (greatest `started_at`, ISO-8601
       * UTC so text order is time order; ties go to the later insert), or None
       * when the database holds no run. Fails with StoreFailed ("read latest run").
       */
      latestRunId: (): Effect.Effect<Option.Option<string>, StoreFailed> =>
        SqlSchema.findOne({
          Request: Schema.Void,
          Result: Schema.Struct({ run_id: Schema.String }),
          execute: () => sql`SELECT run_id FROM tune_runs ORDER BY started_at DESC, rowid DESC LIMIT 1`
        })(undefined).pipe(
          Effect.map(Option.map((r) => r.run_id)),
          Effect.mapError(storeFailed("read latest run"))
        )
    }
  })
}) {
  /**
   * The live store on a SQLite file (created with its directory when missing),
   * migrated on open. Fails with StoreFailed when the file cannot be opened or migrated.
   */
  static readonly layer = (filename: string) => {
    const client = SqliteClient.layer({ filename })
    const migrated = SqliteMigrator.layer({ loader: migrations }).pipe(Layer.provideMerge(client))
    return TrialStore.Default.pipe(
      Layer.provide(migrated),
      Layer.catchAll((e) => Layer.fail(new StoreFailed({ message: `cannot open trial store ${filename}: ${String((e as { message?: string }).message ?? e)}` })))
    )
  }
}

/**
 * Runs `use` with the store of an existing database `dbPath` (read by
 * `history`, `verify`, `tune --resume`: none of them creates a database).
 * Fails with UsageError naming `--db-path` when there is no such file or it
 * cannot be opened as the store (not SQLite, a failed migration), else with
 * what `use` fails with.
 */
export const withExistingStore = <A, E, R>(
  dbPath: string,
  use: (store: TrialStore) => Effect.Effect<A, E, R>
) =>
  fs.statSync(dbPath, { throwIfNoEntry: false })?.isFile() === true
    ? Effect.scoped(Effect.flatMap(
      Layer.build(TrialStore.layer(dbPath)).pipe(
        // A file that is no database of this tool is bad input, named as such (exit 64).
        Effect.mapError((e) => new UsageError({ flag: "db-path", message: `--db-path ${dbPath}: ${e.message}` }))
      ),
      (ctx) => use(Context.get(ctx, TrialStore))
    ))
    : Effect.fail(new UsageError({ flag: "db-path", message: `--db-path ${dbPath}: no such database file (run \`autotune tune\` first)` }))
