/**
 * `autotune report`: one run of the trial database (SPEC S-1, S-2) written as
 * a self-contained HTML page (`report/ReportHtml.ts` renders it).
 */
import type { CommandExecutor, Path } from "@effect/platform"
import { FileSystem } from "@effect/platform"
import { Effect, Option } from "effect"
import { randomUUID } from "node:crypto"
import { createRequire } from "node:module"
import * as path from "node:path"
import { StoreFailed, UsageError } from "../domain/AutotuneError.js"
import { TrialStore } from "../services/TrialStore.js"
import { defaultDbPath } from "../system/UserDirs.js"
import { renderReport } from "./ReportHtml.js"

/** Flags of `autotune report`, parsed. */
export interface ReportFlags {
  /** Run id; None = the latest run by `started_at`. */
  readonly runId: Option.Option<string>
  /** SQLite file; None = `defaultDbPath()` (same default as `tune`). */
  readonly dbPath: Option.Option<string>
  /** Output file; None = `autotune-report-<run-id first 8>.html` in the current directory. */
  readonly out: Option.Option<string>
}

/**
 * Path of Chart.js's UMD bundle (defines the global `Chart`), inlined into the
 * page: `chart.umd.min.js` when the package ships it, else `chart.umd.js`.
 */
const chartJsPath = (fs: FileSystem.FileSystem): Effect.Effect<string> =>
  Effect.gen(function*() {
    const dist = path.dirname(createRequire(import.meta.url).resolve("chart.js"))
    const min = path.join(dist, "chart.umd.min.js")
    return (yield* fs.exists(min).pipe(Effect.orElseSucceed(() => false))) ? min : path.join(dist, "chart.umd.js")
  })

/**
 * Writes `text` to `file` atomically: a temp file in the same directory, then
 * a rename over `file`, so a reader sees the old file or the whole new one and
 * a failed write leaves no partial file (the temp file is removed).
 * Fails with UsageError naming `--out` when the file cannot be written.
 */
const writeAtomically = (fs: FileSystem.FileSystem, file: string, text: string): Effect.Effect<void, UsageError> => {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomUUID().slice(0, 8)}.tmp`)
  return fs.writeFileString(tmp, text).pipe(
    Effect.zipRight(fs.rename(tmp, file)),
    Effect.tapError(() => fs.remove(tmp).pipe(Effect.ignore)),
    Effect.mapError((e) => new UsageError({ flag: "out", message: `--out ${file}: cannot write the report: ${e.message}` }))
  )
}

/**
 * Renders one run to an HTML file and prints the file's absolute path on
 * stdout. The run is `runId`, else the latest by `started_at`. The database
 * is opened only when its file exists (a report never creates one).
 * Fails with UsageError (exit 64, SPEC H-2 `config_error`), writing nothing,
 * when the database file is missing (flag `db-path`), holds no run
 * (`db-path`), or has no run `runId` (`run-id`); or when `--out` cannot be
 * written (`out`). Fails with StoreFailed when the file is not a readable
 * trial store. Returns the absolute path written. Needs the platform's
 * FileSystem, Path and CommandExecutor (the SQLite migrator's, STYLE pitfall 9).
 */
export const report = (
  f: ReportFlags
): Effect.Effect<string, UsageError | StoreFailed, FileSystem.FileSystem | Path.Path | CommandExecutor.CommandExecutor> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const db = path.resolve(Option.getOrElse(f.dbPath, defaultDbPath))
    const exists = yield* fs.exists(db).pipe(Effect.orElseSucceed(() => false))
    if (!exists) {
      return yield* new UsageError({ flag: "db-path", message: `--db-path ${db}: no such database file (run \`autotune tune\` first)` })
    }
    const { run, trials } = yield* Effect.gen(function*() {
      const store = yield* TrialStore
      const runId = yield* Option.match(f.runId, {
        onSome: Effect.succeed,
        onNone: () =>
          store.latestRunId().pipe(Effect.flatMap(Option.match({
            onSome: Effect.succeed,
            onNone: () => new UsageError({ flag: "db-path", message: `--db-path ${db}: the database holds no runs` })
          })))
      })
      const run = yield* store.run(runId).pipe(Effect.flatMap(Option.match({
        onSome: Effect.succeed,
        onNone: () => new UsageError({ flag: "run-id", message: `no run "${runId}" in ${db}` })
      })))
      return { run, trials: yield* store.trials(run.run_id) }
    }).pipe(Effect.provide(TrialStore.layer(db)))
    const chartJs = yield* fs.readFileString(yield* chartJsPath(fs)).pipe(Effect.orDie)
    const file = path.resolve(Option.getOrElse(f.out, () => `autotune-report-${run.run_id.slice(0, 8)}.html`))
    yield* writeAtomically(fs, file, renderReport({ run, trials, chartJs }))
    return file
  })

