/** A `tune_runs` row (SPEC S-2), as read back. */
import { Schema } from "effect"
import { ExitReason } from "./ExitReason.js"

/**
 * One row of `tune_runs` (SPEC S-2), as read back for `autotune report`.
 * Field names are the column names. Times are ISO-8601 UTC strings;
 * `ended_at` and `exit_reason` are null while the run is going (and
 * `ended_at` stays null for an interrupted run, H-4). `machine_json`,
 * `inputs_json` and `recommendation_json` hold the F-2 `machine`, `inputs` and
 * `recommendation` objects as JSON text (`recommendation_json` null when there
 * is none); `recipe_hash` is the F-2h hash or null; `partial` is 1 for a
 * budget-cut run with a best-so-far recommendation (H-3), else 0.
 * SPEC R-2 (migration 0005; NULL on older rows): `parent_run_id` the run a
 * `tune --resume` continued, `flags_json` the `tune` flags it can be resumed
 * with (null when started from the library), `identity_json` the identities
 * its trial keys were made of (domain/TrialKey.ts RunIdentity).
 */
export class RunRow extends Schema.Class<RunRow>("RunRow")({
  run_id: Schema.String,
  started_at: Schema.String,
  ended_at: Schema.NullOr(Schema.String),
  exit_reason: Schema.NullOr(ExitReason),
  spec_version: Schema.String,
  machine_json: Schema.String,
  inputs_json: Schema.String,
  recommendation_json: Schema.NullOr(Schema.String),
  recipe_hash: Schema.NullOr(Schema.String),
  partial: Schema.Literal(0, 1),
  parent_run_id: Schema.NullOr(Schema.String),
  flags_json: Schema.NullOr(Schema.String),
  identity_json: Schema.NullOr(Schema.String)
}) {}
