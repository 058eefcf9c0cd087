/**
 * Figure 5's missing part: the Stage 2 cells an exhaustive sweep would also
 * measure on a candidate the tune skipped after Stage 1 (here the gated-out
 * 1.1B). A tune cannot be told to run Stage 2 on an infeasible model, so each
 * cell is run through the tune's own `runTrial` (src/steps/RunTrial.ts: start,
 * pre-warm, probes, stop at the first infeasible replicate) with the same
 * settings the tune used; only its provider-seconds are kept.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { type Axes, cells } from "../src/domain/Axes.js"
import { describeKnobs } from "../src/domain/Knobs.js"
import { llamaServerAdapter } from "../src/providers/LlamaServer.js"
import { CpuMeter } from "../src/services/CpuMeter.js"
import { CandidateProvider } from "../src/services/CandidateProvider.js"
import { resolveCandidates } from "../src/steps/Candidates.js"
import { type Calibration, DEFAULT_REPLY_TOKENS } from "../src/domain/Prompt.js"
import type { TrialOutcome } from "../src/domain/Trial.js"
import { notesOf } from "../src/domain/Verdict.js"
import { Exec } from "../src/services/Exec.js"
import { runTrial, type TrialSettings } from "../src/steps/RunTrial.js"

/** One cell's cost and verdict. Times ms. */
export interface CellCost {
  readonly knobs: string
  readonly fits: boolean
  readonly reason: string | null
  readonly loadMs: number
  readonly preWarmMs: number
  readonly probeMs: number
}

/** The tune's settings the cells are run with (as planFromFlags derives them). Units: tokens, ms. */
export interface CellSettings {
  readonly model: string
  readonly axes: Axes
  readonly targetContext: number
  readonly gateTtftMs: number
  readonly maxTokens: number
  readonly replicates: number
  readonly logDir: string
}

/**
 * Runs every cell of `axes` on `model` with llama-server, one after another.
 * The first cell sizes the prompt (its short request and llama-server's
 * `/tokenize`, steps/PreWarm.ts); later cells reuse that calibration, as the
 * tune's Stage 2 reuses Stage 1's. No cell sends a full-length warm-up (one
 * slot each: the bench's batch axis is 1; D-1: the short requests warm
 * llama-server); each first probe is its first full-length request, cut at
 * the gate (outside Stage 1).
 */
export const runExhaustiveCells = (s: CellSettings, binary: string): Promise<ReadonlyArray<CellCost>> =>
  Effect.runPromise(
    Effect.gen(function*() {
      const [candidate] = yield* resolveCandidates([s.model], "llama-server")
      // As planFromFlags builds them from the tune's flags (defaults where the bench passes none).
      const settings: TrialSettings = {
        // Asked for its optional flags, as the tune asks it before its first candidate.
        adapter: yield* llamaServerAdapter(binary),
        targetContext: s.targetContext,
        maxTokens: s.maxTokens,
        // The tune's default reply budget (SPEC F-5), so the cells start servers as its trials do.
        replyTokens: Math.max(DEFAULT_REPLY_TOKENS, s.maxTokens),
        gateTtftMs: s.gateTtftMs,
        // planFromFlags's default: the gate + 120 s.
        requestTimeoutMs: (Math.ceil(s.gateTtftMs / 1000) + 120) * 1000,
        readyTimeoutMs: 300_000,
        logDir: s.logDir,
        estimate: true,
        memoryLimitGiB: null,
        maxBackgroundCores: null
      }
      let calibration: Calibration | null = null
      const out: Array<CellCost> = []
      for (const knobs of cells(s.axes)) {
        const o: TrialOutcome = yield* runTrial(settings, candidate!, knobs, s.replicates, calibration)
        calibration ??= o.calibration
        out.push({
          knobs: describeKnobs(knobs),
          fits: o.verdict._tag === "Fits",
          reason: notesOf(o.verdict),
          loadMs: o.phases.loadMs ?? 0,
          preWarmMs: o.phases.preWarmMs ?? 0,
          probeMs: o.phases.probeMs ?? 0
        })
      }
      return out
    }).pipe(Effect.provide(Layer.mergeAll(CandidateProvider.Default, Exec.Default, CpuMeter.Default).pipe(Layer.provideMerge(NodeHttpClient.layerUndici))))
  )
