import type { HttpClient } from "@effect/platform"
import { Clock, Console, Effect, Option } from "effect"
import { embeddedContextSize } from "../providers/Embedded.js"
import { availableMemoryBytes, estimatedReason, estimateMemory, isEstimatedSkip } from "./MemoryEstimate.js"
import type { Candidate } from "../domain/Candidate.js"
import type { Knobs } from "../domain/Knobs.js"
import { median, percentile } from "../domain/Stats.js"
import type { ProviderAdapter } from "../providers/ProviderAdapter.js"
import { CandidateProvider } from "../services/CandidateProvider.js"
import { preWarm } from "./PreWarm.js"
import { probeOnce, type ProbeSample } from "./Probe.js"
import { type Calibration, promptOfWords, wordsForTokens } from "./Prompt.js"
import { PROMPT_TOLERANCE } from "./PromptTolerance.js"
import { classifyPreWarmFailure, type FailureKind } from "./PreWarmFailure.js"
import { readModelInfo } from "../gguf/ModelInfo.js"

/** The run-wide settings a trial needs. Units: tokens, ms. */
export interface TrialSettings {
  readonly adapter: ProviderAdapter
  readonly targetContext: number
  readonly maxTokens: number
  readonly gateTtftMs: number
  readonly requestTimeoutMs: number
  readonly readyTimeoutMs: number
  readonly logDir: string
  /**
   * Skip a GGUF candidate or cell without launching it when its memory
   * estimate exceeds the memory available (issue "llama-server" item 4);
   * false with `--no-estimate`.
   */
  readonly estimate: boolean
  /** `--memory-limit` in GiB, null for what the machine has available (availableMemoryBytes). */
  readonly memoryLimitGiB: number | null
}

/**
 * What one trial measured: `reason` null iff every replicate was feasible
 * (SPEC B-2, G-1). Medians over replicates (B-2): tokens/s and ms.
 */
export interface TrialOutcome {
  readonly reason: string | null
  /**
   * For a trial that failed before measuring (start, load or pre-warm), how that
   * failure counts (SPEC D-2): `integrity` aborts the run. Null otherwise.
   */
  readonly preWarmFailure: FailureKind | null
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
 * One replicate: `maxBatch` concurrent requests (aggregate tokens/s, worst
 * TTFT), and each request's own sample (every prompt is checked, SPEC P-1).
 */
const replicate = (run: (i: number) => Effect.Effect<ProbeSample, never, HttpClient.HttpClient>, concurrent: number) =>
  Effect.forEach(Array.from({ length: concurrent }, (_, i) => i), run, { concurrency: "unbounded" }).pipe(
    Effect.map((ss): { readonly merged: ProbeSample; readonly parts: ReadonlyArray<ProbeSample> } => {
      const bad = ss.find((s) => s.reason !== null)
      const ttfts = ss.flatMap((s) => (s.ttftMs === null ? [] : [s.ttftMs]))
      const tps = ss.every((s) => s.tps !== null) ? ss.reduce((a, s) => a + s.tps!, 0) : null
      return {
        merged: {
          ...ss[0]!,
          reason: bad?.reason ?? null,
          ttftMs: ttfts.length === ss.length ? Math.max(...ttfts) : null,
          tps,
          completionTokens: ss.reduce((a, s) => a + s.completionTokens, 0)
        },
        parts: ss
      }
    })
  )

/**
 * Runs one trial: starts the provider for `candidate` with `knobs` (its own
 * Scope: stopped on every exit path, SPEC §2), pre-warms it at the target
 * context (D-1; the model loads once per trial), then sends
 * `replicates` probes at the target context (P-1), each with `knobs.maxBatch`
 * concurrent requests, stopping at the first infeasible replicate (B-2: one is
 * enough to make the cell infeasible). A GGUF candidate's header is checked
 * first (D-2: magic, version, tensor data within the file); then, unless
 * `estimate` is off, its memory at this cell's context, slots and KV type is
 * estimated and a cell over the available memory is infeasible with reason
 * `estimated X GiB > Y GiB available`, never launched. A failed check,
 * start failure or pre-warm failure is classified (D-2, `preWarmFailure`;
 * integrity reasons start with `integrity:`); it, a gate miss, provider death
 * or prompt-size miss (> 5 %, P-1) is an infeasible outcome with its reason
 * (G-1), never an error: aborting on integrity is the caller's decision.
 */
export const runTrial = (
  s: TrialSettings,
  candidate: Candidate,
  knobs: Knobs,
  replicates: number,
  known: Calibration | null
): Effect.Effect<TrialOutcome, never, CandidateProvider | HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const provider = yield* CandidateProvider
    const startedAt = new Date(yield* Clock.currentTimeMillis).toISOString()
    // Phase wall times, filled in as the trial reaches each phase.
    const phases: { loadMs: number | null; preWarmMs: number | null; probeMs: number | null } = {
      loadMs: null,
      preWarmMs: null,
      probeMs: null
    }
    const since = (t0: number) => Effect.map(Clock.currentTimeMillis, (t) => t - t0)
    const summarize = (
      reason: string | null,
      kind: FailureKind | null,
      samples: ReadonlyArray<ProbeSample> = [],
      calibration: Calibration | null = null
    ) => summarizeTrial(reason, kind, samples, calibration, replicates, startedAt, { ...phases })
    const infeasible = (reason: string, samples: ReadonlyArray<ProbeSample> = [], calibration: Calibration | null = null) =>
      summarize(reason, null, samples, calibration)
    // SPEC D-2: a failure before measurement is classified from its reason and the provider's output.
    const preWarmFailed = (reason: string, outputTail: string, corrupt = false) => {
      if (corrupt) return summarize(`integrity: ${reason}`, "integrity")
      const c = classifyPreWarmFailure(reason, outputTail)
      if (c.marker === null) return summarize(reason, "transient")
      // Quote the provider's line that carries the marker when the reason does not already.
      const line = reason.toLowerCase().includes(c.marker.phrase)
        ? null
        : outputTail.split("\n").find((l) => l.toLowerCase().includes(c.marker!.phrase))?.trim() ?? null
      return summarize(`integrity: ${reason}${line === null ? "" : ` (${line})`}`, "integrity")
    }
    // SPEC D-2: the weights are checked before loading where the format allows it
    // (GGUF: magic, version, tensor data within the file), so a corrupt file never starts.
    if (candidate.ggufFile) {
      const checked = yield* readModelInfo(candidate.model).pipe(Effect.either)
      // A file whose bytes are not a valid GGUF is an integrity failure by construction;
      // one that cannot be read (permissions, vanished) is classified like any other failure.
      if (checked._tag === "Left") {
        return preWarmFailed(`pre-load check of ${candidate.model}: ${checked.left.message}`, "", checked.left.kind === "corrupt")
      }
    }
    const spec = { model: candidate.model, knobs, targetContext: s.targetContext, maxTokens: s.maxTokens }
    if (s.estimate && candidate.ggufFile) {
      // Read now, when no candidate of this run is running (the previous trial's scope closed).
      const availableBytes = availableMemoryBytes(s.memoryLimitGiB)
      const est = yield* estimateMemory({
        modelPath: candidate.model,
        contextSize: embeddedContextSize({ ...spec, port: null }),
        sequences: knobs.maxBatch ?? 1,
        kvBits: knobs.kvBits,
        ...(knobs.threads === null ? {} : { threads: knobs.threads })
      }).pipe(
        Effect.tapError((e) => Console.error(`autotune: no memory estimate for ${candidate.id} (${e.message}); measuring it`)),
        Effect.option
      )
      if (Option.isSome(est) && est.value.totalBytes > availableBytes) return infeasible(estimatedReason(est.value, availableBytes))
    }
    const t0 = yield* Clock.currentTimeMillis
    const started = yield* provider.start({
      adapter: s.adapter,
      spec,
      logDir: s.logDir,
      readyTimeoutMs: s.readyTimeoutMs
    }).pipe(Effect.either)
    phases.loadMs = yield* since(t0)
    if (started._tag === "Left") {
      const e = started.left
      return preWarmFailed(`${e.message}${e.stderrTail ? `: ${errorLines(e.stderrTail)}` : ""}`, e.stderrTail)
    }
    const server = started.right
    const concurrent = knobs.maxBatch ?? 1
    const t1 = yield* Clock.currentTimeMillis
    const warm = yield* preWarm(server, {
      targetContext: s.targetContext,
      concurrent,
      // D-1: first-use costs are excluded from the gate, so a pre-warm request
      // gets the ready timeout on top of the request timeout.
      timeoutMs: s.readyTimeoutMs + s.requestTimeoutMs,
      known
    })
    phases.preWarmMs = yield* since(t1)
    if (warm._tag === "Failed") return preWarmFailed(warm.reason, yield* server.outputTail)
    const calibration = warm.calibration
    const words = wordsForTokens(calibration, s.targetContext)
    const samples: Array<ProbeSample> = []
    const t2 = yield* Clock.currentTimeMillis
    for (let i = 0; i < replicates; i++) {
      // Every request gets its own prompt variant: no two share a cacheable prefix.
      const { merged: sample, parts } = yield* replicate(
        (j) =>
          probeOnce(server, {
            prompt: promptOfWords(words, 1 + i * concurrent + j),
            maxTokens: s.maxTokens,
            gateTtftMs: s.gateTtftMs,
            requestTimeoutMs: s.requestTimeoutMs
          }),
        concurrent
      )
      samples.push(sample)
      phases.probeMs = yield* since(t2)
      // P-1 for every request of the replicate, not only the first.
      const missed = parts.map(promptTokensOf).find((n) =>
        n !== null && Math.abs(n - s.targetContext) > PROMPT_TOLERANCE * s.targetContext
      )
      const promptMiss = missed === undefined || missed === null
        ? null
        : `prompt was ${missed} tokens, target ${s.targetContext} (more than 5 % off, SPEC P-1)`
      const reason = sample.reason ?? promptMiss
      if (reason !== null) return infeasible(reason, samples, calibration)
    }
    return summarize(null, null, samples, calibration)
  }).pipe(Effect.scoped)

/**
 * The lines of a provider's output tail worth quoting in a reason (SPEC E-4):
 * the first 2 that read as errors (the cause comes first: llama.cpp marks its
 * error lines ` E ` and follows the cause with "failed to load model" chatter)
 * and the last line, else the last 3 lines; joined with ` | `.
 */
const errorLines = (tail: string): string => {
  // The log's first line is the command (`$ …`), never the cause.
  const lines = tail.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("$ "))
  const errors = lines.filter((l) => / E |error|fail|invalid|unknown|cannot|unable|out of memory/i.test(l))
  const picked = errors.length > 0 ? [...new Set([...errors.slice(0, 2), lines.at(-1)!])] : lines.slice(-3)
  return picked.join(" | ")
}

/** Prompt tokens as the provider counted them (SPEC P-1): `usage.prompt_tokens`, else llama.cpp's `timings.prompt_n`. */
const promptTokensOf = (x: ProbeSample): number | null => x.promptTokens ?? x.serverTimings?.promptN ?? null

const summarizeTrial = (
  reason: string | null,
  preWarmFailure: FailureKind | null,
  samples: ReadonlyArray<ProbeSample>,
  calibration: Calibration | null,
  replicates: number,
  startedAt: string,
  phases: TrialOutcome["phases"]
): TrialOutcome => {
  const ok = samples.filter((x) => x.reason === null)
  const medianOf = (f: (x: ProbeSample) => number | null | undefined) =>
    median(samples.flatMap((x) => {
      const v = f(x)
      return v === null || v === undefined ? [] : [v]
    }))
  const ttfts = ok.flatMap((x) => (x.ttftMs === null ? [] : [x.ttftMs]))
  return {
    reason,
    preWarmFailure,
    replicates,
    // A failure outside the requests (start, pre-warm, P-1) counts as one error; an estimate skip sent none.
    nErr: samples.length - ok.length + (reason !== null && !isEstimatedSkip(reason) && samples.every((x) => x.reason === null) ? 1 : 0),
    tpsMedian: median(ok.flatMap((x) => (x.tps === null ? [] : [x.tps]))),
    ttftMedianMs: median(ttfts),
    ttftP95Ms: percentile(ttfts, 95),
    calibration,
    samples,
    startedAt,
    server: {
      promptTokens: medianOf(promptTokensOf),
      promptN: medianOf((x) => x.serverTimings?.promptN),
      promptTps: medianOf((x) => x.serverTimings?.promptPerSecond),
      decodeTps: medianOf((x) => x.serverTimings?.predictedPerSecond),
      requestMs: samples.some((x) => x.serverTimings?.promptMs != null)
        ? samples.reduce((a, x) => a + (x.serverTimings?.promptMs ?? 0) + (x.serverTimings?.predictedMs ?? 0), 0)
        : null
    },
    phases
  }
}
