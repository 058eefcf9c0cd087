import { Schema } from "effect"

/**
 * One trial row of `tune_trials` (SPEC S-1): a candidate (Stage 1) or a knob
 * cell (Stage 2) measured over `replicates_n` requests. Field names are the
 * column names. Units: tokens/s (`tps`), ms (`ttft_ms`, `ttft_p95_ms`),
 * tokens (`target_context`, `max_context_cap`). Stage 1 rows have `kept = 0`
 * and NULL knobs; exactly one Stage 2 row of a finished run has `kept = 1` (B-4).
 * `fits` is 1 when every replicate was feasible (B-2, G-1); `notes` holds the
 * infeasibility reason or measurement notes.
 * Beside the client's measurement, the provider's own view where it reports
 * one (llama-server and the embedded provider send `usage` and `timings` on
 * the last chunk): medians over the measured requests of `prompt_tokens`
 * (`usage.prompt_tokens`, else `timings.prompt_n`; SPEC P-1), `server_prompt_n`
 * (tokens the server actually prefilled), `server_prompt_tps` and
 * `server_decode_tps` (its `prompt_per_second` and `predicted_per_second`,
 * tokens/s), and `server_request_ms` (sum of its prefill + decode time over the
 * measured requests). Phase wall times of the trial, ms: `load_ms` (spawn →
 * ready), `prewarm_ms`, `probe_ms` (the measured requests). NULL when not
 * reported or not reached. What was measured: `model_params` (parameter count,
 * SPEC A-4) and `model_bytes` (file size) of the model, NULL when unknown — so
 * a recipe can be re-checked against the file it names (examples/verify-recipe.ts).
 */
export class TrialRow extends Schema.Class<TrialRow>("TrialRow")({
  run_id: Schema.String,
  stage: Schema.Literal(1, 2),
  model: Schema.String,
  target_context: Schema.Int,
  kv_bits: Schema.NullOr(Schema.Literal(4, 8)),
  max_context_cap: Schema.NullOr(Schema.Int),
  max_batch: Schema.NullOr(Schema.Int),
  threads: Schema.NullOr(Schema.Int),
  replicates_n: Schema.Int,
  tps: Schema.NullOr(Schema.Number),
  ttft_ms: Schema.NullOr(Schema.Number),
  ttft_p95_ms: Schema.NullOr(Schema.Number),
  n_err: Schema.Int,
  fits: Schema.Literal(0, 1),
  kept: Schema.Literal(0, 1),
  notes: Schema.NullOr(Schema.String),
  started_at: Schema.String,
  prompt_tokens: Schema.NullOr(Schema.Number),
  server_prompt_n: Schema.NullOr(Schema.Number),
  server_prompt_tps: Schema.NullOr(Schema.Number),
  server_decode_tps: Schema.NullOr(Schema.Number),
  server_request_ms: Schema.NullOr(Schema.Number),
  load_ms: Schema.NullOr(Schema.Number),
  prewarm_ms: Schema.NullOr(Schema.Number),
  probe_ms: Schema.NullOr(Schema.Number),
  model_params: Schema.NullOr(Schema.Number),
  model_bytes: Schema.NullOr(Schema.Number)
}) {}
