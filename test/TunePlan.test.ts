/**
 * `validatePlan` (src/TunePlan.ts): the checks a plan built in code gets, the
 * same the CLI's flags get (SPEC B-1, G-1, F-3, H-3), each naming its flag.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { embedded } from "../src/providers/Embedded.js"
import { llamaServer, NO_OPTIONAL_FLAGS } from "../src/providers/LlamaServer.js"
import { macProvider } from "../src/providers/MacProvider.js"
import { recipeHash } from "../src/domain/RecipeHash.js"
import { planInputs, type TunePlan, validatePlan } from "../src/TunePlan.js"
import { tempDir } from "./support/cli.js"

const base: TunePlan = {
  adapter: embedded(null),
  candidateIds: ["big.gguf", "small.gguf"],
  demoLadderDir: null,
  targetContext: 2048,
  gateTtftMs: 5000,
  maxTokens: 64,
  replyTokens: 1024,
  requestTimeoutMs: 125_000,
  readyTimeoutMs: 300_000,
  logDir: "/tmp/logs",
  stage1Replicates: 3,
  stage2Replicates: 3,
  axes: { kvBits: [null, 8], maxContext: [2048], maxBatch: [1], threads: [1, 2] },
  tpsTieEpsilon: 0.1,
  json: false,
  estimate: true,
  memoryLimitGiB: null,
  maxBackgroundCores: 0.25,
  maxReplicates: 9,
  waitQuietMs: null,
  budgetMs: null,
  dbPath: "/tmp/runs.db",
  dataDir: "/tmp",
  lifecycle: {
    preflight: { serviceManager: "none", serviceLabel: "x", providerBinary: "macprovider-cli", providerSubcommand: "serve" },
    drain: false,
    restartForeground: false
  },
  apply: null,
  keepRuns: 100
}

/** The flag the UsageError of `plan` names, or null when the plan is valid. */
const flagOf = (plan: TunePlan) =>
  Effect.map(Effect.either(validatePlan(plan)), Either.match({ onLeft: (e) => e.flag, onRight: () => null }))

describe("validatePlan: a plan built in code gets the CLI's checks (SPEC B-1, G-1, F-3, H-3)", () => {
  it.effect("B-1 a valid plan passes unchanged", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* validatePlan(base), base)
    }))

  it.effect("B-1 each bad input is refused naming its flag", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string, Partial<TunePlan>]> = [
        ["candidate-models", { candidateIds: [] }],
        ["candidate-models", { candidateIds: ["a", "a"] }],
        ["stage1-replicates", { stage1Replicates: 0 }],
        ["target-context", { targetContext: 1.5 }],
        ["gate-ttft-ms", { gateTtftMs: 2 ** 31 }],
        ["request-timeout", { requestTimeoutMs: 5000 }],
        ["max-duration", { budgetMs: 2 ** 40 }],
        ["ready-timeout", { readyTimeoutMs: 0 }],
        ["ready-timeout", { readyTimeoutMs: 2 ** 31 - 2, requestTimeoutMs: 10_000 }],
        ["keep-runs", { keepRuns: -1 }],
        ["max-replicates", { maxReplicates: 2 }],
        ["max-replicates", { maxReplicates: 1001 }],
        ["max-background-cores", { maxBackgroundCores: 0 }],
        ["wait-quiet", { waitQuietMs: 0 }],
        ["wait-quiet", { waitQuietMs: 5000, maxBackgroundCores: null }],
        ["stage2-replicates", { stage2Replicates: 1001 }],
        ["target-context", { targetContext: 2 ** 20 + 1 }],
        ["tps-tie-epsilon", { tpsTieEpsilon: 1 }],
        ["memory-limit", { memoryLimitGiB: -1 }],
        ["memory-headroom", { memoryHeadroom: 0 }],
        ["memory-headroom", { memoryHeadroom: 1.01 }],
        ["concurrency", { objective: { streams: 0, ttftP95Ms: 5000, itlP95Ms: null, decodeTps: null } }],
        ["slo-ttft-p95-ms", { objective: { streams: 2, ttftP95Ms: 5001, itlP95Ms: null, decodeTps: null } }],
        ["slo-itl-p95-ms", { objective: { streams: 2, ttftP95Ms: 5000, itlP95Ms: 0, decodeTps: null } }],
        ["slo-decode-tps", { objective: { streams: 2, ttftP95Ms: 5000, itlP95Ms: null, decodeTps: -1 } }],
        ["max-batch-axis", { objective: { streams: 2, ttftP95Ms: 5000, itlP95Ms: null, decodeTps: null } }],
        ["kv-bits-axis", { axes: { ...base.axes, kvBits: [] } }],
        ["max-context-axis", { axes: { ...base.axes, maxContext: [1024] } }],
        ["max-context-axis", { axes: { ...base.axes, maxContext: [4096, 2048] } }],
        ["max-batch-axis", { axes: { ...base.axes, maxBatch: [0] } }],
        ["max-batch-axis", { axes: { ...base.axes, maxBatch: [2, 2] } }],
        ["threads-axis", { axes: { ...base.axes, threads: [] } }],
        ["threads-axis", { adapter: macProvider("macprovider-cli") }],
        ["reply-tokens", { replyTokens: 32 }],
        ["reply-tokens", { replyTokens: 0 }],
        ["apply", { adapter: llamaServer("llama-server", NO_OPTIONAL_FLAGS), apply: { configPath: null, verify: false } }],
        ["verify", { adapter: macProvider("macprovider-cli"), axes: { ...base.axes, threads: [] }, apply: { configPath: null, verify: true } }]
      ]
      for (const [flag, over] of cases) assert.strictEqual(yield* flagOf({ ...base, ...over }), flag, JSON.stringify(over))
    }))

  it.effect("F-3 --apply's config is checked editable and resolved to an absolute path; a missing one is refused", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const cfg = Path.join(dir, "config.yaml")
      Fs.writeFileSync(cfg, "# mine\nmodel: old\n")
      const mac = { ...base, adapter: macProvider("macprovider-cli"), axes: { ...base.axes, threads: [] } }
      const ok = yield* validatePlan({ ...mac, apply: { configPath: Path.relative(process.cwd(), cfg), verify: false } })
      assert.strictEqual(ok.apply?.configPath, cfg)
      assert.strictEqual(yield* flagOf({ ...mac, apply: { configPath: Path.join(dir, "missing.yaml"), verify: false } }), "config-path")
    }))

  it.effect("F-4 issue 17 part 3: a searched micro-batch is part of --apply's pre-flight: a -b held in a llama-swap macro is refused before the run, left alone otherwise", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const cfg = Path.join(dir, "config.yaml")
      Fs.writeFileSync(cfg, "macros:\n  common: -ngl 99 -b 4096\nmodels:\n  big:\n    cmd: llama-server ${common} -m /m/big.gguf -c 100\n")
      const ls = { ...base, candidateIds: ["/m/big.gguf"], adapter: llamaServer("llama-server", NO_OPTIONAL_FLAGS), apply: { configPath: cfg, verify: false } }
      assert.strictEqual(yield* flagOf(ls), null)
      assert.strictEqual(yield* flagOf({ ...ls, axes: { ...base.axes, ubatch: [128, 512] } }), "config-path")
    }))

  it("F-5 F-2h the reply budget enters the inputs (and the recipe hash) only when it is not the default 1024", () => {
    expect(Object.keys(planInputs(base))).not.toContain("reply_tokens")
    expect(planInputs({ ...base, replyTokens: 2048 }).reply_tokens).toBe(2048)
    // With a probe longer than 1024 tokens the default budget is the probe's length: still not in the inputs.
    expect(Object.keys(planInputs({ ...base, maxTokens: 2048, replyTokens: 2048 }))).not.toContain("reply_tokens")
    const machine = { ram_gb: 24, chip: "x", os_version: "y", binary_version: null }
    const hashOf = (p: TunePlan) => recipeHash({ machine, inputs: planInputs(p), recommendation: { model: "m", knobs: { kv_bits: null, max_concurrency_override: 1, max_context_override: null } } })
    // The default budget hashes exactly as a plan from before the budget existed (its inputs without the key).
    const { reply_tokens: _none, ...before } = planInputs(base)
    expect(hashOf(base)).toBe(recipeHash({ machine, inputs: before as never, recommendation: { model: "m", knobs: { kv_bits: null, max_concurrency_override: 1, max_context_override: null } } }))
    expect(hashOf({ ...base, replyTokens: 2048 })).not.toBe(hashOf(base))
  })

  it("C-1 C-3 F-2h concurrency, the objective and the memory headroom enter the inputs only when not at their defaults", () => {
    const at = (o: Partial<TunePlan>) => planInputs({ ...base, ...o })
    // Defaults: no objective, headroom 0.9.
    expect(at({})).toEqual(planInputs(base))
    expect(at({ memoryHeadroom: 0.9 })).toEqual(planInputs(base))
    expect(Object.keys(at({}))).toEqual(
      ["target_context", "candidate_models", "stage1_replicates", "stage2_replicates", "gate_ttft_ms", "tps_tie_epsilon"]
    )
    expect(at({ memoryHeadroom: 0.8, objective: { streams: 4, ttftP95Ms: 1000, itlP95Ms: 50, decodeTps: 5 } })).toMatchObject({
      concurrency: 4, slo_ttft_p95_ms: 1000, slo_itl_p95_ms: 50, slo_decode_tps: 5, memory_headroom: 0.8
    })
    // Under an objective a replicate is its users, whatever the slots: one user is named too.
    expect(at({ objective: { streams: 1, ttftP95Ms: 5000, itlP95Ms: 40, decodeTps: null } })).toMatchObject({ concurrency: 1, slo_itl_p95_ms: 40 })
  })

  it.effect("C-1 F-2h an objective that asks nothing a single user does not (1 user, TTFT at the gate) is dropped: the plan measures and hashes as a plain one", () =>
    Effect.gen(function*() {
      const plan = yield* validatePlan({ ...base, objective: { streams: 1, ttftP95Ms: 5000, itlP95Ms: null, decodeTps: null } })
      assert.strictEqual(plan.objective, null)
      assert.deepStrictEqual(planInputs(plan), planInputs(base))
    }))

  it.effect("C-4 issue 17 part 3: a capacity search cannot start beyond its cap; axes that leave no cell are refused", () =>
    Effect.gen(function*() {
      const ls = { ...base, adapter: llamaServer("llama-server", NO_OPTIONAL_FLAGS) }
      assert.strictEqual(
        yield* flagOf({ ...base, findMaxConcurrency: true, objective: { streams: 300, ttftP95Ms: 5000, itlP95Ms: null, decodeTps: null }, axes: { ...base.axes, maxBatch: [300] } }),
        "concurrency"
      )
      assert.strictEqual(yield* flagOf({ ...ls, axes: { ...base.axes, kvBits: [8], flashAttn: [false] } }), "flash-attn-axis")
      assert.strictEqual(yield* flagOf({ ...ls, axes: { ...base.axes, ubatch: [1024], batch: [512] } }), "ubatch-axis")
      assert.strictEqual(yield* flagOf({ ...ls, axes: { ...base.axes, flashAttn: [true, false], ubatch: [64, 512], batch: [512] } }), null)
      // issue 14: the embedded provider switches flash attention too; macprovider does not.
      assert.strictEqual(yield* flagOf({ ...base, axes: { ...base.axes, flashAttn: [true, false] } }), null)
      assert.strictEqual(yield* flagOf({ ...base, axes: { ...base.axes, kvBits: [8], flashAttn: [false] } }), "flash-attn-axis")
      assert.strictEqual(yield* flagOf({ ...base, adapter: macProvider("macprovider-cli"), axes: { ...base.axes, threads: [], flashAttn: [true] } }), "flash-attn-axis")
      assert.strictEqual(yield* flagOf({ ...base, axes: { ...base.axes, ubatch: [128] } }), "ubatch-axis")
    }))
})
