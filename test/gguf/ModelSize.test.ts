import { NO_SPREAD } from "../../src/domain/Trial.js"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { resolveCandidates } from "../../src/steps/Candidates.js"
import { modelParamCount, paramCountFromHfConfig } from "../../src/gguf/ModelSize.js"
import { buildDocument } from "../../src/steps/Recommend.js"
import { tempDir } from "../support/cli.js"
import { Knobs } from "../../src/domain/Knobs.js"
import { Verdict } from "../../src/domain/Verdict.js"
import { Inputs, Machine } from "../../src/domain/TuneDocument.js"
import { macProvider } from "../../src/providers/MacProvider.js"

/** Shape keys of TinyLlama-1.1B's config.json (published count 1,100,048,384 with norms). */
const tinyLlama = {
  hidden_size: 2048, num_hidden_layers: 22, intermediate_size: 5632, vocab_size: 32000,
  num_attention_heads: 32, num_key_value_heads: 4, tie_word_embeddings: false
}
/** Shape keys of Llama-3.2-1B's config.json (published count 1,235,814,400 with norms). */
const llama32_1b = {
  hidden_size: 2048, num_hidden_layers: 16, intermediate_size: 8192, vocab_size: 128256,
  num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, tie_word_embeddings: true
}

const modelDir = (root: string, name: string, config: unknown) => {
  const dir = Path.join(root, name)
  Fs.mkdirSync(dir)
  Fs.writeFileSync(Path.join(dir, "config.json"), JSON.stringify(config))
  return dir
}

describe("model size from metadata (SPEC A-4, F-1)", () => {
  it("A-4 config.json shapes give the published parameter counts within 0.1 %", () => {
    expect(Math.abs(paramCountFromHfConfig(tinyLlama)! / 1_100_048_384 - 1)).toBeLessThan(0.001)
    expect(Math.abs(paramCountFromHfConfig(llama32_1b)! / 1_235_814_400 - 1)).toBeLessThan(0.001)
    expect(paramCountFromHfConfig({ hidden_size: 2048 })).toBeNull()
  })

  it("A-4 metadata wins over the id; an id token is the fallback; unknown is null", async () => {
    const root = tempDir()
    // A directory named "7B" whose config says 1.1B: the metadata decides.
    const misnamed = modelDir(root, "misnamed-7B", tinyLlama)
    expect(await Effect.runPromise(modelParamCount(misnamed))).toBeCloseTo(1.1e9, -8)
    expect(await Effect.runPromise(modelParamCount("mlx-community/Llama-3.2-3B-Instruct-4bit"))).toBe(3e9)
    expect(await Effect.runPromise(modelParamCount("mlx-community/some-model"))).toBeNull()
  })

  it("F-1 alternates come from metadata sizes whatever the input order (model directories with config.json)", async () => {
    const root = tempDir()
    const big = modelDir(root, "alpha", llama32_1b)
    const small = modelDir(root, "beta", tinyLlama)
    const candidates = await Effect.runPromise(resolveCandidates([small, big], "macprovider"))
    expect(candidates.map((c) => c.paramCount! > 1.2e9)).toEqual([false, true])
    const doc = buildDocument({
      runId: "r", startedAt: "2026-01-01T00:00:00.000Z", endedAt: null, exitReason: "ok", partial: false,
      machine: new Machine({ ram_gb: 1, chip: "c", os_version: "o", binary_version: null }),
      inputs: new Inputs({ target_context: 2048, candidate_models: [small, big], stage1_replicates: 1, stage2_replicates: 1, gate_ttft_ms: 1000, tps_tie_epsilon: 0.1 }),
      adapter: macProvider("macprovider-cli"),
      candidates, targetContext: 2048, replyTokens: 64,
      recommended: {
        candidate: candidates[1]!, knobs: Knobs.defaults,
        outcome: { verdict: Verdict.Fits(), replicates: 1, nErr: 0, tpsMedian: 1, ttftMedianMs: 1, ttftP95Ms: 1, calibration: null, samples: [], startedAt: "2026-01-01T00:00:00.000Z", server: { promptTokens: null, promptN: null, promptTps: null, decodeTps: null, requestMs: null }, phases: { loadMs: null, preWarmMs: null, probeMs: null }, spread: NO_SPREAD, marginal: false, background: null }
      },
      rejected: [], disturbedTrials: 0, tiedWithinNoise: [], drift: null, stage1: null, noisePolicy: { maxReplicates: 9, maxBackgroundCores: 0.25 }
    })
    expect(doc.alternates).toEqual([small])
  })
})
