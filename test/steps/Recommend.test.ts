import { NO_SPREAD } from "../../src/domain/Trial.js"
import { describe, expect, it } from "@effect/vitest"
import type { Candidate } from "../../src/domain/Candidate.js"
import { Knobs } from "../../src/domain/Knobs.js"
import { Inputs, Machine } from "../../src/domain/TuneDocument.js"
import { embedded } from "../../src/providers/Embedded.js"
import { macProvider } from "../../src/providers/MacProvider.js"
import { buildDocument, type RunSummary } from "../../src/steps/Recommend.js"
import type { TrialOutcome } from "../../src/domain/Trial.js"
import { Verdict } from "../../src/domain/Verdict.js"
import { allInfeasibleMessage } from "../../src/steps/Stage1.js"

const cand = (id: string, rank: number, paramCount: number | null): Candidate => ({ id, model: id, rank, paramCount, ggufFile: false, fileBytes: null })
const outcome: TrialOutcome = {
  verdict: Verdict.Fits(), replicates: 3, nErr: 0, tpsMedian: 40, ttftMedianMs: 900, ttftP95Ms: 1000, calibration: null, samples: [],
  startedAt: "2026-01-01T00:00:00.000Z", server: { promptTokens: null, promptN: null, promptTps: null, decodeTps: null, requestMs: null }, phases: { loadMs: null, preWarmMs: null, probeMs: null }, spread: NO_SPREAD, marginal: false, background: null
}
const machine = new Machine({ ram_gb: 24, chip: "test cpu", os_version: "Linux 6", binary_version: null })
const summary = (candidates: ReadonlyArray<Candidate>, chosen: Candidate, over: Partial<RunSummary> = {}): RunSummary => ({
  runId: "r1", startedAt: "2026-01-01T00:00:00.000Z", endedAt: "2026-01-01T00:01:00.000Z", exitReason: "ok",
  partial: false, machine,
  inputs: new Inputs({ target_context: 2048, candidate_models: candidates.map((c) => c.id), stage1_replicates: 3,
    stage2_replicates: 3, gate_ttft_ms: 60000, tps_tie_epsilon: 0.1 }),
  adapter: macProvider("macprovider-cli"), candidates, targetContext: 2048, replyTokens: 64,
  recommended: { candidate: chosen, knobs: new Knobs({ kvBits: null, maxContext: 2048, maxBatch: 1, threads: null }), outcome },
  rejected: [], disturbedTrials: 0, tiedWithinNoise: [], drift: null, stage1: null, noisePolicy: { maxReplicates: 9, maxBackgroundCores: 0.25 }, ...over
})

describe("recommendation document (SPEC F-1, F-2)", () => {
  it("F-1 alternates are the smaller candidates by size, whatever the input order, names only", () => {
    const cs = [cand("tiny-1b", 1, 1e9), cand("huge-70b", 2, 70e9), cand("mid-8b", 3, 8e9), cand("small-3b", 4, 3e9)]
    const doc = buildDocument(summary(cs, cs[2]!))
    expect(doc.alternates).toEqual(["small-3b", "tiny-1b"])
    expect(buildDocument(summary(cs, cs[0]!)).alternates).toEqual([])
  })
  it("F-1 a smaller candidate this run found infeasible is no alternate", () => {
    const cs = [cand("big-8b", 1, 8e9), cand("mid-3b", 2, 3e9), cand("small-1b", 3, 1e9)]
    const doc = buildDocument(summary(cs, cs[1]!, { rejected: [{ candidate: cs[2]!, verdict: Verdict.GateMissed({ phase: "probe", gateTtftMs: 5000, ttftMs: 9000 }) }] }))
    expect(doc.alternates).toEqual([])
    expect(buildDocument(summary(cs, cs[1]!)).alternates).toEqual(["small-1b"])
  })
  it("F-1 F-2 knobs use config.yaml keys; kv-bits nil stays null; threads only for providers that have it", () => {
    const cs = [cand("m-1b", 1, 1e9)]
    const mac = buildDocument(summary(cs, cs[0]!))
    expect(mac.recommendation?.knobs).toEqual({ kv_bits: null, max_concurrency_override: 1, max_context_override: 2048 })
    const emb = buildDocument(summary(cs, cs[0]!, { adapter: embedded(null) }))
    expect(emb.recommendation?.knobs).toHaveProperty("threads", null)
    expect(mac.recommendation?.serve_command).toBe("macprovider-cli serve --model m-1b --max-context 2048 --max-batch 1")
  })
  it("F-2 the recipe hash depends on machine, inputs, model and knobs only (not run id, times or metrics)", () => {
    const cs = [cand("m-1b", 1, 1e9)]
    const a = buildDocument(summary(cs, cs[0]!))
    const b = buildDocument(summary(cs, cs[0]!, {
      runId: "r2", startedAt: "2027-01-01T00:00:00.000Z",
      recommended: { candidate: cs[0]!, knobs: new Knobs({ kvBits: null, maxContext: 2048, maxBatch: 1, threads: null }),
        outcome: { ...outcome, tpsMedian: 99 } }
    }))
    expect(a.recipe_hash).toMatch(/^sha256:[0-9a-f]{64}$/)
    expect(b.recipe_hash).toBe(a.recipe_hash)
    const c = buildDocument(summary(cs, cs[0]!, {
      recommended: { candidate: cs[0]!, knobs: new Knobs({ kvBits: 8, maxContext: 2048, maxBatch: 1, threads: null }), outcome }
    }))
    expect(c.recipe_hash).not.toBe(a.recipe_hash)
  })
})

describe("all infeasible message (SPEC A-4)", () => {
  it("A-4 leads with the smallest by parameter size, then larger ones in size order, never list position", () => {
    const msg = allInfeasibleMessage([
      { candidate: cand("phi-3.8b", 1, 3.8e9), verdict: Verdict.GateMissed({ phase: "probe", gateTtftMs: 60000, ttftMs: 83700 }) },
      { candidate: cand("llama-1b", 2, 1e9), verdict: Verdict.RequestFailed({ phase: "probe", detail: "HTTP 503", status: 503 }) },
      { candidate: cand("llama-3b", 3, 3e9), verdict: Verdict.GateMissed({ phase: "probe", gateTtftMs: 60000, ttftMs: 94600 }) }
    ])
    const lines = msg.split("\n")
    expect(lines[0]).toContain("even llama-1b (1B): HTTP 503")
    expect(lines[1]).toContain("llama-3b")
    expect(lines[2]).toContain("phi-3.8b")
  })
})
