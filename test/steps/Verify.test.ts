/**
 * `verifyRecipe` (SPEC R-3) against the simulated provider under TestClock:
 * what changed is named, and only a model file that is not the one measured,
 * a regressed figure or a gate miss decide the verdict.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Ref, TestClock } from "effect"
import type { StubEvent } from "../../src/services/CandidateProvider.js"
import { Exec } from "../../src/services/Exec.js"
import { RunIdentity } from "../../src/domain/TrialKey.js"
import { Inputs, Machine } from "../../src/domain/TuneDocument.js"
import { adapterOfIdentity, launchOf, type RecordedRecipe, verifyRecipe, type VerifyResult } from "../../src/steps/Verify.js"
import { embedded } from "../../src/providers/Embedded.js"
import { Knobs } from "../../src/domain/Knobs.js"
import { machineOf } from "../../src/system/MachineInfo.js"
import { AUTOTUNE_VERSION } from "../../src/system/Versions.js"
import { fakeHttp, fakeProvider, simulatedSettings } from "../support/simulatedProvider.js"
import { THROUGHPUT_POLICY } from "../../src/steps/Probe.js"

// fast-1b streams 3 tokens 100 ms apart after 1 s (kv unset): 15 tok/s, TTFT 1000 ms, every replicate.
const recommendation = {
  model: "fast-1b", target_context: 100,
  knobs: { kv_bits: null, max_concurrency_override: null, max_context_override: null },
  tps_median: 15, tps_ci95: [15, 15] as const, ttft_p95_ms: 1000, ttft_ci95_ms: [1000, 1000] as const, replicates: 3,
  serve_command: "fake serve --model fast-1b"
}
const inputs = new Inputs({ target_context: 100, candidate_models: ["fast-1b"], stage1_replicates: 3, stage2_replicates: 3, gate_ttft_ms: 60_000, tps_tie_epsilon: 0.1 })
const identity = (over: Partial<ConstructorParameters<typeof RunIdentity>[0]> = {}) =>
  new RunIdentity({
    tool_version: AUTOTUNE_VERSION,
    machine: machineOf(null),
    provider: { name: "macprovider", version: null, executable: "fake", executable_sha256: null },
    models: { "fast-1b": { id: "fast-1b", bytes: null, header_sha256: null } },
    policy: {
      target_context: 100, max_tokens: 3, gate_ttft_ms: 60_000, request_timeout_ms: 300_000, ready_timeout_ms: 300_000,
      estimate: false, memory_limit_gib: null, stage1_replicates: 3, stage2_replicates: 3, max_replicates: 9, max_background_cores: null,
      throughput: THROUGHPUT_POLICY
    },
    ...over
  })
const candidate = { id: "fast-1b", model: "fast-1b", rank: 1, paramCount: 1e9, ggufFile: false, fileBytes: null }

const verify = (recipe: RecordedRecipe, gateTtftMs = 60_000) =>
  Effect.gen(function*() {
    const journal = yield* Ref.make<ReadonlyArray<StubEvent>>([])
    const fiber = yield* Effect.fork(verifyRecipe({ ...simulatedSettings, gateTtftMs }, recipe, candidate, 3).pipe(
      Effect.provide([fakeProvider(journal), fakeHttp, Exec.Default])
    ))
    yield* TestClock.adjust("60 seconds")
    return yield* Fiber.join(fiber)
  })

const run = (id: RunIdentity | null, machine: Machine = machineOf(null)): RecordedRecipe => ({ recommendation, inputs, machine, identity: id })
const pick = (r: VerifyResult) => ({ verdict: r.verdict, changes: r.changes, model_changed: r.model_changed, regressions: r.regressions })

describe("verifyRecipe (SPEC R-3)", () => {
  it.effect("R-3 the same figures on the same identities hold; a new machine, OS or tool version is named, and the figures decide", () =>
    Effect.gen(function*() {
      expect(pick(yield* verify(run(identity())))).toEqual({ verdict: "holds", changes: [], model_changed: false, regressions: [] })
      const upgraded = yield* verify(run(identity({
        tool_version: "0.0.1",
        machine: new Machine({ ...machineOf(null), os_version: "Linux 5.0" })
      })))
      expect(upgraded.verdict).toBe("holds")
      expect(upgraded.changes).toEqual([`llm-autotune 0.0.1 → ${AUTOTUNE_VERSION}`, `machine os_version: "Linux 5.0" → ${JSON.stringify(machineOf(null).os_version)}`])
      // A document records no identities: the machine is compared, the model file and binary are said not to be.
      const doc = yield* verify(run(null, new Machine({ ...machineOf(null), ram_gb: 1 })))
      expect(doc.verdict).toBe("holds")
      expect(doc.changes).toEqual([`machine ram_gb: 1 → ${machineOf(null).ram_gb}`])
      expect(doc.unchecked.length).toBe(2)
      // A recipe measured before P-2's extension (its policy without it): this check takes throughput otherwise, and says so.
      const { throughput: _p2, ...older } = identity().policy
      const before = yield* verify(run(identity({ policy: older })))
      expect(before.verdict).toBe("holds")
      expect(before.changes).toEqual(["measurement policy: throughput"])
    }))

  it.effect("R-3 a model file that is not the one measured regresses by itself; a slower recipe regresses by its figure; a gate miss is infeasible", () =>
    Effect.gen(function*() {
      const replaced = yield* verify(run(identity({ models: { "fast-1b": { id: "fast-1b", bytes: 123, header_sha256: "ab".repeat(32) } } })))
      expect(replaced.verdict).toBe("regressed")
      expect(replaced.model_changed).toBe(true)
      expect(replaced.changes).toEqual(["model fast-1b: 123 → ? bytes, header sha256 abababababab… → none"])
      // Recorded at 30 tok/s: 15 now is a fall beyond the 20 % tolerance, out of the interval.
      const slower = yield* verify({ ...run(identity()), recommendation: { ...recommendation, tps_median: 30, tps_ci95: [29, 31] } })
      expect(pick(slower)).toEqual({ verdict: "regressed", changes: [], model_changed: false, regressions: ["tok/s 30.0 → 15.0 (-50.0 %)"] })
      // 17 tok/s recorded: 15 is within the tolerance (12 %): holds.
      expect((yield* verify({ ...run(identity()), recommendation: { ...recommendation, tps_median: 17, tps_ci95: [16.5, 17.5] } })).verdict).toBe("holds")
      const gated = yield* verify(run(identity()), 500)
      expect(gated.verdict).toBe("infeasible")
      expect(gated.reason).toMatch(/TTFT .*> 500 ms gate/)
    }))

  it("R-3 C-1 issue 14 a recipe's serve command with --stream-interval-ms is verified on a provider started with it; one without, with the default", () => {
    const spec = { model: "/m/a.gguf", port: 4000, knobs: new Knobs({ kvBits: null, maxContext: null, maxBatch: null, threads: 1 }), targetContext: 100, replyTokens: 1024 }
    const served = embedded(null, 7).serveCommand(spec)
    const rec = { ...recommendation, model: "/m/a.gguf", knobs: { ...recommendation.knobs, threads: 1 }, serve_command: served }
    const launch = launchOf(rec)
    expect(launch.adapter.streamIntervalMs).toBe(7)
    expect(launch.adapter.argv(spec, true).args.join(" ")).toContain("--stream-interval-ms 7")
    // However the provider is found now: this tool's own serve, or the executable the operator gives.
    const own = adapterOfIdentity({ name: "embedded", version: null, executable: null, executable_sha256: null }, null, launch.adapter)
    expect(own.argv(spec, true).args.join(" ")).toContain("--stream-interval-ms 7")
    const given = adapterOfIdentity({ name: "embedded", version: "1", executable: "/gone/fake", executable_sha256: null }, "/opt/fake", launch.adapter)
    expect(given.argv(spec, true)).toMatchObject({ command: "/opt/fake" })
    expect(given.argv(spec, true).args.join(" ")).toContain("--stream-interval-ms 7")
    const plain = launchOf({ ...rec, serve_command: embedded(null).serveCommand(spec) })
    expect(plain.adapter.streamIntervalMs).toBeNull()
    expect(plain.adapter.argv(spec, true).args).not.toContain("--stream-interval-ms")
  })
})
