/**
 * The trial ledger (SPEC ): trial keys, outcomes kept whole as JSON,
 * and replay in order per key; and verify's regression rule.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Crypto from "node:crypto"
import { Effect, Equal, Ref } from "effect"
import type { Candidate } from "../../src/domain/Candidate.js"
import { Knobs } from "../../src/domain/Knobs.js"
import { decodeOutcome, encodeOutcome } from "../../src/domain/OutcomeJson.js"
import { NO_SPREAD, type TrialOutcome } from "../../src/domain/Trial.js"
import { identityChanges, RunIdentity, trialKey } from "../../src/domain/TrialKey.js"
import { Machine } from "../../src/domain/TuneDocument.js"
import { Verdict } from "../../src/domain/Verdict.js"
import { makeLedger } from "../../src/steps/Ledger.js"
import { measureQuietly } from "../../src/steps/QuietGuard.js"
import { CpuMeter } from "../../src/services/CpuMeter.js"
import { regressionsOf } from "../../src/steps/Verify.js"
import { THROUGHPUT_POLICY } from "../../src/steps/Probe.js"

const identity = new RunIdentity({
  tool_version: "0.1.0",
  machine: new Machine({ ram_gb: 24, chip: "EPYC", os_version: "Linux 6", binary_version: "b1" }),
  provider: { name: "llama-server", version: "b1", executable: "/bin/llama-server", executable_sha256: "aa".repeat(32) },
  models: {
    "a.gguf": { id: "a.gguf", bytes: 100, header_sha256: "11".repeat(32) },
    "b.gguf": { id: "b.gguf", bytes: 200, header_sha256: "22".repeat(32) }
  },
  policy: {
    target_context: 512, max_tokens: 64, gate_ttft_ms: 2500, request_timeout_ms: 123_000, ready_timeout_ms: 300_000,
    estimate: true, memory_limit_gib: null, stage1_replicates: 3, stage2_replicates: 3, max_replicates: 9, max_background_cores: 0.25
  }
})
const kv8 = new Knobs({ kvBits: 8, maxContext: 512, maxBatch: 1, threads: 2 })
const candidate = (id: string): Candidate => ({ id, model: id, rank: 1, paramCount: 1e6, ggufFile: true, fileBytes: 100 })

const outcome = (tps: number, verdict: Verdict = Verdict.Fits()): TrialOutcome => ({
  verdict, replicates: 3, nErr: 0, tpsMedian: tps, ttftMedianMs: 100, ttftP95Ms: 120, calibration: { overheadTokens: 5, tokensPerWord: 1 },
  samples: [{ failure: null, ttftMs: 100, tps, promptTokens: 512, completionTokens: 64, totalMs: 500, serverTimings: null }],
  startedAt: "2026-01-01T00:00:00.000Z",
  server: { promptTokens: 512, promptN: null, promptTps: null, decodeTps: null, requestMs: null },
  phases: { loadMs: 1, preWarmMs: 2, probeMs: 3 }, spread: { ...NO_SPREAD, tpsCi95: [tps - 1, tps + 1] }, marginal: false, background: null
})

describe("trial keys (SPEC R-1)", () => {
  it("R-1 a key is the same for the same trial and changes with the model file, the binary, the knobs, the stage and the policy", () => {
    const k = trialKey(identity, 2, "a.gguf", kv8)
    expect(k).toMatch(/^sha256:[0-9a-f]{64}$/)
    expect(trialKey(identity, 2, "a.gguf", new Knobs({ ...kv8 }))).toBe(k)
    const replaced = new RunIdentity({ ...identity, models: { ...identity.models, "a.gguf": { id: "a.gguf", bytes: 100, header_sha256: "33".repeat(32) } } })
    expect(trialKey(replaced, 2, "a.gguf", kv8)).not.toBe(k)
    // Another candidate's file changing leaves this trial's key alone.
    const otherChanged = new RunIdentity({ ...identity, models: { ...identity.models, "b.gguf": { id: "b.gguf", bytes: 1, header_sha256: null } } })
    expect(trialKey(otherChanged, 2, "a.gguf", kv8)).toBe(k)
    const rebuilt = new RunIdentity({ ...identity, provider: { ...identity.provider, executable_sha256: "bb".repeat(32) } })
    expect(trialKey(rebuilt, 2, "a.gguf", kv8)).not.toBe(k)
    // The same build moved elsewhere (a package manager's new prefix) measures the same.
    const moved = new RunIdentity({ ...identity, provider: { ...identity.provider, executable: "/opt/llama/bin/llama-server" } })
    expect(trialKey(moved, 2, "a.gguf", kv8)).toBe(k)
    expect(identityChanges(identity, moved)).toEqual([])
    expect(trialKey(identity, 2, "a.gguf", new Knobs({ ...kv8, kvBits: 4 }))).not.toBe(k)
    expect(trialKey(identity, 1, "a.gguf", kv8)).not.toBe(k)
    expect(trialKey(new RunIdentity({ ...identity, policy: { ...identity.policy, gate_ttft_ms: 2000 } }), 2, "a.gguf", kv8)).not.toBe(k)
    // P-2's extension (the provider's decode time bounding a squeezed window): trials recorded before it are measured again.
    expect(trialKey(new RunIdentity({ ...identity, policy: { ...identity.policy, throughput: THROUGHPUT_POLICY } }), 2, "a.gguf", kv8)).not.toBe(k)
    // A new version of this tool measures anew (its probe and decision code may have changed).
    expect(trialKey(new RunIdentity({ ...identity, tool_version: "0.2.0" }), 2, "a.gguf", kv8)).not.toBe(k)
  })

  it("R-1 a key is pinned: the SHA-256 of the RFC 8785 canonical JSON of tool, machine, provider build, model, policy, stage and knobs", () => {
    // Computed apart from this code (Python's json.dumps with sorted keys and no spaces, which is RFC 8785 for
    // these values, then hashlib.sha256): a change to how keys are derived makes every recorded run's trials
    // unreplayable by --resume, so it must be deliberate and change this test.
    const canonical = '{"knobs":{"kv_bits":8,"max_batch":1,"max_context":512,"threads":2},' +
      '"machine":{"binary_version":"b1","chip":"EPYC","os_version":"Linux 6","ram_gb":24},' +
      `"model":{"bytes":100,"header_sha256":"${"1".repeat(64)}","id":"a.gguf"},` +
      '"policy":{"estimate":true,"gate_ttft_ms":2500,"max_background_cores":0.25,"max_replicates":9,"max_tokens":64,' +
      '"memory_limit_gib":null,"ready_timeout_ms":300000,"request_timeout_ms":123000,"stage1_replicates":3,"stage2_replicates":3,"target_context":512},' +
      `"provider":{"build":"${"a".repeat(64)}","name":"llama-server","version":"b1"},"stage":2,"tool":"0.1.0","v":1}`
    expect(Crypto.createHash("sha256").update(canonical).digest("hex")).toBe("8df39fcd34d04449a25ceb7931bb05459e5bc7570cbcc7df07b499223a552da5")
    expect(trialKey(identity, 2, "a.gguf", kv8)).toBe("sha256:8df39fcd34d04449a25ceb7931bb05459e5bc7570cbcc7df07b499223a552da5")
    // Knobs and policy fields added later enter a key only when set, so the keys recorded before them stand.
    expect(trialKey(identity, 2, "a.gguf", new Knobs({ ...kv8, flashAttn: null, ubatch: null, batch: null })))
      .toBe("sha256:8df39fcd34d04449a25ceb7931bb05459e5bc7570cbcc7df07b499223a552da5")
  })

  it("R-2 identityChanges names what changed, in the operator's words; nothing for the same identity", () => {
    expect(identityChanges(identity, identity)).toEqual([])
    const now = new RunIdentity({
      ...identity,
      machine: new Machine({ ...identity.machine, ram_gb: 16 }),
      provider: { ...identity.provider, executable_sha256: "bb".repeat(32) },
      models: { ...identity.models, "a.gguf": { id: "a.gguf", bytes: 150, header_sha256: "33".repeat(32) } },
      policy: { ...identity.policy, max_tokens: 128 }
    })
    expect(identityChanges(identity, now)).toEqual([
      "machine ram_gb: 24 → 16",
      "provider binary /bin/llama-server (sha256 aaaaaaaaaaaa…) → /bin/llama-server (sha256 bbbbbbbbbbbb…)",
      "model a.gguf: 100 → 150 bytes, header sha256 111111111111… → 333333333333…",
      "measurement policy: max_tokens"
    ])
    expect(identityChanges(identity, new RunIdentity({ ...identity, tool_version: "0.2.0" }))).toEqual(["llm-autotune 0.1.0 → 0.2.0"])
    expect(identityChanges(identity, new RunIdentity({ ...identity, policy: { ...identity.policy, throughput: THROUGHPUT_POLICY } })))
      .toEqual(["measurement policy: throughput"])
  })
})

describe("outcomes kept whole (SPEC R-2)", () => {
  it("R-2 an outcome reads back equal: verdicts as Data values, intervals, ±Infinity", () => {
    const o: TrialOutcome = {
      ...outcome(50, Verdict.GateMissed({ phase: "probe", gateTtftMs: 2500, ttftMs: null })),
      samples: [{ failure: Verdict.GateMissed({ phase: "probe", gateTtftMs: 2875, ttftMs: null }), ttftMs: null, tps: Infinity, promptTokens: 512, completionTokens: 0, totalMs: 2875, serverTimings: null }]
    }
    const back = decodeOutcome(encodeOutcome(o))
    expect(back).toEqual(o)
    expect(Equal.equals(back.verdict, o.verdict)).toBe(true)
    expect(back.verdict._tag).toBe("GateMissed")
    expect(back.samples[0]!.tps).toBe(Infinity)
    expect(() => decodeOutcome(JSON.stringify({ ...o, verdict: { _tag: "Nope" } }))).toThrow(/unknown verdict Nope/)
  })
})

describe("the ledger (SPEC R-2)", () => {
  it.effect("R-2 replays the parent's measurements of a key in order, once each, without running the trial; then measures; saves every one", () =>
    Effect.gen(function*() {
      const saved = yield* Ref.make<ReadonlyArray<readonly [string, number | null]>>([])
      const key = trialKey(identity, 2, "a.gguf", kv8)
      const ledger = makeLedger(identity, [
        { trialKey: key, outcome: outcome(10), measuredIn: "run-1" },
        { trialKey: trialKey(identity, 1, "a.gguf", Knobs.defaults), outcome: outcome(99), measuredIn: "run-1" },
        { trialKey: key, outcome: outcome(11), measuredIn: "run-0" }
      ], (k, o) => Ref.update(saved, (xs) => [...xs, [k, o.tpsMedian] as const]))
      const ran = yield* Ref.make(0)
      const fresh = Effect.zipRight(Ref.update(ran, (n) => n + 1), Effect.succeed(outcome(12)))
      const got = [
        yield* ledger.measure(2, candidate("a.gguf"), kv8, 3, fresh),
        yield* ledger.measure(2, candidate("a.gguf"), kv8, 3, fresh),
        yield* ledger.measure(2, candidate("a.gguf"), kv8, 3, fresh)
      ]
      expect(got.map((o) => [o.tpsMedian, o.reusedFrom])).toEqual([[10, "run-1"], [11, "run-0"], [12, undefined]])
      expect(yield* Ref.get(ran)).toBe(1)
      // A trial of another key is measured (b.gguf was never measured); only what this run measured is saved
      // (the parent's ledger was copied whole when the run started).
      const other = yield* ledger.measure(2, candidate("b.gguf"), kv8, 3, fresh)
      expect(other.reusedFrom).toBeUndefined()
      expect(yield* Ref.get(ran)).toBe(2)
      expect((yield* Ref.get(saved)).map(([k, t]) => [k === key, t])).toEqual([[true, 12], [false, 12]])
      expect(ledger.keyOf(2, candidate("a.gguf"), kv8)).toBe(key)
    }))

  it.effect("R-2 a parent measurement over other replicates is not replayed: the trial is measured", () =>
    Effect.gen(function*() {
      const key = trialKey(identity, 2, "a.gguf", kv8)
      const ledger = makeLedger(identity, [{ trialKey: key, outcome: outcome(10), measuredIn: "run-1" }], () => Effect.void)
      const o = yield* ledger.measure(2, candidate("a.gguf"), kv8, 6, Effect.succeed({ ...outcome(20), replicates: 6 }))
      expect([o.tpsMedian, o.reusedFrom]).toEqual([20, undefined])
    }))

  it.effect("R-2 a ledger that cannot save says so and measures on: the run never fails for it", () =>
    Effect.gen(function*() {
      const ledger = makeLedger(identity, [], () => Effect.fail({ message: "disk full" }))
      const o = yield* ledger.measure(1, candidate("a.gguf"), Knobs.defaults, 3, Effect.succeed(outcome(5)))
      expect(o.tpsMedian).toBe(5)
    }))
})

describe("the quiet guard on a resumed run (SPEC N-3, R-2)", () => {
  it.effect("N-3 R-2 a disturbed trial whose re-run is replayed does not wait for quiet; one measured afresh does", () =>
    Effect.gen(function*() {
      const disturbed: TrialOutcome = { ...outcome(10), background: { othersCores: 1.5, disturbed: true } }
      const quiet: TrialOutcome = { ...outcome(12), background: { othersCores: 0, disturbed: false } }
      const waits = { n: 0 }
      const twice = (replayedNext: boolean) =>
        Effect.gen(function*() {
          const runs = yield* Ref.make(0)
          const trial = Effect.map(Ref.getAndUpdate(runs, (k) => k + 1), (k) => (k === 0 ? disturbed : quiet))
          return yield* measureQuietly(trial, 0.25, () => Effect.void, () => replayedNext)
        }).pipe(Effect.provide(CpuMeter.Stub(() => 0, () => true, waits)))
      expect((yield* twice(true)).tpsMedian).toBe(12)
      expect(waits.n).toBe(0)
      expect((yield* twice(false)).tpsMedian).toBe(12)
      expect(waits.n).toBe(1)
    }))
})

describe("verify's regression rule (SPEC R-3)", () => {
  const fig = (tps: number, ci: readonly [number, number] | null, replicates = 3, ttft: readonly [number, number] | null = [90, 110]) =>
    ({ tps_median: tps, tps_ci95: ci, ttft_p95_ms: ttft === null ? null : ttft[1], ttft_ci95_ms: ttft, replicates })

  it("R-3 regressed only when tok/s fell beyond the tolerance AND out of its interval; TTFT likewise upward", () => {
    // Within the noise: the new interval overlaps.
    expect(regressionsOf(fig(100, [95, 105]), fig(85, [80, 96]), 0.1)).toEqual([])
    // Wholly below but within the tolerance: no regression.
    expect(regressionsOf(fig(100, [99, 101]), fig(95, [94, 96]), 0.1)).toEqual([])
    expect(regressionsOf(fig(100, [95, 105]), fig(80, [78, 82]), 0.1)).toEqual(["tok/s 100.0 → 80.0 (-20.0 %)"])
    // One replicate's interval is a point: the tie band alone decides.
    expect(regressionsOf(fig(100, [100, 100], 1), fig(95, [95, 95], 1), 0.1)).toEqual([])
    expect(regressionsOf(fig(100, [100, 100], 1), fig(85, [85, 85], 1), 0.1)).toEqual(["tok/s 100.0 → 85.0 (-15.0 %)"])
    // TTFT wholly above its interval and beyond the band.
    expect(regressionsOf(fig(100, [95, 105]), fig(100, [95, 105], 3, [200, 250]), 0.1)).toEqual(["TTFT p95 110 ms → 250 ms (127.3 %)"])
    // Faster is never a regression.
    expect(regressionsOf(fig(100, [95, 105]), fig(150, [140, 160], 3, [50, 60]), 0.1)).toEqual([])
  })
})
