/** `judgeReplicate` (src/domain/Objective.ts): a replicate of N streams against a latency objective (SPEC C-1, C-2). */
import { describe, expect, it } from "@effect/vitest"
import { judgeReplicate, type Objective } from "../../src/domain/Objective.js"
import { paretoFront } from "../../src/domain/Pareto.js"
import type { ProbeSample } from "../../src/domain/Trial.js"
import { notesOf, Verdict } from "../../src/domain/Verdict.js"

const stream = (ttftMs: number, tps: number, itlP95Ms: number, failure: ProbeSample["failure"] = null): ProbeSample => ({
  failure,
  ttftMs,
  tps,
  promptTokens: 200,
  completionTokens: 16,
  totalMs: ttftMs + 100,
  serverTimings: null,
  itlP50Ms: itlP95Ms / 2,
  itlP95Ms
})

const objective = (o: Partial<Objective>): Objective => ({ streams: 4, ttftP95Ms: 1000, itlP95Ms: null, decodeTps: null, ...o })

describe("judgeReplicate (SPEC C-1, C-2)", () => {
  it("C-2 goodput sums the decode rate of the streams that met the objective; one that missed counts zero", () => {
    const parts = [stream(200, 10, 20), stream(400, 12, 25), stream(900, 8, 60), stream(1200, 5, 30)]
    const j = judgeReplicate(objective({ itlP95Ms: 50 }), 60_000, parts)
    // The 3rd missed the ITL bound, the 4th the TTFT bound.
    expect(j.streams.map((s) => s.met)).toEqual([true, true, false, false])
    expect(j.goodputTps).toBe(22)
    expect(j.aggregateTps).toBe(35)
    expect(j.itlP95Ms).toBe(60)
  })

  it("C-1 the replicate misses on the p95 of its streams' TTFT, then the worst ITL p95, then the slowest decode, with its figures", () => {
    const parts = [stream(200, 10, 20), stream(400, 12, 25), stream(600, 8, 60), stream(1200, 5, 30)]
    const ttft = judgeReplicate(objective({ itlP95Ms: 50, decodeTps: 6 }), 60_000, parts).missed
    expect(ttft).toEqual(Verdict.ObjectiveMissed({ metric: "ttft_p95", value: 1200, limit: 1000, streams: 4 }))
    expect(notesOf(ttft!)).toBe("TTFT p95 1200 ms > 1000 ms objective at 4 users")
    const itl = judgeReplicate(objective({ ttftP95Ms: 2000, itlP95Ms: 50, decodeTps: 6 }), 60_000, parts).missed!
    expect(notesOf(itl)).toBe("ITL p95 60 ms > 50 ms objective at 4 users")
    const decode = judgeReplicate(objective({ ttftP95Ms: 2000, decodeTps: 6 }), 60_000, parts).missed!
    expect(notesOf(decode)).toBe("slowest stream decoded 5.0 tok/s < 6 tok/s objective at 4 users")
    expect(judgeReplicate(objective({ ttftP95Ms: 2000, itlP95Ms: 60, decodeTps: 5 }), 60_000, parts).missed).toBeNull()
  })

  it("C-1 N-2 a stream cut off with no first token counts at the cut-off in the TTFT p95 (not left out)", () => {
    const cut = { ...stream(0, 0, 0, Verdict.GateMissed({ phase: "probe", gateTtftMs: 5750, ttftMs: null })), ttftMs: null, tps: null }
    const parts = [stream(300, 10, 20), stream(300, 10, 20), stream(300, 10, 20), cut]
    const j = judgeReplicate(objective({ ttftP95Ms: 1000 }), 5000, parts, 5750)
    expect(notesOf(j.missed!)).toBe("TTFT p95 5750 ms > 1000 ms objective at 4 users")
    expect(j.goodputTps).toBe(30)
  })

  it("C-1 a TTFT bound at the gate is left to the gate; a failed stream never meets the objective", () => {
    const parts = [stream(200, 10, 20), stream(1200, 5, 30, Verdict.GateMissed({ phase: "probe", gateTtftMs: 1000, ttftMs: 1200 }))]
    const j = judgeReplicate(objective({ streams: 2, ttftP95Ms: 1000 }), 1000, parts)
    expect(j.missed).toBeNull()
    expect(j.streams.map((s) => s.met)).toEqual([true, false])
    expect(j.goodputTps).toBe(10)
  })
})

describe("paretoFront (issue 17 part 6)", () => {
  it("keeps the cells no other beats on both tok/s and TTFT p95; equal cells all stay", () => {
    const front = paretoFront([
      { tps: 10, ttftP95Ms: 100 }, // on it: fastest TTFT
      { tps: 20, ttftP95Ms: 300 }, // on it
      { tps: 15, ttftP95Ms: 300 }, // dominated by the one above
      { tps: 30, ttftP95Ms: 900 }, // on it: most tok/s
      { tps: 20, ttftP95Ms: 300 }, // equal to #2: stays
      { tps: 9, ttftP95Ms: 100 } // dominated by #0
    ])
    expect(front).toEqual([0, 1, 3, 4])
  })
})
