/**
 * The bench's account of a tune's wall time (bench/TuneCost.ts, figure 1's breakdown): its parts sum to the
 * wall time, and a trial row merged from two provider starts (N-2's extra replicates in a later start of the
 * same candidate) neither makes "between trials" negative nor counts another start's life as a provider's stop.
 */
import { assert, describe, it } from "@effect/vitest"
import type { ChildSeen } from "../../bench/TreeSampler.js"
import { tuneFigures } from "../../bench/Figures.js"
import { tuneCost } from "../../bench/TuneCost.js"
import type { TuneRun } from "../../bench/TuneRun.js"
import type { TrialRow } from "../../src/domain/Trial.js"

const T0 = Date.parse("2026-12-07T08:00:00.000Z")

/** A trial row (only what tuneCost reads): started `at` ms after T0, with its phases (ms). */
const row = (at: number, knobs: { threads: number }, phases: { preLoad?: number; load: number; prewarm: number; probe: number }, notes: string | null = null) =>
  ({
    stage: 2,
    model: "/m/130M.gguf",
    kv_bits: null,
    threads: knobs.threads,
    max_batch: 1,
    fits: notes === null ? 1 : 0,
    notes,
    started_at: new Date(T0 + at).toISOString(),
    preload_ms: phases.preLoad ?? null,
    load_ms: phases.load,
    prewarm_ms: phases.prewarm,
    probe_ms: phases.probe,
    server_request_ms: Math.max(0, phases.probe - 50)
  }) as unknown as TrialRow

/** A provider process seen by the sampler from `from` to `to` ms after T0. */
const seen = (pid: number, ppid: number, from: number, to: number, helper = false): ChildSeen => ({
  pid,
  ppid,
  argv: helper ? ["node", "bin/provider-shim.mjs", "llama-server", "-m", "/m/130M.gguf"] : ["llama-server", "-m", "/m/130M.gguf"],
  helper,
  firstSeen: T0 + from,
  lastAlive: T0 + to,
  cpuS: 1
})

const run = (trials: ReadonlyArray<TrialRow>, children: ReadonlyArray<ChildSeen>, exitAt: number, measurements: TuneRun["measurements"] = []): TuneRun => ({
  args: [],
  exitCode: 0,
  spawnedAt: T0 - 1_000,
  exitedAt: T0 + exitAt,
  wallMs: exitAt + 1_000,
  doc: null,
  trials,
  measurements,
  logs: [],
  sampling: { samples: [], children, tunerPeakRssMb: 0, tunerCpuS: 0, tunerReapedChildrenCpuS: 0, intervalMs: 250 },
  stderrPath: "/dev/null"
})

describe("the bench's wall-time breakdown (figure 1)", () => {
  it("issue 14 its parts sum to the wall time; a merged row's later start makes no negative gap and no provider stop", () => {
    // Trial A (threads 1): one start 0–10 s (load 0.5 s, pre-warm 0.3 s, probe 9 s), extended by a second start
    // 20–25 s (load 0.4 s, pre-warm 0.2 s, probe 4.5 s): its row sums both starts' phases.
    // Trial B (threads 2): one start 10.3–19.9 s. Each provider under the shim (a helper), the shim seen 50 ms
    // before the provider it starts.
    const trials = [
      row(0, { threads: 1 }, { load: 500 + 400, prewarm: 300 + 200, probe: 9_000 + 4_500 }),
      row(10_300, { threads: 2 }, { load: 400, prewarm: 200, probe: 8_800 })
    ]
    const children = [
      seen(10, 1, 50, 9_950, true), seen(11, 10, 100, 9_950), // A's first start, gone at 9.95 s
      seen(20, 1, 10_350, 19_900, true), seen(21, 20, 10_400, 19_900), // B: from its shim's sighting, its phases end at 19.75 s
      seen(30, 1, 20_050, 25_300, true), seen(31, 30, 20_100, 25_300) // A's extension
    ]
    const cost = tuneCost(run(trials, children, 25_500), 5_000)
    const b = cost.breakdown
    assert.strictEqual(b.startupMs, 1_000)
    assert.strictEqual(b.startupMs + b.loadMs + b.preWarmMs + b.probeMs + b.betweenMs + b.finishMs, b.wallMs)
    assert.strictEqual(b.betweenMs, 1_000)
    // After the last provider is gone (25.3 s): 0.2 s to the exit.
    assert.strictEqual(b.finishMs, 200)
    // B's stop only (0.15 s): A's row ends, by its summed phases, past its first start's life, and the extension
    // (first seen in B's window, after B's own start) is nobody's stop.
    assert.strictEqual(b.providerStopMs, 150)
  })

  it("issue 14 N-3 the tuner's waits for a quiet machine before measuring a disturbed trial again are counted apart (from its ledger: one entry per provider start), and figure 1 gives the overhead without them", () => {
    // Trial A: 0–10 s, disturbed (superseded); its second start after a quiet wait, 13–23 s. Trial B 23.1–30 s.
    // A's row for its second start sums that start only; the disturbed start has its own row.
    const trials = [
      row(0, { threads: 1 }, { load: 500, prewarm: 500, probe: 9_000 }),
      row(13_000, { threads: 1 }, { load: 500, prewarm: 500, probe: 9_000 }),
      row(23_100, { threads: 2 }, { load: 400, prewarm: 500, probe: 6_000 })
    ]
    const measurements = [
      { trialKey: "a", startMs: T0, preLoadMs: 0, phasesMs: 10_000, probeMs: 9_000, disturbed: true },
      { trialKey: "a", startMs: T0 + 13_000, preLoadMs: 0, phasesMs: 10_000, probeMs: 9_000, disturbed: false },
      { trialKey: "b", startMs: T0 + 23_100, preLoadMs: 0, phasesMs: 6_900, probeMs: 6_000, disturbed: false }
    ]
    const cost = tuneCost(run(trials, [], 30_200, measurements), 5_000)
    const b = cost.breakdown
    assert.strictEqual(b.quietWaitMs, 3_000)
    assert.strictEqual(b.quietWaits, 1)
    assert.strictEqual(b.betweenMs, 3_000 + 100)
    assert.closeTo(cost.overheadExclQuiet!, (b.wallMs - 3_000) / cost.limit.totalMs, 1e-9)
    assert.isBelow(cost.overheadExclQuiet!, cost.overhead!)
    const figures = tuneFigures("embedded", { value: cost, reason: null }, "130M", "1.1B")
    const excl = figures.find((f) => f.key === "overhead.embedded.excl_quiet")
    assert.strictEqual(excl?.detail, `(wall 31.2 s − 3.0 s waited after 1 disturbed trial) ÷ limit ${(cost.limit.totalMs / 1000).toFixed(1)} s`)
    assert.include(figures.find((f) => f.key === "overhead.embedded.remainder")?.detail, "between trials 3.1 s (of which pre-load checks and memory estimates 0.0 s, quiet-machine waits 3.0 s)")
    // Nothing disturbed: no waits, the same overhead.
    const quiet = tuneCost(run(trials, [], 30_200, measurements.map((m) => ({ ...m, disturbed: false }))), 5_000)
    assert.strictEqual(quiet.breakdown.quietWaitMs, 0)
    assert.strictEqual(quiet.overheadExclQuiet, quiet.overhead)
    // A disturbed start kept as it is (its third) followed by another trial, and a disturbed last start: no wait.
    const kept = tuneCost(run(trials, [], 30_200, [
      { ...measurements[0]!, trialKey: "b" }, { ...measurements[1]!, disturbed: true }, { ...measurements[2]!, disturbed: true }
    ]), 5_000)
    assert.strictEqual(kept.breakdown.quietWaits, 0)
    assert.strictEqual(kept.breakdown.quietWaitMs, 0)
    // Disturbed three times in a row (two waits, then the third kept), then the same trial again (N-2's extra
    // replicates) after no wait: two waits of 2 s, the third gap not counted.
    const a = (at: number, disturbed: boolean) => ({ trialKey: "a", startMs: T0 + at, preLoadMs: 0, phasesMs: 1_000, probeMs: 500, disturbed })
    const thrice = tuneCost(run(trials, [], 30_200, [a(0, true), a(3_000, true), a(6_000, true), a(7_100, false)]), 5_000)
    assert.strictEqual(thrice.breakdown.quietWaits, 2)
    assert.strictEqual(thrice.breakdown.quietWaitMs, 4_000)
  })

  it("issue 14 figure 6's probe windows are each provider start's (from the ledger), also for a row merged from two starts; a capacity step (no trial key, not in the ledger) keeps its row's", () => {
    // Trial A: a start 0–10 s (probe 0.8–9.8 s) extended by one 20–25 s (probe 20.6–25.1 s), its row summing both;
    // trial B 10.3–19.9 s (probe 10.9–19.7 s); a capacity step (C-4) 25.2–25.8 s (probe 25.3–25.8 s). The providers
    // use one core exactly while a probe runs.
    const trials = [
      { ...row(0, { threads: 1 }, { load: 500 + 400, prewarm: 300 + 200, probe: 9_000 + 4_500 }), trial_key: "a" },
      { ...row(10_300, { threads: 2 }, { load: 400, prewarm: 200, probe: 8_800 }), trial_key: "b" },
      row(25_200, { threads: 2 }, { load: 100, prewarm: 0, probe: 500 })
    ]
    const measurements = [
      { trialKey: "a", startMs: T0, preLoadMs: 0, phasesMs: 9_800, probeMs: 9_000, disturbed: false },
      { trialKey: "b", startMs: T0 + 10_300, preLoadMs: 0, phasesMs: 9_400, probeMs: 8_800, disturbed: false },
      { trialKey: "a", startMs: T0 + 20_000, preLoadMs: 0, phasesMs: 5_100, probeMs: 4_500, disturbed: false }
    ]
    const probes = [[800, 9_800], [10_900, 19_700], [20_600, 25_100], [25_300, 25_800]] as const
    const busy = (t: number) => probes.reduce((s, [a, b]) => s + Math.max(0, Math.min(t, b) - a) / 1000, 0)
    const samples = Array.from({ length: 261 }, (_, i) => ({ t: T0 + i * 100, tunerCpuS: 0, helpersCpuS: 0, providersCpuS: busy(i * 100) }))
    const withSamples = (r: TuneRun): TuneRun => ({ ...r, sampling: { ...r.sampling, samples } })
    const byStart = tuneCost(withSamples(run(trials, [], 25_900, measurements)), 5_000)
    assert.closeTo(byStart.probeCpu.providersCpuS, 22.3 + 0.5, 1e-6)
    assert.closeTo(byStart.probeCpu.windowS, 22.3 + 0.5, 1e-6)
    // From the rows alone, A's summed probe lies after its first start (1.4–14.9 s), missing its second probe.
    const byRow = tuneCost(withSamples(run(trials, [], 25_900)), 5_000)
    assert.closeTo(byRow.probeCpu.providersCpuS, 8.4 + 4.0 + 8.8 + 0.5, 1e-6)
  })

  it("issue 14 a trial that started no provider (no load) claims none; one whose memory estimate delayed its start still has its own; one never seen counts no stop", () => {
    const trials = [
      // Its estimate said it does not fit: no provider. (A provider of an earlier run's, seen in its window, is not its.)
      row(0, { threads: 1 }, { load: 0, prewarm: 0, probe: 0 }, "does not fit: estimate 30 GiB"),
      row(300, { threads: 2 }, { load: 400, prewarm: 200, probe: 3_000 }),
      // A 1 s memory estimate before its spawn: its provider first seen 1.2 s after its start.
      row(5_000, { threads: 1 }, { load: 300, prewarm: 100, probe: 2_000 })
    ]
    const children = [seen(15, 1, 100, 250), seen(20, 1, 400, 4_200), seen(25, 1, 6_200, 8_700)]
    const cost = tuneCost(run(trials, children, 9_000), 5_000)
    // The second trial's: its phases end at 0.4 + 3.6 = 4.0 s, gone at 4.2 s; the third's end at 6.2 + 2.4 = 8.6 s,
    // gone at 8.7 s.
    assert.strictEqual(cost.breakdown.providerStopMs, 200 + 100)
    assert.strictEqual(cost.breakdown.finishMs, 300)
    // No provider seen: nothing counted, and the finish from the last trial's end (7.4 s).
    const unseen = tuneCost(run(trials, [], 9_000), 5_000)
    assert.strictEqual(unseen.breakdown.providerStopMs, 0)
    assert.strictEqual(unseen.breakdown.finishMs, 1_600)
    const u = unseen.breakdown
    assert.strictEqual(u.startupMs + u.loadMs + u.preWarmMs + u.probeMs + u.betweenMs + u.finishMs, u.wallMs)
    assert.isAtLeast(u.betweenMs, 0)
  })

  it("issue 14 C-3 a provider's phases begin after the tuner's pre-load check and memory estimate: figure 6's windows and the quiet waits are placed by it, and the remainder says its time", () => {
    // Trial A: its trial starts at 0 s, 1 s of estimate, then its provider: load 0.5 s, pre-warm 0.5 s, probe 2–10 s;
    // disturbed, so the tuner waits for a quiet machine to 12 s, 0.2 s of estimate, then probe 13.2–21.2 s.
    // Trial B, one row merged from two starts (N-2): 22.3 s + 0.1 s, probe 22.6–23.1 s; 23.2 s + 0.4 s, probe 23.8–24.3 s.
    // A capacity step (no trial key) at 24.6 s: 0.3 s of estimate, load 0.1 s, probe 25.0–25.5 s. Exit at 25.8 s.
    const trials = [
      { ...row(0, { threads: 1 }, { preLoad: 1_000, load: 500, prewarm: 500, probe: 8_000 }), trial_key: "a" },
      { ...row(12_000, { threads: 1 }, { preLoad: 200, load: 500, prewarm: 500, probe: 8_000 }), trial_key: "a" },
      { ...row(22_300, { threads: 2 }, { preLoad: 100, load: 200, prewarm: 200, probe: 1_000 }), trial_key: "b" },
      row(24_600, { threads: 2 }, { preLoad: 300, load: 100, prewarm: 0, probe: 500 })
    ]
    const measurements = [
      { trialKey: "a", startMs: T0, preLoadMs: 1_000, phasesMs: 9_000, probeMs: 8_000, disturbed: true },
      { trialKey: "a", startMs: T0 + 12_000, preLoadMs: 200, phasesMs: 9_000, probeMs: 8_000, disturbed: false },
      { trialKey: "b", startMs: T0 + 22_300, preLoadMs: 100, phasesMs: 700, probeMs: 500, disturbed: false },
      { trialKey: "b", startMs: T0 + 23_200, preLoadMs: 400, phasesMs: 700, probeMs: 500, disturbed: false }
    ]
    const probes = [[2_000, 10_000], [13_200, 21_200], [22_600, 23_100], [23_800, 24_300], [25_000, 25_500]] as const
    const busy = (t: number) => probes.reduce((s, [a, b]) => s + Math.max(0, Math.min(t, b) - a) / 1000, 0)
    const samples = Array.from({ length: 259 }, (_, i) => ({ t: T0 + i * 100, tunerCpuS: 0, helpersCpuS: 0, providersCpuS: busy(i * 100) }))
    const r = run(trials, [], 25_800, measurements)
    const cost = tuneCost({ ...r, sampling: { ...r.sampling, samples } }, 5_000)
    // Every window is a probe's own: the providers' CPU in them is all of it, one core throughout.
    assert.closeTo(cost.probeCpu.windowS, 8 + 8 + 0.5 + 0.5 + 0.5, 1e-6)
    assert.closeTo(cost.probeCpu.providersCpuS, 8 + 8 + 0.5 + 0.5 + 0.5, 1e-6)
    const b = cost.breakdown
    // The wait: from A's first provider's end (10 s) to its re-run's trial start (12 s).
    assert.strictEqual(b.quietWaitMs, 2_000)
    // Per start from the ledger (B's second start too, which its merged row does not hold), and the capacity step's row.
    assert.strictEqual(b.preLoadMs, 1_000 + 200 + 100 + 400 + 300)
    assert.strictEqual(b.startupMs + b.loadMs + b.preWarmMs + b.probeMs + b.betweenMs + b.finishMs, b.wallMs)
    assert.isAtLeast(b.betweenMs, b.preLoadMs + b.quietWaitMs)
    const figures = tuneFigures("embedded", { value: cost, reason: null }, "130M", "1.1B")
    assert.include(figures.find((f) => f.key === "overhead.embedded.remainder")?.detail, "(of which pre-load checks and memory estimates 2.0 s, quiet-machine waits 2.0 s)")
  })
})
