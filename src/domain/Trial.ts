/**
 * A trial (SPEC S-1): what its probes measured (`ProbeSample`), what the
 * trial concluded (`TrialOutcome`), and its `tune_trials` row (`TrialRow`).
 */
import { Schema } from "effect"
import type { Candidate } from "./Candidate.js"
import { type Knobs, KvBits } from "./Knobs.js"
import type { StreamFigures } from "./Objective.js"
import type { Calibration } from "./Prompt.js"
import type { ServerTimings } from "./SseStream.js"
import { cv, median, medianCi95, percentile } from "./Stats.js"
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
   * token), tokens/s, or ÷ the provider's own decode time where the tokens
   * arrived closer together than that (steps/Probe.ts `throughput`); null with
   * fewer than 2 tokens, or with no time between them on either clock.
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
  /**
   * Inter-token latency, ms (SPEC C-1): the median and p95 of the gaps between
   * successive content deltas as they arrived; null with fewer than 2 deltas.
   * For a replicate of several streams, the worst stream's. Absent on samples
   * recorded before it was measured.
   */
  readonly itlP50Ms?: number | null
  readonly itlP95Ms?: number | null
  /**
   * A replicate of N streams under an objective (SPEC C-1, C-2): its `tps` is
   * then the goodput (streams that missed the objective count zero),
   * `aggregateTps` every stream's decode rate summed, and `streams` each
   * stream's figures. Absent for a single-user replicate.
   */
  readonly aggregateTps?: number | null
  readonly streams?: ReadonlyArray<StreamFigures>
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
   * `preLoadMs`: from `startedAt` to the provider's spawn (the pre-load GGUF check, SPEC D-2, and the
   * memory estimate, C-3), so the provider's own phases begin at `startedAt + preLoadMs`; for a trial
   * that started none (a corrupt, unreadable or unsupported file, an estimate over the memory), to that decision.
   * Absent on outcomes recorded before it was measured (migration 0007). A merged outcome
   * (`mergeOutcomes`) keeps its first start's, where its other phases are sums over its starts.
   */
  readonly phases: {
    readonly preLoadMs?: number
    readonly loadMs: number | null
    readonly preWarmMs: number | null
    readonly probeMs: number | null
  }
  /**
   * When the trial began, ISO-8601 UTC (S-1 `started_at`): before its pre-load check and memory
   * estimate; its provider was spawned at `startedAt + phases.preLoadMs`.
   */
  readonly startedAt: string
  /** The spread of the feasible replicates (SPEC N-1). */
  readonly spread: Spread
  /**
   * SPEC N-2: a Stage 1 trial whose TTFT p95 lay within ±15 % of the gate, or
   * whose replicates fell on both sides of it: given more replicates and
   * called on their median TTFT.
   */
  readonly marginal: boolean
  /** The background load while the replicates ran (SPEC N-3); null when not measured. */
  readonly background: Background | null
  /** Memory and load (SPEC C-1, C-3); see `LoadFigures`. Absent on outcomes recorded before it was measured. */
  readonly load?: LoadFigures
  /**
   * SPEC R-2: set when this outcome was not measured by this run but replayed
   * from the ledger of the run it resumes: the id of the run that measured it.
   */
  readonly reusedFrom?: string
}

/**
 * The spread of a trial's feasible replicates (SPEC N-1): 95 % intervals of the
 * median tokens/s and TTFT (ms; `medianCi95`, order statistics) and their
 * coefficients of variation (null below 2 replicates).
 */
export interface Spread {
  readonly tpsCi95: readonly [number, number] | null
  readonly ttftCi95Ms: readonly [number, number] | null
  readonly tpsCv: number | null
  readonly ttftCv: number | null
}

/**
 * A trial's memory and load figures (SPEC C-1, C-3): `streams` concurrent
 * requests per replicate; `peakRssBytes` the highest resident memory of the
 * provider's process group sampled from ready to the last probe (null when
 * not read); `estimatedBytes` the memory estimate it was launched on (null
 * when none was made), so estimate ÷ peak says the estimate's error on this
 * machine; medians over the feasible replicates of the worst stream's ITL
 * p95 (ms) and of the summed decode rate of every stream (`aggregateTps`,
 * tokens/s; the trial's `tpsMedian` is goodput under an objective).
 */
export interface LoadFigures {
  readonly streams: number
  readonly peakRssBytes: number | null
  readonly estimatedBytes: number | null
  readonly itlP95Ms: number | null
  readonly aggregateTps: number | null
}

/** The spread of a trial with no feasible replicate: nothing measured. */
export const NO_SPREAD: Spread = { tpsCi95: null, ttftCi95Ms: null, tpsCv: null, ttftCv: null }

/**
 * What other processes did while a trial's replicates ran (SPEC N-3): the
 * average cores they used, and whether that was over `--max-background-cores`.
 */
export interface Background {
  readonly othersCores: number
  readonly disturbed: boolean
}

/** Prompt tokens as the provider counted them (SPEC P-1): `usage.prompt_tokens`, else llama.cpp's `timings.prompt_n`. */
export const promptTokensOf = (x: ProbeSample): number | null => x.promptTokens ?? x.serverTimings?.promptN ?? null

/**
 * A trial's outcome from its verdict and samples (SPEC B-2, N-1): medians, p95
 * and spread over the feasible samples, the provider's own figures (medians;
 * request time summed), and the error count (a failure outside the requests —
 * start, pre-warm, P-1 — counts as one; an estimate skip sent none, and a
 * gate call — a probe's, N-2's median or a pre-warm cut at its bound — is
 * no error).
 */
export const summarizeTrial = (
  verdict: Verdict,
  samples: ReadonlyArray<ProbeSample>,
  o: {
    readonly calibration: Calibration | null
    readonly replicates: number
    readonly startedAt: string
    readonly phases: TrialOutcome["phases"]
    readonly marginal: boolean
    readonly background: Background | null
    /**
     * Stage 1's cut-off (N-2), ms: a request cut without a first token had a TTFT
     * of at least this, or of the wider bound it was cut at (a first probe's,
     * twice the gate, RunTrial), and counts so in the TTFT figures; null
     * elsewhere. (A call made in the pre-warm has no sample: no TTFT figure.)
     */
    readonly cutoffMs?: number | null
    /** Streams per replicate and the memory figures (SPEC C-1, C-3); absent when not measured. */
    readonly memory?: { readonly streams: number; readonly peakRssBytes: number | null; readonly estimatedBytes: number | null }
  }
): TrialOutcome => {
  const ok = samples.filter((x) => x.failure === null)
  const medianOf = (f: (x: ProbeSample) => number | null | undefined) =>
    median(samples.flatMap((x) => {
      const v = f(x)
      return v === null || v === undefined ? [] : [v]
    }))
  // TTFT figures over every request that was timed, a gate miss too (at least the bound it was cut at: the
  // Stage 1 cut-off, or the first probe's wider bound, issue 14).
  const ttfts = samples.flatMap((x) =>
    x.failure === null || x.failure._tag === "GateMissed"
      ? x.ttftMs !== null
        ? [x.ttftMs]
        : x.failure !== null && o.cutoffMs != null
        ? [Math.max(o.cutoffMs, x.failure.gateTtftMs)]
        : []
      : []
  )
  const tps = ok.flatMap((x) => (x.tps === null ? [] : [x.tps]))
  // A failure outside the requests (start, pre-warm, P-1) counts as one error; an estimate skip sent none,
  // and a Stage 1 gate call on the median (N-2) is no request's error.
  // Nor is a miss of the objective (C-1) or of the memory headroom (C-3): every request may have succeeded.
  // A pre-warm cut at its bound (issue 14) is the gate's call too: the provider answered, late.
  const judgedOnGate = verdict._tag === "GateMissed" || verdict._tag === "ObjectiveMissed" ||
    verdict._tag === "MemoryOver"
  const outsideRequests = verdict._tag !== "Fits" && verdict._tag !== "EstimatedOver" && !judgedOnGate && ok.length === samples.length
  return {
    verdict,
    replicates: o.replicates,
    nErr: samples.length - ok.length + (outsideRequests ? 1 : 0),
    tpsMedian: median(tps),
    ttftMedianMs: median(ttfts),
    ttftP95Ms: percentile(ttfts, 95),
    calibration: o.calibration,
    samples,
    startedAt: o.startedAt,
    server: {
      promptTokens: medianOf(promptTokensOf),
      promptN: medianOf((x) => x.serverTimings?.promptN),
      promptTps: medianOf((x) => x.serverTimings?.promptPerSecond),
      decodeTps: medianOf((x) => x.serverTimings?.predictedPerSecond),
      requestMs: samples.some((x) => x.serverTimings?.promptMs != null)
        ? samples.reduce((a, x) => a + (x.serverTimings?.promptMs ?? 0) + (x.serverTimings?.predictedMs ?? 0), 0)
        : null
    },
    phases: o.phases,
    spread: { tpsCi95: medianCi95(tps), ttftCi95Ms: medianCi95(ttfts), tpsCv: cv(tps), ttftCv: cv(ttfts) },
    marginal: o.marginal,
    background: o.background,
    ...(o.memory === undefined ? {} : {
      load: {
        ...o.memory,
        itlP95Ms: median(ok.flatMap((x) => (x.itlP95Ms == null ? [] : [x.itlP95Ms]))),
        aggregateTps: median(ok.flatMap((x) => {
          const a = x.aggregateTps === undefined ? x.tps : x.aggregateTps
          return a === null ? [] : [a]
        }))
      }
    })
  }
}

/** The larger of two figures, either missing. */
const maxOrNull = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.max(a, b))

/**
 * One cell measured twice (SPEC N-2: more replicates, in a trial of their
 * own): `more`'s samples appended to `first`'s and every figure recomputed.
 * The merged cell is feasible only if both were (B-2: every replicate); its
 * verdict is the first infeasible one. Phase times add up; the background is
 * the busier of the two; `startedAt`, the time before its spawn (`phases.preLoadMs`) and
 * calibration stay the first's.
 */
export const mergeOutcomes = (first: TrialOutcome, more: TrialOutcome): TrialOutcome => {
  const sum = (a: number | null, b: number | null) => (a === null && b === null ? null : (a ?? 0) + (b ?? 0))
  const bg = [first.background, more.background].filter((b): b is Background => b !== null)
  return summarizeTrial(first.verdict._tag !== "Fits" ? first.verdict : more.verdict, [...first.samples, ...more.samples], {
    calibration: first.calibration,
    replicates: first.replicates + more.replicates,
    startedAt: first.startedAt,
    phases: {
      // The first start's, as `startedAt` is.
      ...(first.phases.preLoadMs === undefined ? {} : { preLoadMs: first.phases.preLoadMs }),
      loadMs: sum(first.phases.loadMs, more.phases.loadMs),
      preWarmMs: sum(first.phases.preWarmMs, more.phases.preWarmMs),
      probeMs: sum(first.phases.probeMs, more.phases.probeMs)
    },
    marginal: first.marginal || more.marginal,
    background: bg.length === 0 ? null : bg.reduce((a, b) => (b.othersCores > a.othersCores ? b : a)),
    ...(first.load === undefined ? {} : {
      memory: {
        streams: first.load.streams,
        peakRssBytes: maxOrNull(first.load.peakRssBytes, more.load?.peakRssBytes ?? null),
        estimatedBytes: first.load.estimatedBytes
      }
    })
  })
}


/** A column added after the first rows were written: NULL unless given (old rows, tests that build rows). */
const nullByDefault = <S extends Schema.Schema.Any>(s: S) => Schema.optionalWith(Schema.NullOr(s), { default: () => null })

/**
 * One trial row of `tune_trials` (SPEC S-1): a candidate (Stage 1) or a knob
 * cell (Stage 2) measured over `replicates_n` requests. Field names are the
 * column names. Units: tokens/s (`tps`), ms (`ttft_ms`, `ttft_p95_ms`),
 * tokens (`target_context`, `max_context_cap`). Stage 1 rows have `kept = 0`
 * and NULL knobs; exactly one Stage 2 row of a finished run has `kept = 1` (B-4).
 * Stage 3 rows are the steps of a capacity search (SPEC C-4): the
 * recommended knobs at `streams` users, `kept` 0.
 * `fits` is 1 when every replicate was feasible (B-2, G-1); `notes` holds the
 * infeasibility reason or measurement notes.
 * Beside the client's measurement, the provider's own view where it reports
 * one (llama-server and the embedded provider send `usage` and `timings` on
 * the last chunk): medians over the measured requests of `prompt_tokens`
 * (`usage.prompt_tokens`, else `timings.prompt_n`; SPEC P-1), `server_prompt_n`
 * (tokens the server actually prefilled), `server_prompt_tps` and
 * `server_decode_tps` (its `prompt_per_second` and `predicted_per_second`,
 * tokens/s), and `server_request_ms` (sum of its prefill + decode time over the
 * measured requests). Phase wall times of the trial, ms: `preload_ms`
 * (`started_at` → the provider's spawn, or the decision not to start one: the
 * pre-load GGUF check and the memory estimate; the first start's on a row
 * merged from several; NULL on rows stored before migration 0007), `load_ms`
 * (spawn → ready), `prewarm_ms`, `probe_ms` (the measured requests; sums over a
 * merged row's starts). NULL when not reported or not reached. What was measured: `model_params` (parameter count,
 * SPEC A-4) and `model_bytes` (file size) of the model, NULL when unknown — so
 * a recipe can be re-checked against the file it names (`autotune verify`, SPEC R-3).
 * `verdict`: the tag of the trial's Verdict (domain/Verdict.ts); NULL on rows
 * stored before it was recorded (their kind is only in `notes`).
 * The measurement's own error (SPEC N-1..N-3): 95 % intervals of the median
 * tokens/s (`tps_ci95_lo`/`_hi`) and TTFT (`ttft_ci95_lo_ms`/`_hi_ms`), the
 * coefficients of variation (`tps_cv`, `ttft_cv`), `marginal` (a Stage 1
 * call near the gate, N-2), `background_cores` (average cores other
 * processes used during the replicates) and `disturbed` (over
 * `--max-background-cores`, N-3) and `superseded` (a disturbed trial that was
 * measured again: on record, deciding nothing); NULL on rows stored before
 * migration 0004 or where not measured. A Stage 2 cell given more replicates (N-2) keeps one
 * row, updated with the figures over all of them.
 * The ledger (SPEC ): `trial_key` (domain/TrialKey.ts; NULL on rows
 * stored before migration 0005, whose identities were never read) and
 * `reused_from_run` (the run whose measurement a resumed run replayed into
 * this row instead of starting a provider; NULL when measured by its own run).
 * Load and memory (SPEC C-1, C-3; `LoadFigures`): `streams` (concurrent
 * requests per replicate), `peak_rss_bytes` (the provider process group's
 * peak resident memory), `estimated_bytes` (the estimate it was launched on;
 * estimate ÷ peak is the estimate's error), `itl_p95_ms` (median of the worst
 * stream's inter-token latency p95) and `aggregate_tps` (every stream's
 * decode rate summed; under an objective `tps` is the goodput); NULL on rows
 * stored before migration 0006 or where not measured. The throughput knobs
 * (issue 17 part 3; issue 14): `flash_attn` (1 on, 0 off), `ubatch`
 * and `batch` (tokens); NULL when left to the build.
 */
export class TrialRow extends Schema.Class<TrialRow>("TrialRow")({
  run_id: Schema.String,
  stage: Schema.Literal(1, 2, 3),
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
  verdict: Schema.NullOr(Schema.Literal(...VERDICT_TAGS)),
  tps_ci95_lo: Schema.NullOr(Schema.Number),
  tps_ci95_hi: Schema.NullOr(Schema.Number),
  ttft_ci95_lo_ms: Schema.NullOr(Schema.Number),
  ttft_ci95_hi_ms: Schema.NullOr(Schema.Number),
  tps_cv: Schema.NullOr(Schema.Number),
  ttft_cv: Schema.NullOr(Schema.Number),
  marginal: Schema.NullOr(Schema.Literal(0, 1)),
  background_cores: Schema.NullOr(Schema.Number),
  disturbed: Schema.NullOr(Schema.Literal(0, 1)),
  superseded: Schema.NullOr(Schema.Literal(0, 1)),
  trial_key: Schema.NullOr(Schema.String),
  reused_from_run: Schema.NullOr(Schema.String),
  streams: nullByDefault(Schema.Int),
  peak_rss_bytes: nullByDefault(Schema.Number),
  estimated_bytes: nullByDefault(Schema.Number),
  itl_p95_ms: nullByDefault(Schema.Number),
  aggregate_tps: nullByDefault(Schema.Number),
  flash_attn: nullByDefault(Schema.Literal(0, 1)),
  ubatch: nullByDefault(Schema.Int),
  batch: nullByDefault(Schema.Int),
  preload_ms: nullByDefault(Schema.Number)
}) {
  /**
   * The row of a finished trial of `candidate` with `knobs` in run `runId`
   * (S-1): medians, verdict tag and its notes (`notesOf`), the provider's own
   * figures, phase times, and the model's size and file length as resolved.
   * Stage 1 rows (`stage` 1) carry Stage 1's default knobs; `kept` is 0 (B-4
   * marks the winner later). `superseded`: a disturbed trial measured again (N-3).
   * `trialKey`: its SPEC R-1 key, null when the caller keeps no ledger.
   */
  static fromOutcome(
    runId: string,
    stage: 1 | 2 | 3,
    candidate: Candidate,
    targetContext: number,
    knobs: Knobs,
    o: TrialOutcome,
    superseded = false,
    trialKey: string | null = null
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
      verdict: o.verdict._tag,
      tps_ci95_lo: o.spread.tpsCi95?.[0] ?? null,
      tps_ci95_hi: o.spread.tpsCi95?.[1] ?? null,
      ttft_ci95_lo_ms: o.spread.ttftCi95Ms?.[0] ?? null,
      ttft_ci95_hi_ms: o.spread.ttftCi95Ms?.[1] ?? null,
      tps_cv: o.spread.tpsCv,
      ttft_cv: o.spread.ttftCv,
      marginal: o.marginal ? 1 : 0,
      background_cores: o.background?.othersCores ?? null,
      disturbed: o.background === null ? null : o.background.disturbed ? 1 : 0,
      superseded: superseded ? 1 : 0,
      trial_key: trialKey,
      reused_from_run: o.reusedFrom ?? null,
      streams: o.load?.streams ?? null,
      peak_rss_bytes: o.load?.peakRssBytes ?? null,
      estimated_bytes: o.load?.estimatedBytes ?? null,
      itl_p95_ms: o.load?.itlP95Ms ?? null,
      aggregate_tps: o.load?.aggregateTps ?? null,
      flash_attn: knobs.flashAttn === null ? null : knobs.flashAttn ? 1 : 0,
      ubatch: knobs.ubatch,
      batch: knobs.batch,
      preload_ms: o.phases.preLoadMs ?? null
    })
  }
}
