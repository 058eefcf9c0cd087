/**
 * `autotune history [--db-path <file>] [--json]`: the runs in the database,
 * newest first, with their state, parent, recommendation and recipe hash — so
 * an operator can find what to resume (SPEC R-2) or verify (R-3).
 */
import { Command, Options } from "@effect/cli"
import { Console, Effect, Option, Schema } from "effect"
import type { RunRow } from "../domain/Run.js"
import { StoredRecommendation } from "../domain/TuneDocument.js"
import { withExistingStore } from "../services/TrialStore.js"
import { defaultDbPath } from "../system/UserDirs.js"
import { dbPathOption } from "./CliOptions.js"

/** One run as `history` shows it. `state` is the exit reason, `running or killed` while the row has none. */
export interface HistoryEntry {
  readonly run_id: string
  readonly started_at: string
  readonly ended_at: string | null
  readonly state: string
  readonly partial: boolean
  readonly parent_run_id: string | null
  /** The runs that resumed it (R-2), oldest first. */
  readonly resumed_by: ReadonlyArray<string>
  /** `tune --resume` (no run id) would continue it: it did not end ok, kept its flags, and no run resumed it yet (R-2). */
  readonly resumable: boolean
  readonly model: string | null
  readonly knobs: StoredRecommendation["knobs"] | null
  readonly recipe_hash: string | null
}

const decodeRecommendation = Schema.decodeUnknownOption(Schema.parseJson(StoredRecommendation))

/**
 * What `history` shows of a run row, given the runs that resumed it (`resumedBy`,
 * ids); a recommendation that no longer decodes shows as none.
 */
export const historyEntry = (r: RunRow, resumedBy: ReadonlyArray<string>): HistoryEntry => {
  const rec = r.recommendation_json === null ? Option.none() : decodeRecommendation(r.recommendation_json)
  return {
    run_id: r.run_id,
    started_at: r.started_at,
    ended_at: r.ended_at,
    state: r.exit_reason ?? "running or killed",
    partial: r.partial === 1,
    parent_run_id: r.parent_run_id,
    resumed_by: resumedBy,
    resumable: r.exit_reason !== "ok" && r.flags_json !== null && resumedBy.length === 0,
    model: Option.match(rec, { onNone: () => null, onSome: (x) => x.model }),
    knobs: Option.match(rec, { onNone: () => null, onSome: (x) => x.knobs }),
    recipe_hash: r.recipe_hash
  }
}

/** The terminal table of `history`: one block per run, newest first. */
export const renderHistory = (entries: ReadonlyArray<HistoryEntry>): string =>
  entries.length === 0 ? "no runs" : entries.map((e) =>
    [
      `${e.run_id}  ${e.started_at}  ${e.state}${e.partial ? " (partial)" : ""}${e.resumable ? "  resumable: autotune tune --resume " + e.run_id : ""}`,
      ...(e.parent_run_id === null ? [] : [`  resumes ${e.parent_run_id}`]),
      ...e.resumed_by.map((id) => `  resumed by ${id}`),
      e.model === null
        ? "  no recommendation"
        : `  ${e.model}  kv_bits ${e.knobs?.kv_bits ?? "unset"}, max_context_override ${e.knobs?.max_context_override ?? "unset"}, max_concurrency_override ${
          e.knobs?.max_concurrency_override ?? "unset"
        }${e.knobs?.threads == null ? "" : `, threads ${e.knobs.threads}`}  ${e.recipe_hash ?? ""}`
    ].join("\n")
  ).join("\n")

const json = Options.boolean("json").pipe(Options.withDescription("print the runs as one JSON array"))

/** `autotune history`: see the module comment. Fails with UsageError (exit 64) when there is no database. */
export const historyCommand = Command.make("history", { dbPath: dbPathOption, json }, (f) =>
  Effect.gen(function*() {
    const db = Option.getOrElse(f.dbPath, defaultDbPath)
    const runs = yield* withExistingStore(db, (s) => s.runs())
    const entries = runs.map((r) => historyEntry(r, runs.filter((c) => c.parent_run_id === r.run_id).map((c) => c.run_id).reverse()))
    yield* Console.log(f.json ? JSON.stringify(entries, null, 2) : renderHistory(entries))
  })).pipe(Command.withDescription("List the runs in the database: state, parent, recommendation, recipe hash; which can be resumed"))
