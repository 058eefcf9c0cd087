/**
 * A trial (SPEC S-1): what its probes measured (`ProbeSample`), what the
 * trial concluded (`TrialOutcome`), and its `tune_trials` row (`TrialRow`).
 */
import { Schema } from "effect"
import type { Candidate } from "./Candidate.js"
import { type Knobs, KvBits } from "./Knobs.js"
import type { Calibration } from "./Prompt.js"
import type { ServerTimings } from "./SseStream.js"
import { notesOf, type ProbeFailure, type Verdict, VERDICT_TAGS } from "./Verdict.js"


/**
 * What one streaming request measured (SPEC P-2, G-1). `failure` is null when the
 * request was feasible, else why not (phase `probe`). Times are ms, throughput tokens/s.
 */
export interface ProbeSample {
  readonly failure: ProbeFailure | null
  /** Request start → first content delta, ms (SPEC P-2). */
  readonly ttftMs: number | null
  /**
   * Throughput as SPEC P-2 defines it: generated tokens ÷ (last token − first
   * token), tokens/s; null with fewer than 2 tokens or no time between them.
   * (It counts the first token too, so it reads n/(n−1) above the pure decode
   * rate: 1.6 % at 64 tokens.)
   */
  readonly tps: number | null
  /** Prompt tokens as the server counted them (`usage.prompt_tokens`), when reported. */
  readonly promptTokens: number | null
  /** Generated tokens: `usage.completion_tokens` when reported, else the count of content deltas. */
  readonly completionTokens: number
  /** Request start → end of stream, ms. */
  readonly totalMs: number
  readonly serverTimings: ServerTimings | null
}

/**
 * What one trial measured: its `verdict` (`Fits` iff every replicate was
 * feasible, SPEC B-2, G-1; `Integrity` for a pre-warm failure that aborts the
 * run, D-2). Medians over replicates (B-2): tokens/s and ms.
 */
export interface TrialOutcome {
  readonly verdict: Verdict
  readonly replicates: number
  readonly nErr: number
  readonly tpsMedian: number | null
  readonly ttftMedianMs: number | null
  readonly ttftP95Ms: number | null
  readonly calibration: Calibration | null
  readonly samples: ReadonlyArray<ProbeSample>
  /**
   * Medians over the measured requests of what the provider itself reported
   * (null where it reported nothing): prompt tokens (`usage.prompt_tokens`,
   * else `timings.prompt_n`), tokens it prefilled (`timings.prompt_n`), and its
   * prefill and decode speeds (`timings.prompt_per_second`,
   * `predicted_per_second`), tokens/s.
   */
  readonly server: {
    readonly promptTokens: number | null
    readonly promptN: number | null
    readonly promptTps: number | null
    readonly decodeTps: number | null
    /** Sum over the measured requests of the server's own prefill + decode time, ms; null when not reported. */
    readonly requestMs: number | null
  }
  /**
   * Wall time of the trial's phases, ms (issue "llama-server" bench breakdown):
   * `load` spawn → ready (model load), `preWarm` the pre-warm requests,
   * `probe` the measured requests. Null for a phase the trial never reached.
   */
  readonly phases: { readonly loadMs: number | null; readonly preWarmMs: number | null; readonly probeMs: number | null }
  /** When the trial began (provider start), ISO-8601 UTC (S-1 `started_at`). */
  readonly startedAt: string
}


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
 * `verdict`: the tag of the trial's Verdict (domain/Verdict.ts); NULL on rows
 * stored before it was recorded (their kind is only in `notes`).
 */
export class TrialRow extends Schema.Class<TrialRow>("TrialRow")({
  run_id: Schema.String,
  stage: Schema.Literal(1, 2),
  model: Schema.String,
  target_context: Schema.Int,
  kv_bits: KvBits,
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
  model_bytes: Schema.NullOr(Schema.Number),
  verdict: Schema.NullOr(Schema.Literal(...VERDICT_TAGS))
}) {
  /**
   * The row of a finished trial of `candidate` with `knobs` in run `runId`
   * (S-1): medians, verdict tag and its notes (`notesOf`), the provider's own
   * figures, phase times, and the model's size and file length as resolved.
   * Stage 1 rows (`stage` 1) carry Stage 1's default knobs; `kept` is 0 (B-4
   * marks the winner later).
   */
  static fromOutcome(
    runId: string,
    stage: 1 | 2,
    candidate: Candidate,
    targetContext: number,
    knobs: Knobs,
    o: TrialOutcome
  ): TrialRow {
    return new TrialRow({
      run_id: runId,
      stage,
      model: candidate.id,
      target_context: targetContext,
      kv_bits: knobs.kvBits,
      max_context_cap: knobs.maxContext,
      max_batch: knobs.maxBatch,
      threads: knobs.threads,
      replicates_n: o.samples.length,
      tps: o.tpsMedian,
      ttft_ms: o.ttftMedianMs,
      ttft_p95_ms: o.ttftP95Ms,
      n_err: o.nErr,
      fits: o.verdict._tag === "Fits" ? 1 : 0,
      kept: 0,
      notes: notesOf(o.verdict),
      started_at: o.startedAt,
      prompt_tokens: o.server.promptTokens,
      server_prompt_n: o.server.promptN,
      server_prompt_tps: o.server.promptTps,
      server_decode_tps: o.server.decodeTps,
      server_request_ms: o.server.requestMs,
      load_ms: o.phases.loadMs,
      prewarm_ms: o.phases.preWarmMs,
      probe_ms: o.phases.probeMs,
      model_params: candidate.paramCount,
      model_bytes: candidate.fileBytes,
      verdict: o.verdict._tag
    })
  }
}
