import { Either, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { encodeTuneDocument, TuneDocument } from "../../src/domain/TuneDocument.js"

/** The strict decoder the CLI tests use: every key typed, no undocumented key anywhere. */
const decode = Schema.decodeUnknownEither(TuneDocument, { onExcessProperty: "error" })

const valid = {
  spec_version: "1",
  run_id: "5d0c3c1e-7d3b-4c43-a3c5-0c4b9a8d1e2f",
  started_at: "2026-11-22T10:00:00.000Z",
  ended_at: "2026-11-22T10:05:00.000Z",
  partial: false,
  exit_reason: "ok",
  machine: { ram_gb: 23.4, chip: "cpu", os_version: "Linux 6", binary_version: null },
  inputs: {
    target_context: 2048, candidate_models: ["a.gguf", "b.gguf"], stage1_replicates: 3, stage2_replicates: 3,
    gate_ttft_ms: 60000, tps_tie_epsilon: 0.1
  },
  recommendation: {
    model: "b.gguf", target_context: 2048,
    knobs: { kv_bits: null, max_concurrency_override: 1, max_context_override: 2048, threads: 2 },
    tps_median: 55.1, ttft_p95_ms: 1200, replicates: 3, serve_command: "autotune serve --model b.gguf",
    tps_ci95: [52.0, 57.3], ttft_ci95_ms: [1100, 1200], ci_coverage: 0.75, tps_cv: 0.05, ttft_median_ms: 1150, marginal: false, disturbed: false,
    stage1_marginal: true, stage1_disturbed: false,
    tied_within_noise: [{ knobs: { kv_bits: 8, max_concurrency_override: 1, max_context_override: 2048, threads: 2 }, tps_median: 54, tps_ci95: [50, 58], replicates: 9 }],
    drift_check: { tps_median: 55.9, moved: false, remeasured: [] }
  },
  alternates: [],
  infeasible: [{ model: "a.gguf", rank: 1, reason: "TTFT 9000 ms > 5000 ms gate", marginal: false, disturbed: true }],
  recipe_hash: "sha256:" + "0".repeat(64),
  disturbed_trials: 1,
  noise_policy: { max_replicates: 9, max_background_cores: 0.25 }
}

const withPath = (path: ReadonlyArray<string>, value: unknown): unknown => {
  const copy = structuredClone(valid) as Record<string, unknown>
  let at = copy
  for (const k of path.slice(0, -1)) at = at[k] as Record<string, unknown>
  if (value === undefined) delete at[path.at(-1)!]
  else at[path.at(-1)!] = value
  return copy
}

describe("the JSON document schema (SPEC F-2)", () => {
  it("F-2 a complete document decodes and encodes back to the same JSON", () => {
    const doc = decode(valid)
    expect(Either.isRight(doc)).toBe(true)
    expect(JSON.parse(encodeTuneDocument(Either.getOrThrow(doc)))).toEqual(valid)
  })

  it("F-2 a macprovider recipe has no threads key, and that is valid", () => {
    expect(Either.isRight(decode(withPath(["recommendation", "knobs", "threads"], undefined)))).toBe(true)
  })

  const rejects: ReadonlyArray<readonly [string, ReadonlyArray<string>, unknown]> = [
    ["an undocumented top-level key", ["extra"], 1],
    ["an undocumented key in machine", ["machine", "gpu"], "none"],
    ["an undocumented knob", ["recommendation", "knobs", "flash_attention"], true],
    ["a missing recipe_hash", ["recipe_hash"], undefined],
    ["a missing machine.chip", ["machine", "chip"], undefined],
    ["an exit_reason outside H-2", ["exit_reason"], "timeout"],
    ["kv_bits other than 4, 8, null", ["recommendation", "knobs", "kv_bits"], 16],
    ["a recipe hash without the sha256: prefix", ["recipe_hash"], "0".repeat(64)],
    ["a local time instead of UTC", ["started_at"], "2026-11-22 10:00:00"],
    ["a non-integer rank", ["infeasible"], [{ model: "a", rank: 1.5, reason: "x", marginal: false, disturbed: false }]],
    ["N-1 an interval that is not a [lo, hi] pair", ["recommendation", "tps_ci95"], [52]],
    ["N-3 a missing disturbed_trials", ["disturbed_trials"], undefined],
    ["a string tok/s", ["recommendation", "tps_median"], "55"],
    ["another spec version", ["spec_version"], "2"]
  ]
  for (const [name, path, value] of rejects) {
    it(`F-2 rejects ${name}`, () => {
      expect(Either.isLeft(decode(withPath(path, value)))).toBe(true)
    })
  }
})
