/**
 * The measurement's own error (SPEC N-1..N-3), with simulated providers under
 * TestClock and a stand-in CPU meter: a Stage 1 call near the gate gets more
 * replicates and is made on their median (N-2); a trial measured while other
 * processes were busy is measured again when the machine is quiet (N-3).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Ref, TestClock } from "effect"
import type { Candidate } from "../../src/domain/Candidate.js"
import { Knobs } from "../../src/domain/Knobs.js"
import type { TrialOutcome } from "../../src/domain/Trial.js"
import { notesOf } from "../../src/domain/Verdict.js"
import { CandidateProvider, serverWithoutProcess, type StubEvent } from "../../src/services/CandidateProvider.js"
import { CpuMeter, fromPsTimes, othersCores, psTimeMs } from "../../src/services/CpuMeter.js"
import type { Calibration } from "../../src/domain/Prompt.js"
import { preWarmBoundMs } from "../../src/steps/PreWarm.js"
import { runTrial, type TrialSettings } from "../../src/steps/RunTrial.js"
import { stage1 } from "../../src/steps/Stage1.js"
import { fakeHttp, noTokenize, simulatedSettings, startsAndStops, templateTokens, textTokens, ttftSeconds, zeroTokenize } from "../support/simulatedProvider.js"

const cand = (id: string): Candidate => ({ id, model: id, rank: 1, paramCount: null, ggufFile: false, fileBytes: null })

/** A provider stand-in answering at fakeHttp's host, with the given CPU meter. */
const providers = (journal: Ref.Ref<ReadonlyArray<StubEvent>>, meter: Layer.Layer<CpuMeter>) =>
  Layer.mergeAll(
    CandidateProvider.Stub((o) => Effect.succeed(serverWithoutProcess(`http://${o.spec.model}.kv-unset`, o.spec.model)), journal),
    fakeHttp,
    meter
  )

/** Runs `eff` forked with the stand-ins, advancing the test clock far enough for every simulated request. */
const simulated = <A, E>(eff: Effect.Effect<A, E, CandidateProvider | CpuMeter | import("@effect/platform").HttpClient.HttpClient>, meter: Layer.Layer<CpuMeter> = CpuMeter.Stub(() => 0)) =>
  Effect.gen(function*() {
    const journal = yield* Ref.make<ReadonlyArray<StubEvent>>([])
    const fiber = yield* Effect.fork(eff.pipe(Effect.provide(providers(journal, meter))))
    yield* TestClock.adjust("10 minutes")
    const value = yield* Fiber.join(fiber)
    return { value, ...startsAndStops(yield* Ref.get(journal)) }
  })

// Simulated first-token times of this file's models, s (fakeHttp reads them by the model's name).
ttftSeconds["edge-2b"] = 1

/** One trial of `model` at gate `gateMs` with no N-2 median call (a Stage 2 cell's, verify's), 3 replicates. */
const cellTrial = (model: string, gateMs: number, known: Calibration | null, settings: TrialSettings = simulatedSettings) =>
  simulated(runTrial({ ...settings, gateTtftMs: gateMs }, cand(model), Knobs.defaults, 3, known))

/** One Stage 1 trial of `model` at gate `gateMs`, 3 replicates minimum, up to 9 near the gate. */
const stage1Trial = (model: string, gateMs: number, settings: TrialSettings = simulatedSettings) =>
  runTrial({ ...settings, gateTtftMs: gateMs }, cand(model), Knobs.defaults, 3, null, 9)

/** Registers a simulated model for fakeHttp: seconds to a first token, chat-template tokens, tokens of a text of n words. */
const simulatedModel = (name: string, ttftS: number, template: number, tokens: (n: number) => number): string => {
  ttftSeconds[name] = ttftS
  templateTokens[name] = template
  textTokens[name] = tokens
  return name
}

/** A provider the short requests warm (one slot) and that counts tokens (`/tokenize`), as embedded and llama-server. */
const counting: TrialSettings = {
  ...simulatedSettings,
  adapter: { ...simulatedSettings.adapter, shortWarmUpSuffices: true, countsTokens: true }
}

describe("Stage 1 near the gate (SPEC N-2)", () => {
  it.effect("N-2 a TTFT p95 within 15 % under the gate gets more replicates, is called on the median once settled (5 of a cap of 9) and marked marginal", () =>
    Effect.gen(function*() {
      const { value: o } = yield* simulated(stage1Trial("edge-2b", 1100))
      expect(o.verdict._tag).toBe("Fits")
      expect(o.marginal).toBe(true)
      expect(o.samples.length).toBe(5)
    }))
  it.effect("N-2 a TTFT just over the gate (within 15 %) is measured, not cut off; the median misses the gate once 5 of 9 replicates do", () =>
    Effect.gen(function*() {
      const { value: o } = yield* simulated(stage1Trial("edge-2b", 950))
      expect(o.marginal).toBe(true)
      expect(o.samples.length).toBe(5)
      expect(o.verdict).toMatchObject({ _tag: "GateMissed", gateTtftMs: 950 })
      expect((o.verdict as { ttftMs: number }).ttftMs).toBeGreaterThanOrEqual(1000)
    }))
  it.effect("N-2 a clear miss: two replicates cut off at the gate + 15 %, the verdict named by the gate itself", () =>
    Effect.gen(function*() {
      // First-token times (s): the 3 pre-warm requests within twice the gate, then every probe far past 1000 ms + 15 %.
      const times = [0.5, 0.5, 1.5]
      let n = 0
      Object.defineProperty(ttftSeconds, "late-8b", { get: () => times[n++] ?? 4, configurable: true })
      const { value: o } = yield* simulated(stage1Trial("late-8b", 1000))
      expect(o.verdict).toMatchObject({ _tag: "GateMissed", phase: "probe", gateTtftMs: 1000, ttftMs: null })
      expect(o.samples.length).toBe(2)
      expect(o.marginal).toBe(false)
    }))
  it("issue 14 D-1 N-2 the full-length pre-warm's bound: a probe's equal at the gate + 5 % (rounded up), else twice the gate in Stage 1, else none", () => {
    // Stage 1 keeps twice the gate even where its request is a probe's equal: one request decides there, where
    // N-2 cuts two replicates at the gate + 15 %, and single full-length requests in one process on this machine
    // kind read up to 38 % apart (issue 14, 2026-12-06: the 1.1B's first at 17.7 s, the next two 14.0 and 12.8 s).
    expect(preWarmBoundMs(3000, { probeEqual: true, stage1: false })).toBe(3150)
    expect(preWarmBoundMs(3001, { probeEqual: true, stage1: false })).toBe(3152)
    expect(preWarmBoundMs(3000, { probeEqual: false, stage1: true })).toBe(6000)
    expect(preWarmBoundMs(3000, { probeEqual: false, stage1: false })).toBeNull()
  })
  it.effect("issue 14 a Stage 1 pre-warm with no first token by twice the gate: infeasible, named by the gate, without a probe", () =>
    Effect.gen(function*() {
      // slow-8b answers after 4 s: the full-length pre-warm is cut at 2 × 1500 ms.
      const { value: o, started, stopped } = yield* simulated(stage1Trial("slow-8b", 1500))
      expect(o.verdict).toMatchObject({ _tag: "GateMissed", phase: "pre-warm", gateTtftMs: 1500, ttftMs: null })
      expect(notesOf(o.verdict)).toBe("pre-warm: TTFT > 1500 ms gate (no first token yet)")
      expect(o.samples.length).toBe(0)
      // The gate's call, not a failed request (no error); the two short requests' calibration is kept (the
      // simulated provider counts words + 5 tokens) for a later trial of the model to size its prompt from.
      expect(o.nErr).toBe(0)
      expect(o.calibration).toEqual({ overheadTokens: 5, tokensPerWord: 1 })
      // Short request 4 s, second 4 s, then the full-length one cut at 3 s.
      expect(o.phases.preWarmMs).toBe(11_000)
      expect([started, stopped]).toEqual([1, 1])
    }))
  it.effect("issue 14 a Stage 1 pre-warm within twice the gate goes on to the probes, which N-2 calls", () =>
    Effect.gen(function*() {
      // slow-8b answers after 4 s: within 2 × 2500 ms, so the probes (cut at 2500 ms + 15 %) decide.
      const { value: o } = yield* simulated(stage1Trial("slow-8b", 2500))
      expect(o.verdict).toMatchObject({ _tag: "GateMissed", phase: "probe", gateTtftMs: 2500 })
      expect(o.samples.length).toBe(2)
    }))
  it.effect("issue 14 D-1 on a provider a short request does not warm, a calibrated trial outside Stage 1 still sends the full-length pre-warm, bounded only by the timeout: the probes decide", () =>
    Effect.gen(function*() {
      const known = { overheadTokens: 5, tokensPerWord: 1 }
      // slow-8b answers after 4 s, far past a 1500 ms gate: the full-length warm-up is not cut (its first-use
      // cost is unmeasured), the first probe is, at the gate.
      const { value: o } = yield* cellTrial("slow-8b", 1500, known)
      expect(o.verdict).toMatchObject({ _tag: "GateMissed", phase: "probe", gateTtftMs: 1500, ttftMs: null })
      // The two short requests and the full-length one, 4 s each.
      expect(o.phases.preWarmMs).toBe(12_000)
      expect(o.samples.length).toBe(1)
    }))
  it.effect("issue 14 D-1 a calibrated trial on a provider a short request warms sends no full-length pre-warm with one slot: its first probe is its first full-length request", () =>
    Effect.gen(function*() {
      const warmedShort = { ...simulatedSettings, adapter: { ...simulatedSettings.adapter, shortWarmUpSuffices: true } }
      const known = { overheadTokens: 5, tokensPerWord: 1 }
      const { value: fits } = yield* cellTrial("fast-1b", simulatedSettings.gateTtftMs, known, warmedShort)
      expect(fits.verdict._tag).toBe("Fits")
      // The two short requests of 1 s, then the 3 probes.
      expect(fits.phases.preWarmMs).toBe(2000)
      expect(fits.samples.length).toBe(3)
      // At a 3000 ms gate slow-8b's first probe is cut there: the gate's call, in the probe phase.
      const { value: cut } = yield* cellTrial("slow-8b", 3000, known, warmedShort)
      expect(cut.verdict).toMatchObject({ _tag: "GateMissed", phase: "probe", gateTtftMs: 3000, ttftMs: null })
      expect(cut.phases.preWarmMs).toBe(8000)
      expect(cut.samples.length).toBe(1)
      // Without a calibration the full-length request is still sent (it calibrates the prompt, P-1), a probe's
      // equal here: cut at the gate + P-1's 5 % (a prompt sized from two short points).
      const { value: uncal } = yield* cellTrial("slow-8b", 3000, null, warmedShort)
      expect(uncal.verdict).toMatchObject({ _tag: "GateMissed", phase: "pre-warm", gateTtftMs: 3000 })
      expect(uncal.phases.preWarmMs).toBe(11_150)
      // Several slots were not measured to be warmed so: the full-length warm-up is sent, as on a provider the
      // short requests do not warm, and bounded only by the timeouts (not a probe's equal).
      const twoSlots = new Knobs({ kvBits: null, maxContext: null, maxBatch: 2, threads: null })
      const { value: slots } = yield* simulated(runTrial({ ...warmedShort, gateTtftMs: 60_000 }, cand("fast-1b"), twoSlots, 3, known))
      expect(slots.verdict._tag).toBe("Fits")
      // Two short rounds of 1 s, then the full-length one.
      expect(slots.phases.preWarmMs).toBe(3000)
      const { value: slowSlots } = yield* simulated(runTrial({ ...warmedShort, gateTtftMs: 3000 }, cand("slow-8b"), twoSlots, 3, known))
      expect(slowSlots.verdict).toMatchObject({ _tag: "GateMissed", phase: "probe", gateTtftMs: 3000 })
      expect(slowSlots.phases.preWarmMs).toBe(12_000)
      // It is the slots that count, not the requests a replicate sends: one stream under an objective on one slot
      // is warmed, on two slots not; four users queueing on one slot (a capacity step's) are warmed.
      const withObjective = (streams: number) => ({ ...warmedShort, gateTtftMs: 60_000, objective: { streams, ttftP95Ms: 60_000, itlP95Ms: 10_000, decodeTps: null } })
      const preWarmMsOf = (streams: number, knobs: Knobs) =>
        Effect.map(simulated(runTrial(withObjective(streams), cand("fast-1b"), knobs, 3, known)), ({ value }) => {
          expect(value.verdict._tag).toBe("Fits")
          return value.phases.preWarmMs
        })
      expect(yield* preWarmMsOf(1, Knobs.defaults)).toBe(2000)
      expect(yield* preWarmMsOf(1, twoSlots)).toBe(3000)
      expect(yield* preWarmMsOf(4, Knobs.defaults)).toBe(2000)
    }))
  it.effect("issue 14 D-1 P-1 a provider that counts tokens and is warmed by the short requests: the prompt sized by /tokenize, no full-length pre-warm; where it cannot count, as before", () =>
    Effect.gen(function*() {
      // counting-1b: 1 s to a first token, 40 tokens of chat template, and a tokenizer that makes longer texts
      // denser (n + n²/200 tokens for n words), so the count near the target misses it once and is counted again.
      simulatedModel("counting-1b", 1, 40, (n) => n + Math.floor((n * n) / 200))
      const { value: o } = yield* simulated(stage1Trial("counting-1b", 60_000, counting))
      expect(o.verdict._tag).toBe("Fits")
      // The two short requests of 1 s, then the probes: nothing full-length in the pre-warm.
      expect(o.phases.preWarmMs).toBe(2000)
      expect(o.samples.length).toBe(3)
      // P-1: the probes' prompts are the 100-token target within 2.5 % as the provider counts them.
      for (const x of o.samples) expect(Math.abs(x.promptTokens! - 100)).toBeLessThanOrEqual(2.5)
      // Without a /tokenize route, or with one that counts nothing: the two short requests' fit and the
      // full-length request that refines it, as on a provider that does not count.
      for (const broken of [noTokenize, zeroTokenize]) {
        broken.add("fast-1b")
        try {
          const { value: fallback } = yield* simulated(stage1Trial("fast-1b", 60_000, counting))
          expect(fallback.verdict._tag).toBe("Fits")
          expect(fallback.phases.preWarmMs).toBe(3000)
          expect(fallback.calibration).toEqual({ overheadTokens: 5, tokensPerWord: 1 })
        } finally {
          broken.delete("fast-1b")
        }
      }
    }))
  it.effect("issue 14 P-1 a tokenizer count that misses twice sizes the prompt only where the target lies between two exact counts; else the usage fit and a full-length request", () =>
    Effect.gen(function*() {
      // A tokenizer far denser on long texts (n + n²/20 tokens for n words): at a 100-token target both counts
      // miss, but the target (25 words) lies between the short text and the 32 words counted: sized so.
      simulatedModel("dense-1b", 1, 40, (n) => n + Math.floor((n * n) / 20))
      const { value: small } = yield* simulated(stage1Trial("dense-1b", 60_000, counting))
      expect(small.phases.preWarmMs).toBe(2000)
      expect(small.verdict._tag).toBe("Fits")
      expect(small.samples.map((x) => x.promptTokens)).toEqual([96, 96, 96])
      // n + n²/50 at a 1000-token target: both counts miss and the target lies beyond them: not used. The two
      // short requests' fit sizes a full-length request (1 s more), whose count refines it; so far off a
      // tokenizer, the probe's prompt then still misses P-1 (a reason, not a silent mis-sized measurement).
      simulatedModel("denser-1b", 1, 40, (n) => n + Math.floor((n * n) / 50))
      const { value: large } = yield* simulated(stage1Trial("denser-1b", 60_000, { ...counting, targetContext: 1000 }))
      expect(large.phases.preWarmMs).toBe(3000)
      expect(large.verdict._tag).toBe("PromptMiss")
    }))
  it.effect("issue 14 D-1 P-1 a counting provider with two slots still gets its full-length warm-up, which does not refit the counted prompt", () =>
    Effect.gen(function*() {
      // counting-1b's tokenizer (n + n²/200) puts a refit through the full-length count elsewhere than the count.
      simulatedModel("counting-1b", 1, 40, (n) => n + Math.floor((n * n) / 200))
      const twoSlots = new Knobs({ kvBits: null, maxContext: null, maxBatch: 2, threads: null })
      const { value: o } = yield* simulated(runTrial({ ...counting, gateTtftMs: 60_000 }, cand("counting-1b"), twoSlots, 3, null))
      expect(o.verdict._tag).toBe("Fits")
      // Two short rounds and the full-length one, 1 s each.
      expect(o.phases.preWarmMs).toBe(3000)
      // The count through 48 words (99 tokens): (57 − 21) template and text, 42 tokens over 32 words.
      expect(o.calibration).toEqual({ overheadTokens: 36, tokensPerWord: 1.3125 })
    }))
  it.effect("issue 14 N-2 with no full-length pre-warm, Stage 1's first probe is bounded at twice the gate: cut there, the call at once, in the probe", () =>
    Effect.gen(function*() {
      ttftSeconds["counting-8b"] = 4
      // 4 s to a first token against a 1500 ms gate: the first probe is cut at 3000 ms, and that is the call.
      const { value: o, started, stopped } = yield* simulated(stage1Trial("counting-8b", 1500, counting))
      expect(o.verdict).toMatchObject({ _tag: "GateMissed", phase: "probe", gateTtftMs: 1500, ttftMs: null })
      expect(notesOf(o.verdict)).toBe("TTFT > 1500 ms gate (no first token yet)")
      expect(o.phases.preWarmMs).toBe(8000)
      expect(o.phases.probeMs).toBe(3000)
      expect(o.samples.length).toBe(1)
      // The TTFT figures say at least the bound it was cut at, not the gate + 15 %.
      expect(o.ttftMedianMs).toBe(3000)
      expect(o.calibration).toEqual({ overheadTokens: 5, tokensPerWord: 1 })
      expect([started, stopped]).toEqual([1, 1])
      // Against a 2500 ms gate the first probe's 4 s is within twice the gate but past the gate + 15 %: a
      // replicate over the gate with its TTFT, ended at its first token (its reply is not waited for); the second,
      // cut at 2875 ms, makes the clear miss (two over).
      const { value: over } = yield* simulated(stage1Trial("counting-8b", 2500, counting))
      expect(over.verdict).toMatchObject({ _tag: "GateMissed", phase: "probe", gateTtftMs: 2500 })
      expect(over.samples.map((x) => x.ttftMs)).toEqual([4000, null])
      expect(over.samples[0]!.failure).toMatchObject({ _tag: "GateMissed", gateTtftMs: 2875, ttftMs: 4000 })
      expect(over.phases.probeMs).toBe(4000 + 2875)
      expect(over.marginal).toBe(false)
      // Outside Stage 1 (a Stage 2 cell, verify) the first probe is held to the gate itself, as every probe there.
      const { value: cell } = yield* cellTrial("counting-8b", 3000, null, counting)
      expect(cell.verdict).toMatchObject({ _tag: "GateMissed", phase: "probe", gateTtftMs: 3000, ttftMs: null })
      expect(cell.phases.preWarmMs).toBe(8000)
      expect(cell.phases.probeMs).toBe(3000)
    }))
  it.effect("issue 14 N-2 a first probe past the gate + 15 % but within its wider bound, then replicates under the gate: marginal, called on the median", () =>
    Effect.gen(function*() {
      // First-token times (s): the two short requests, then a first probe of 1.5 s against a 1000 ms gate, then 0.5 s.
      const times = [0.5, 0.5, 1.5]
      let n = 0
      Object.defineProperty(ttftSeconds, "moody-counting-2b", { get: () => times[n++] ?? 0.5, configurable: true })
      const { value: o } = yield* simulated(stage1Trial("moody-counting-2b", 1000, counting))
      expect(o.marginal).toBe(true)
      expect(o.verdict._tag).toBe("Fits")
      // One over the gate, then five under settle the median of a cap of 9.
      expect(o.samples.map((x) => x.ttftMs)).toEqual([1500, 500, 500, 500, 500, 500])
      // The over-the-gate replicate counts as one cut at the gate + 15 % would (a request over the gate), and the
      // TTFT figures carry its 1.5 s; the median is under the gate.
      expect(o.nErr).toBe(1)
      expect(o.ttftP95Ms).toBeGreaterThan(1000)
      expect(o.ttftMedianMs).toBe(500)
    }))
  it.effect("N-2 one slow request does not decide Stage 1: replicates on both sides of the gate are marginal and called on the median", () =>
    Effect.gen(function*() {
      // First-token times (s) of the successive requests: 3 pre-warm ones (two short, one full-length), then the
      // probes, whose 2nd is past the gate + 15 % (cut off) and the others well under.
      const times = [0.5, 0.5, 0.5, 0.5, 4, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
      let n = 0
      Object.defineProperty(ttftSeconds, "moody-2b", { get: () => times[n++] ?? 0.5, configurable: true })
      const { value: o } = yield* simulated(stage1Trial("moody-2b", 1000))
      expect(o.marginal).toBe(true)
      expect(o.verdict._tag).toBe("Fits")
      expect(o.samples.length).toBe(6)
    }))
  it.effect("N-2 a clear pass costs no extra replicate", () =>
    Effect.gen(function*() {
      const { value: o } = yield* simulated(stage1Trial("edge-2b", 5000))
      expect(o.verdict._tag).toBe("Fits")
      expect(o.marginal).toBe(false)
      expect(o.samples.length).toBe(3)
    }))
  it.effect("N-1 every trial carries a 95 % interval of its median tok/s and TTFT, and their variation", () =>
    Effect.gen(function*() {
      const { value: o } = yield* simulated(stage1Trial("edge-2b", 5000))
      const [lo, hi] = o.spread.tpsCi95!
      expect(lo).toBeLessThanOrEqual(o.tpsMedian!)
      expect(hi).toBeGreaterThanOrEqual(o.tpsMedian!)
      const [tlo, thi] = o.spread.ttftCi95Ms!
      expect(tlo).toBeLessThanOrEqual(o.ttftMedianMs!)
      expect(thi).toBeGreaterThanOrEqual(o.ttftMedianMs!)
      expect(o.spread.tpsCv).not.toBeNull()
    }))
})

/** Stage 1 over one candidate with the guard at 0.25 cores (or off), recording every trial with whether it was superseded. */
const guarded = (maxBackgroundCores: number | null) => {
  const recorded: Array<{ superseded: boolean; outcome: TrialOutcome }> = []
  const run = stage1({ ...simulatedSettings, maxBackgroundCores }, [cand("fast-1b")], 3, (_, outcome, superseded) =>
    Effect.sync(() => void recorded.push({ superseded, outcome })))
  return { run, recorded }
}

describe("the quiet-machine guard (SPEC N-3)", () => {
  it.effect("N-3 a trial measured while others used 1 core is recorded disturbed, the machine awaited, and the trial measured again", () =>
    Effect.gen(function*() {
      const waits = { n: 0 }
      const { recorded, run } = guarded(0.25)
      const r = yield* simulated(run, CpuMeter.Stub((w) => (w === 1 ? 1 : 0), () => true, waits))
      expect(recorded.map((x) => [x.superseded, x.outcome.background?.disturbed])).toEqual([[true, true], [false, false]])
      expect(recorded[0]!.outcome.background?.othersCores).toBeCloseTo(1)
      expect(waits.n).toBe(1)
      expect(r.started).toBe(2)
      expect(r.value.outcome.background?.disturbed).toBe(false)
    }))
  it.effect("N-3 issue 14 a pre-warm cut at its bound while others used 1 core is disturbed too, and measured again once quiet", () =>
    Effect.gen(function*() {
      // First-token times (s): the first trial's full-length pre-warm is slow (cut at 2 × 1500 ms); later ones are quick.
      const times = [0.5, 0.5, 4]
      let n = 0
      Object.defineProperty(ttftSeconds, "busy-2b", { get: () => times[n++] ?? 0.5, configurable: true })
      const recorded: Array<{ superseded: boolean; outcome: TrialOutcome }> = []
      // Stage 1 as the tune runs it: with N-2's replicate cap, so its pre-warm is bounded at twice the gate.
      const run = stage1({ ...simulatedSettings, gateTtftMs: 1500, maxBackgroundCores: 0.25 }, [cand("busy-2b")], 3, (_, outcome, superseded) =>
        Effect.sync(() => void recorded.push({ superseded, outcome })), 9)
      const waits = { n: 0 }
      // Window 0 is the first trial's pre-warm.
      const r = yield* simulated(run, CpuMeter.Stub((w) => (w === 0 ? 1 : 0), () => true, waits))
      expect(recorded.map((x) => [x.superseded, x.outcome.verdict._tag, x.outcome.background?.disturbed])).toEqual([
        [true, "GateMissed", true],
        [false, "Fits", false]
      ])
      expect(waits.n).toBe(1)
      expect(r.started).toBe(2)
    }))
  it.effect("N-3 a machine that never gets quiet: two re-runs, then the last measurement stands, still disturbed", () =>
    Effect.gen(function*() {
      const waits = { n: 0 }
      const { recorded, run } = guarded(0.25)
      const r = yield* simulated(run, CpuMeter.Stub(() => 2, () => false, waits))
      expect(recorded.map((x) => x.superseded)).toEqual([true, true, false])
      expect(waits.n).toBe(2)
      expect(r.value.outcome.background?.disturbed).toBe(true)
    }))
  it.effect("N-3 background under the limit is measured and not disturbed; with the guard off nothing is", () =>
    Effect.gen(function*() {
      const quiet = guarded(0.25)
      yield* simulated(quiet.run, CpuMeter.Stub(() => 0.2))
      expect(quiet.recorded.map((x) => [x.superseded, x.outcome.background?.disturbed])).toEqual([[false, false]])
      const off = guarded(null)
      yield* simulated(off.run, CpuMeter.Stub(() => 3))
      expect(off.recorded.map((x) => [x.superseded, x.outcome.background?.disturbed])).toEqual([[false, false]])
    }))
})

describe("CpuMeter (SPEC N-3)", () => {
  it("N-3 others' cores: busy time less this tuner's and the candidate group's, over the window's capacity", () => {
    const a = { busy: 1000, own: 100, group: 300, capacity: 500 }
    const b = { busy: 2000, own: 150, group: 700, capacity: 1000 }
    expect(othersCores(a, b)).toBeCloseTo((1000 - 50 - 400) / 500)
    expect(othersCores(a, a)).toBeNull()
  })
  it("N-3 on macOS, ps TIME columns are summed: every process, this tuner, the candidate's group", () => {
    expect(psTimeMs("0:01.50")).toBe(1500)
    expect(psTimeMs("1:02:03.00")).toBe(3_723_000)
    expect(psTimeMs("2-00:00:01")).toBe(172_801_000)
    expect(psTimeMs("junk")).toBeNull()
    const s = fromPsTimes("  10  10   0:01.00\n  20  20   0:02.00\n  21  20   0:00.50\n  30  30   0:04.00\n", 10, 20, 9000)
    expect(s).toEqual({ busy: 7500, own: 1000, group: 2500, capacity: 9000 })
  })
  it.live("N-3 the live meter reads this machine: a busy loop in this process shows as its own time, within the machine's busy time", () =>
    Effect.gen(function*() {
      const meter = yield* CpuMeter
      const a = yield* meter.snapshot(null)
      if (process.platform === "linux") expect(a).not.toBeNull()
      const until = Date.now() + 300
      while (Date.now() < until) { /* spin: this tuner's own CPU */ }
      const b = yield* meter.snapshot(null)
      if (a !== null && b !== null) {
        // Our spinning shows as this tuner's own time, inside the machine's busy time (the kernel
        // accounts the two counters apart, so they may differ by a tick or two of 10 ms).
        expect(b.own - a.own).toBeGreaterThan(0)
        expect(b.busy - a.busy).toBeGreaterThanOrEqual(b.own - a.own - 3)
      }
    }).pipe(Effect.provide(CpuMeter.Default)))
})

describe("the last memory sample of a trial (SPEC C-3)", () => {
  /** One trial of fast-1b whose provider's periodic samples read 1 MiB and whose look through all of /proc (`scanned`) reads more. */
  const withMemory = (scanned: number | undefined) =>
    Effect.gen(function*() {
      const journal = yield* Ref.make<ReadonlyArray<StubEvent>>([])
      const provider = CandidateProvider.Stub((o) =>
        Effect.succeed({
          ...serverWithoutProcess(`http://${o.spec.model}.kv-unset`, o.spec.model),
          residentBytes: Effect.succeed(1024 * 1024),
          ...(scanned === undefined ? {} : { residentBytesScanned: Effect.succeed(scanned) })
        }), journal)
      const fiber = yield* Effect.fork(
        runTrial({ ...simulatedSettings, memoryLimitGiB: 0.5 }, cand("fast-1b"), Knobs.defaults, 3, null).pipe(
          Effect.provide(Layer.mergeAll(provider, fakeHttp, CpuMeter.Stub(() => 0)))
        )
      )
      yield* TestClock.adjust("10 minutes")
      return yield* Fiber.join(fiber)
    })

  it.effect("C-3 a worker the periodic samples missed (forked since the last look through /proc) counts at the trial's last sample: over the headroom, MemoryOver", () =>
    Effect.gen(function*() {
      const missed = yield* withMemory(1024 * 1024 * 1024)
      expect(missed.verdict._tag).toBe("MemoryOver")
      expect(missed.load?.peakRssBytes).toBe(1024 * 1024 * 1024)
      // A provider with no such look (a stand-in): the periodic samples are the last word.
      const plain = yield* withMemory(undefined)
      expect(plain.verdict._tag).toBe("Fits")
      expect(plain.load?.peakRssBytes).toBe(1024 * 1024)
    }))
})
