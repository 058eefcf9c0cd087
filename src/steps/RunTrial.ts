/**
 * One trial (SPEC §2 steps 3–4): a candidate or a Stage 2 cell started,
 * pre-warmed, probed over its replicates and judged, with its provider
 * stopped on every exit path.
 */
import type { HttpClient } from "@effect/platform"
import { Clock, Console, Effect, Fiber, Option, Schedule, type Types } from "effect"
import type { Candidate } from "../domain/Candidate.js"
import { classifyPreWarmFailure } from "../domain/IntegrityMarkers.js"
import type { Knobs } from "../domain/Knobs.js"
import { judgeReplicate, type Objective, STREAM_STAGGER_MS } from "../domain/Objective.js"
import { type Calibration, PROMPT_TOLERANCE, promptOfWords, wordsForTokens } from "../domain/Prompt.js"
import { median, percentile } from "../domain/Stats.js"
import { type Background, type ProbeSample, promptTokensOf, summarizeTrial, type TrialOutcome } from "../domain/Trial.js"
import { notesOf, Verdict } from "../domain/Verdict.js"
import { availableMemoryBytes, estimateMemory } from "../gguf/MemoryEstimate.js"
import { readModelInfo } from "../gguf/ModelInfo.js"
import type { ProviderAdapter } from "../providers/ProviderAdapter.js"
import { answeredThenExited, CandidateProvider } from "../services/CandidateProvider.js"
import { CpuMeter, type CpuSnapshot, othersCores } from "../services/CpuMeter.js"
import type { TrialLedger } from "./Ledger.js"
import { PRE_WARM_LOOSE_BOUND, preWarm, preWarmBoundMs } from "./PreWarm.js"
import { probeOnce } from "./Probe.js"

/** The run-wide settings a trial needs. Units: tokens, ms. */
export interface TrialSettings {
  readonly adapter: ProviderAdapter
  readonly targetContext: number
  /** The probe's `max_tokens` (`--max-tokens`): how many tokens each measured request generates. */
  readonly maxTokens: number
  /** The reply budget (F-5, `--reply-tokens`): the room each request's context is started with for its reply; ≥ maxTokens. */
  readonly replyTokens: number
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
  /**
   * SPEC C-3 `--memory-headroom`: the fraction of the memory limit
   * (`memoryLimitGiB`, else what was available before the candidate started)
   * its provider's measured peak may reach; default DEFAULT_MEMORY_HEADROOM.
   */
  readonly memoryHeadroom?: number
  /**
   * SPEC C-1 `--concurrency` with its objective: each replicate is that many
   * streams and must meet it. Absent or null: one user, judged by the gate
   * alone (each replicate sends `maxBatch` requests at once).
   */
  readonly objective?: Objective | null
  /**
   * SPEC N-3 `--max-background-cores`: a trial during whose replicates other
   * processes used more cores than this on average is disturbed; null turns
   * the guard off (nothing is marked).
   */
  readonly maxBackgroundCores: number | null
  /**
   * SPEC R-2: the run's trial ledger — every trial Stage 1 and Stage 2 make is
   * measured through it (kept under its key; replayed from a resumed run's
   * parent). Absent: trials are measured and kept nowhere.
   */
  readonly ledger?: TrialLedger
}

/**
 * One replicate: `concurrent` requests at once (aggregate tokens/s, worst
 * TTFT and ITL), and each request's own sample (every prompt is checked, SPEC
 * P-1). Under an objective (SPEC C-1) the streams start STREAM_STAGGER_MS
 * apart, the merged `tps` is the goodput (C-2) and `missed` says which bound
 * the replicate missed (`judgeReplicate`); without one `missed` is null.
 */
const replicate = (
  run: (i: number) => Effect.Effect<ProbeSample, never, HttpClient.HttpClient>,
  concurrent: number,
  objective: Objective | null,
  gateTtftMs: number,
  cutoffMs: number
) =>
  Effect.forEach(
    Array.from({ length: concurrent }, (_, i) => i),
    (i) => (objective !== null && i > 0 ? Effect.delay(run(i), `${i * STREAM_STAGGER_MS} millis`) : run(i)),
    { concurrency: "unbounded" }
  ).pipe(
    Effect.map((ss): { readonly merged: ProbeSample; readonly parts: ReadonlyArray<ProbeSample>; readonly missed: Verdict | null } => {
      // A request cut at the gate must not hide a concurrent one that failed outright (a death, an error).
      const bad = ss.find((s) => s.failure !== null && s.failure._tag !== "GateMissed") ?? ss.find((s) => s.failure !== null)
      const ttfts = ss.flatMap((s) => (s.ttftMs === null ? [] : [s.ttftMs]))
      const tps = ss.every((s) => s.tps !== null) ? ss.reduce((a, s) => a + s.tps!, 0) : null
      const worst = (f: (s: ProbeSample) => number | null | undefined) => {
        const xs = ss.flatMap((s) => (f(s) == null ? [] : [f(s)!]))
        return xs.length === 0 ? null : Math.max(...xs)
      }
      const merged: ProbeSample = {
        ...ss[0]!,
        failure: bad?.failure ?? null,
        ttftMs: ttfts.length === ss.length ? Math.max(...ttfts) : null,
        tps,
        completionTokens: ss.reduce((a, s) => a + s.completionTokens, 0),
        itlP50Ms: worst((s) => s.itlP50Ms),
        itlP95Ms: worst((s) => s.itlP95Ms)
      }
      if (objective === null) return { merged, parts: ss, missed: null }
      const judged = judgeReplicate(objective, gateTtftMs, ss, cutoffMs)
      return {
        merged: { ...merged, tps: judged.goodputTps, aggregateTps: tps, streams: judged.streams },
        parts: ss,
        missed: judged.missed
      }
    })
  )

/**
 * Runs one trial: starts the provider for `candidate` with `knobs` (its own
 * Scope: stopped on every exit path, SPEC §2), pre-warms it (D-1: short
 * first-use requests, a full-length one where needed, bounded by
 * `preWarmBoundMs`; a cut there is a `GateMissed` of phase `pre-warm`; the
 * model loads once per trial), then sends
 * `replicates` probes at the target context (P-1), each with `knobs.maxBatch`
 * concurrent requests, stopping at the first infeasible replicate (B-2: one is
 * enough to make the cell infeasible). A GGUF candidate's header is checked
 * first (D-2: magic, version, tensor data within the file); then, unless
 * `estimate` is off, its memory at the adapter's slot context (`contextSize`),
 * slots and KV type is estimated and a cell over the available memory is
 * `EstimatedOver`, never launched. A failed check, start failure or pre-warm
 * failure is classified (D-2): `Integrity` when it names corrupt weights, else
 * its own verdict (`StartFailed`, or the pre-warm request's failure); a gate
 * miss, provider death or prompt-size miss (> 5 %, P-1) is its verdict too
 * (G-1). Never fails: aborting on integrity is the caller's decision.
 *
 * SPEC N-2, Stage 1 (`marginalCap` set, the `--max-replicates` cap; not under an objective): requests
 * are cut off only at the gate + 15 % (MARGINAL_BAND); a cut one is a
 * replicate over the gate (∞), not the call — but where the pre-warm sent no
 * full-length request, the first probe is bounded as that request would have
 * been (PRE_WARM_LOOSE_BOUND × the gate): cut there, it is the call at once;
 * a first token past the gate + 15 % within it ends the request there (its
 * reply not waited for: `ProbeRequest.overMs`), a replicate over the gate
 * with its TTFT. Every replicate so far cut
 * there, and at least two (one when `replicates` is 1): a clear miss, called
 * at once. When the first `replicates` put the TTFT p95 within ±15 % of the gate
 * or on both sides of it, the trial is `marginal`: it goes on toward
 * `marginalCap` replicates and is called on their median TTFT — stopping as
 * soon as most of that many fall on one side (the median cannot change side
 * any more). Otherwise every replicate must be within the gate (B-2, G-1).
 * SPEC C-1: under `s.objective` a replicate is its N streams (started
 * STREAM_STAGGER_MS apart) judged by `judgeReplicate`, its tok/s the goodput;
 * a trial is feasible only when every replicate meets the objective, so a
 * miss is `ObjectiveMissed` at once, and N-2's marginal call near the gate is
 * off (`marginalCap` ignored): more replicates could only add chances to miss. SPEC C-3: the provider
 * group's resident memory is sampled every MEMORY_SAMPLE_MS from ready to
 * the last probe; a trial that fits but peaked above `memoryHeadroom` × the
 * memory limit is `MemoryOver`. SPEC N-3: CpuMeter snapshots around the replicates (and
 * around a pre-warm's full-length requests, for a trial they decide) give
 * the cores other processes used (the candidate's process group and this
 * tuner left out); over `maxBackgroundCores` the outcome is `disturbed`
 * (not judged when the window was under MIN_GUARD_WINDOW_MS).
 */
export const runTrial = (
  s: TrialSettings,
  candidate: Candidate,
  knobs: Knobs,
  replicates: number,
  known: Calibration | null,
  marginalCap: number | null = null
): Effect.Effect<TrialOutcome, never, CandidateProvider | CpuMeter | HttpClient.HttpClient> =>
  Effect.gen(function*() {
    // SPEC C-1 over N-2: under an objective every replicate must meet it, its TTFT bound the gate's too, so no
    // marginal median call near the gate either (Stage 2, capacity and verify judge the same configuration so).
    const marginalUpTo = (s.objective ?? null) !== null ? null : marginalCap
    const provider = yield* CandidateProvider
    const startedAtMs = yield* Clock.currentTimeMillis
    const startedAt = new Date(startedAtMs).toISOString()
    // Phase wall times, filled in as the trial reaches each phase.
    const phases: Types.Mutable<TrialOutcome["phases"]> = {
      loadMs: null,
      preWarmMs: null,
      probeMs: null
    }
    const since = (t0: number) => Effect.map(Clock.currentTimeMillis, (t) => t - t0)
    const gate = s.gateTtftMs
    // N-2: a Stage 1 request is cut off only past the marginal band, so a TTFT just over the gate is measured.
    // Short of the request timeout, so a cut there reads as the gate's, not as a timeout.
    const cutoff = marginalUpTo === null ? gate : Math.max(gate, Math.min(Math.round(gate * (1 + MARGINAL_BAND)), s.requestTimeoutMs - 1))
    // Stage 1's cut-off (N-2): a request cut there had a TTFT of at least this.
    const cutoffMs = marginalUpTo === null ? null : cutoff
    // SPEC C-1: a replicate is `objective.streams` users under an objective; else `maxBatch` requests at once.
    const objective = s.objective ?? null
    const concurrent = objective !== null ? objective.streams : knobs.maxBatch ?? 1
    // SPEC C-3: what the trial knows of its memory so far (set once it got as far as an estimate or a start).
    let memory: { streams: number; peakRssBytes: number | null; estimatedBytes: number | null } | undefined = undefined
    const summarize = (
      verdict: Verdict,
      samples: ReadonlyArray<ProbeSample> = [],
      calibration: Calibration | null = null,
      judged: { readonly marginal: boolean; readonly background: Background | null } = { marginal: false, background: null }
    ) =>
      summarizeTrial(verdict, samples, {
        calibration,
        replicates,
        startedAt,
        phases: { ...phases },
        cutoffMs,
        ...judged,
        ...(memory === undefined ? {} : { memory: { ...memory } })
      })
    // SPEC N-3: the cores other processes used between two snapshots `windowMs` apart. Over a window shorter
    // than MIN_GUARD_WINDOW_MS a few clock ticks of any process read as whole cores: not a measurement.
    const backgroundOf = (from: CpuSnapshot | null, to: CpuSnapshot | null, windowMs: number | null): Background | null => {
      const cores = from === null || to === null || (windowMs ?? 0) < MIN_GUARD_WINDOW_MS ? null : othersCores(from, to)
      return cores === null ? null : { othersCores: cores, disturbed: s.maxBackgroundCores !== null && cores > s.maxBackgroundCores }
    }
    // SPEC D-2: a failure before measurement is classified from its reason and the provider's output.
    const preWarmFailed = (failure: Verdict, outputTail: string) => {
      const reason = notesOf(failure) ?? ""
      const c = classifyPreWarmFailure(reason, outputTail)
      if (c.marker === null) return summarize(failure)
      // Quote the provider's line that carries the marker when the reason does not already.
      const line = reason.toLowerCase().includes(c.marker.phrase)
        ? null
        : outputTail.split("\n").find((l) => l.toLowerCase().includes(c.marker!.phrase))?.trim() ?? null
      return summarize(Verdict.Integrity({ reason, line }))
    }
    // SPEC D-2: the weights are checked before loading where the format allows it
    // (GGUF: magic, version, tensor data within the file), so a corrupt file never starts.
    // The tuner's time before the provider's spawn, or before deciding not to start one (phases.preLoadMs).
    const preLoadEnds = Effect.map(Clock.currentTimeMillis, (t) => {
      phases.preLoadMs = t - startedAtMs
      return t
    })
    if (candidate.ggufFile) {
      const checked = yield* readModelInfo(candidate.model).pipe(Effect.either)
      if (checked._tag === "Left") {
        yield* preLoadEnds
        const reason = `pre-load check of ${candidate.model}: ${checked.left.message}`
        // A file whose bytes are not a valid GGUF is an integrity failure by construction;
        // one that cannot be read (permissions, vanished) is classified like any other failure.
        return checked.left.kind === "corrupt"
          ? summarize(Verdict.Integrity({ reason, line: null }))
          : preWarmFailed(Verdict.StartFailed({ message: reason, detail: "", exitCode: null }), "")
      }
    }
    const spec = { model: candidate.model, knobs, targetContext: s.targetContext, replyTokens: s.replyTokens }
    // Read now, when no candidate of this run is running (the previous trial's scope closed): the
    // estimate's limit, and the measured peak's (C-3).
    const availableBytes = availableMemoryBytes(s.memoryLimitGiB)
    memory = { streams: concurrent, peakRssBytes: null, estimatedBytes: null }
    if (s.estimate && candidate.ggufFile) {
      const est = yield* estimateMemory({
        modelPath: candidate.model,
        contextSize: s.adapter.contextSize({ ...spec, port: null }),
        sequences: knobs.maxBatch ?? 1,
        kvBits: knobs.kvBits,
        ...(knobs.flashAttn === null ? {} : { flashAttn: knobs.flashAttn }),
        ...(knobs.threads === null ? {} : { threads: knobs.threads })
      }).pipe(
        Effect.tapError((e) => Console.error(`autotune: no memory estimate for ${candidate.id} (${e.message}); measuring it`)),
        Effect.option
      )
      if (Option.isSome(est)) memory.estimatedBytes = est.value.totalBytes
      if (Option.isSome(est) && est.value.totalBytes > availableBytes) {
        yield* preLoadEnds
        return summarize(Verdict.EstimatedOver({ neededBytes: est.value.totalBytes, availableBytes }))
      }
    }
    const t0 = yield* preLoadEnds
    const started = yield* provider.start({
      adapter: s.adapter,
      spec,
      logDir: s.logDir,
      readyTimeoutMs: s.readyTimeoutMs
    }).pipe(Effect.either)
    phases.loadMs = yield* since(t0)
    if (started._tag === "Left") {
      const e = started.left
      return preWarmFailed(
        Verdict.StartFailed({ message: e.message, detail: e.stderrTail ? errorLines(e.stderrTail) : "", exitCode: e.exitCode }),
        e.stderrTail
      )
    }
    const server = started.right
    // SPEC C-3: the provider group's resident memory, sampled from ready to the last probe; the highest sample is the peak.
    const peakOf = (resident: Effect.Effect<number | null>) =>
      Effect.flatMap(resident, (b) =>
        Effect.sync(() => {
          if (b !== null && memory !== undefined && (memory.peakRssBytes === null || b > memory.peakRssBytes)) memory.peakRssBytes = b
        }))
    const sampleMemory = peakOf(server.residentBytes)
    // The last sample looks for the group's members afresh: a worker forked since the sampler last looked counts.
    const lastSample = peakOf(server.residentBytesScanned ?? server.residentBytes)
    const sampler = yield* Effect.forkScoped(Effect.repeat(sampleMemory, Schedule.spaced(`${MEMORY_SAMPLE_MS} millis`)))
    const meter = yield* CpuMeter
    const group = server.pid > 0 ? server.pid : null
    // SPEC N-3 over the pre-warm's full-length requests too (not its first use): a cut at the bound while
    // other processes were busy is disturbed. Opened by the pre-warm when it sends them.
    const warmWindow: Array<{ readonly from: CpuSnapshot | null; readonly atMs: number }> = []
    const openWarmWindow = Effect.gen(function*() {
      warmWindow.push({ from: yield* meter.snapshot(group), atMs: yield* Clock.currentTimeMillis })
    })
    const t1 = yield* Clock.currentTimeMillis
    // D-1: the short requests warm this provider for a full-length request (measured with one slot, so one
    // prefill at a time, issue 14); several slots were not measured and keep the full-length warm-up. (Users
    // beyond one slot, a capacity step's, queue: still one prefill at a time.)
    const shortWarms = s.adapter.shortWarmUpSuffices && (knobs.maxBatch ?? 1) === 1
    const warm = yield* preWarm(server, {
      targetContext: s.targetContext,
      // Never more at once than the provider has slots: users beyond them (a capacity step, C-4) would only queue.
      concurrent: Math.min(concurrent, knobs.maxBatch ?? 1),
      // D-1: first-use costs are excluded from the gate, so a pre-warm request
      // gets the ready timeout on top of the request timeout.
      timeoutMs: s.readyTimeoutMs + s.requestTimeoutMs,
      // Issue 14 part 4: the full-length request (with `shortWarms` sent only to calibrate) is
      // bounded by the gate + 5 % where it is a probe's equal (first use paid by the short requests, no N-2
      // median call, no staggered streams); in Stage 1 by twice the gate; elsewhere (outside Stage 1 where
      // the short requests are not known to warm: macprovider, several slots; any trial under an
      // objective, capacity steps included) only by the timeout: its first-use cost is unmeasured there, and
      // the first probe is cut at the gate anyway.
      boundMs: preWarmBoundMs(gate, { probeEqual: shortWarms && marginalUpTo === null && objective === null, stage1: marginalUpTo !== null }),
      gateTtftMs: gate,
      known,
      countsTokens: s.adapter.countsTokens,
      fullLength: !shortWarms,
      onFullLength: openWarmWindow
    })
    phases.preWarmMs = yield* since(t1)
    const opened = warmWindow[0]
    const warmBackground = opened === undefined
      ? null
      : backgroundOf(opened.from, yield* meter.snapshot(group), (yield* Clock.currentTimeMillis) - opened.atMs)
    if (warm._tag === "Failed") {
      yield* lastSample
      if (warm.failure._tag === "GateMissed") {
        // The gate decided it: a healthy provider, not an integrity question (D-2), and not waited for when it stops.
        yield* server.decided
        // Its counted or fitted calibration is kept: a later trial of the model sizes its prompt from it (issue 14).
        return summarize(warm.failure, [], warm.calibration ?? null, { marginal: false, background: warmBackground })
      }
      // SPEC E-4: a provider that answered ready and died within ALIVE_AFTER_READY, before answering any
      // request, never started (a death after an answered request is the pre-warm's, G-1).
      const early = warm.firstUse === true && server.exitedAfterReady !== undefined ? yield* server.exitedAfterReady : null
      const tail = yield* server.outputTail
      if (early !== null) {
        return preWarmFailed(
          Verdict.StartFailed({
            message: answeredThenExited(early),
            detail: tail ? errorLines(tail) : "",
            exitCode: early.code
          }),
          tail
        )
      }
      return preWarmFailed(warm.failure, tail)
    }
    const calibration = warm.calibration
    const words = wordsForTokens(calibration, s.targetContext)
    const samples: Array<ProbeSample> = []
    const before = yield* meter.snapshot(group)
    const t2 = yield* Clock.currentTimeMillis
    let marginal = false
    // Stage 1 bounds the process's first full-length request as the pre-warm bounds it (twice the gate,
    // PRE_WARM_LOOSE_BOUND): where the pre-warm sent none (a sized prompt on a provider the short requests warm),
    // that is the first probe, and a cut there is the call at once (issue 14 part 4), as in the pre-warm.
    const firstBound = marginalUpTo !== null && !warm.fullLength
      ? Math.max(cutoff, Math.min(PRE_WARM_LOOSE_BOUND * gate, s.requestTimeoutMs - 1))
      : null
    const probes = Effect.gen(function*() {
      let target = replicates
      for (let i = 0; i < target; i++) {
        const bound = i === 0 && firstBound !== null ? firstBound : cutoff
        // Every request gets its own prompt variant: no two share a cacheable prefix.
        const { merged: sample, parts, missed: missedObjective } = yield* replicate(
          (j) =>
            probeOnce(server, {
              prompt: promptOfWords(words, 1 + i * concurrent + j),
              maxTokens: s.maxTokens,
              gateTtftMs: bound,
              requestTimeoutMs: s.requestTimeoutMs,
              // Under the wider first bound, a first token past the cut-off is a replicate over the gate (N-2),
              // as a cut at the cut-off would have been, with its TTFT: its reply is not waited for. (The provider
              // stops it within about one decode step, which the next replicate may wait for: one token's decode
              // against a TTFT that prefilled the whole target context, 0.6 % for a 1.1B at 512 tokens, 30 ms of 4.9 s.)
              ...(bound > cutoff ? { overMs: cutoff } : {})
            }),
          concurrent,
          objective,
          gate,
          cutoff
        )
        samples.push(sample)
        phases.probeMs = yield* since(t2)
        const f = sample.failure
        // Cut at the wider first bound (no first token by then, or a later one): the call at once, as in the pre-warm.
        if (bound > cutoff && f?._tag === "GateMissed" && (f.ttftMs === null || f.ttftMs > bound)) {
          return gateMissed(stage1Ttfts(samples), gate)
        }
        // Stage 1 (N-2): a request past the gate + 15 % is a replicate over the gate, not yet the call.
        const overBand = marginalUpTo !== null && f?._tag === "GateMissed"
        if (f !== null && !overBand) {
          // A request cut off at the marginal band's edge missed the gate itself: say the gate.
          return f._tag === "GateMissed" ? Verdict.GateMissed({ ...f, gateTtftMs: gate }) : f
        }
        // P-1 for every request of the replicate, not only the first.
        const missed = parts.map(promptTokensOf).find((n) =>
          n !== null && Math.abs(n - s.targetContext) > PROMPT_TOLERANCE * s.targetContext
        )
        if (missed !== undefined && missed !== null) {
          return Verdict.PromptMiss({ promptTokens: missed, targetContext: s.targetContext })
        }
        // SPEC C-1: every replicate meets the objective at N users.
        if (missedObjective !== null) return missedObjective
        if (marginalUpTo === null) continue
        const ttfts = stage1Ttfts(samples)
        const over = ttfts.filter((t) => t > gate).length
        const under = ttfts.length - over
        // A clear miss: every replicate so far past the gate + 15 %, and two of them (one when a trial has one).
        const cut = samples.filter((x) => x.failure?._tag === "GateMissed").length
        if (cut === samples.length && cut >= Math.min(2, replicates)) return gateMissed(ttfts, gate)
        if (i === replicates - 1 && !marginal && isMarginal(ttfts, gate)) {
          marginal = true
          target = Math.max(target, marginalUpTo)
        }
        // A marginal call is settled once most of the cap falls on one side: the median can no longer change side.
        const settled = Math.floor(target / 2) + 1
        if (marginal && over >= settled) return gateMissed(ttfts, gate)
        if (marginal && under >= settled) break
      }
      if (marginalUpTo === null) {
        // G-1: every replicate within the gate (the probe cut any that was not).
        return Verdict.Fits()
      }
      // N-2: a marginal call on the median of the replicates; otherwise every replicate within the gate.
      const ttfts = stage1Ttfts(samples)
      const judged = marginal ? median(ttfts) : Math.max(...ttfts)
      return judged !== null && judged > gate ? gateMissed(ttfts, gate) : Verdict.Fits()
    })
    const probed = yield* probes
    // SPEC C-3: a trial whose provider's peak resident memory went over the headroom of the limit is infeasible.
    // The sampler stops first, so the peak recorded is the one judged.
    yield* Fiber.interrupt(sampler)
    yield* lastSample
    const headroom = s.memoryHeadroom ?? DEFAULT_MEMORY_HEADROOM
    const peak = memory.peakRssBytes
    const verdict = probed._tag === "Fits" && peak !== null && peak > headroom * availableBytes
      ? Verdict.MemoryOver({ peakBytes: peak, limitBytes: availableBytes, headroom, streams: concurrent })
      : probed
    // The gate decided it: the provider is not waited for when it stops (issue 14).
    if (verdict._tag === "GateMissed" || verdict._tag === "ObjectiveMissed") yield* server.decided
    const after = yield* meter.snapshot(group)
    return summarize(verdict, samples, calibration, { marginal, background: backgroundOf(before, after, phases.probeMs) })
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

/**
 * SPEC C-3: how often a trial samples its provider's resident memory, ms (on Linux a look through all of
 * /proc for the group's members costs ~10 ms of CPU with 69 processes, so it is made every fourth sample
 * and at the last: system/GroupMemory.ts `groupResidentSampler`).
 */
export const MEMORY_SAMPLE_MS = 500

/** SPEC C-3 `--memory-headroom`'s default: a trial may peak at 90 % of the memory limit. */
export const DEFAULT_MEMORY_HEADROOM = 0.9

/**
 * SPEC N-3: the shortest run of replicates the guard judges, ms. /proc counts
 * CPU time in 10 ms ticks, so over a shorter window one tick of any process
 * reads as a whole core.
 */
export const MIN_GUARD_WINDOW_MS = 1000

/** SPEC N-2: how far around the gate (±15 %) a Stage 1 TTFT p95 counts as marginal. */
export const MARGINAL_BAND = 0.15

/**
 * The TTFTs (ms) of a Stage 1 trial's replicates (N-2): a request cut off past
 * the gate + 15 % counts as over it (∞).
 */
const stage1Ttfts = (samples: ReadonlyArray<ProbeSample>): Array<number> =>
  samples.flatMap((x) =>
    x.failure?._tag === "GateMissed" ? [x.ttftMs ?? Infinity] : x.failure === null && x.ttftMs !== null ? [x.ttftMs] : []
  )

/** A Stage 1 gate miss (G-1) named by the gate, with the median TTFT when one was measured (null: no first token). */
const gateMissed = (ttfts: ReadonlyArray<number>, gateMs: number) => {
  const m = median(ttfts)
  return Verdict.GateMissed({ phase: "probe", gateTtftMs: gateMs, ttftMs: m === null || !Number.isFinite(m) ? null : m })
}

/**
 * SPEC N-2: a Stage 1 call is marginal when the TTFT p95 lies within ±15 % of
 * the gate, or the replicates fall on both sides of it.
 */
export const isMarginal = (ttfts: ReadonlyArray<number>, gateMs: number): boolean => {
  const p95 = percentile(ttfts, 95)
  if (p95 === null) return false
  const both = ttfts.some((t) => t > gateMs) && ttfts.some((t) => t <= gateMs)
  return both || Math.abs(p95 - gateMs) <= MARGINAL_BAND * gateMs
}
