/**
 * Readiness of a started candidate (SPEC E-4, E-5) against a real fake
 * provider process: llama-server's `/health` gates readiness, a refusal fails
 * at once.
 */
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { Knobs } from "../../src/domain/Knobs.js"
import { llamaServer, NO_OPTIONAL_FLAGS } from "../../src/providers/LlamaServer.js"
import { macProvider } from "../../src/providers/MacProvider.js"
import type { ProviderAdapter } from "../../src/providers/ProviderAdapter.js"
import { CandidateProvider } from "../../src/services/CandidateProvider.js"
import { tempDir } from "../support/cli.js"
import { repoRoot } from "../support/models.js"

const fake = Path.join(repoRoot, "fixtures", "fake-provider.mjs")
const live = CandidateProvider.Default.pipe(Layer.provideMerge(Layer.mergeAll(NodeContext.layer, NodeHttpClient.layerUndici)))

/** Starts the fake under `adapter` with `env` set; resolves with how long readiness took (ms) or the failure message. */
const startWith = async (adapter: ProviderAdapter, env: Record<string, string>) => {
  const saved = { ...process.env }
  Object.assign(process.env, env)
  try {
    const t0 = Date.now()
    const r = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const provider = yield* CandidateProvider
      return yield* provider.start({
        adapter,
        spec: { model: "ok", knobs: Knobs.defaults, targetContext: 100, replyTokens: 8 },
        logDir: tempDir(),
        readyTimeoutMs: 20_000
      })
    })).pipe(Effect.either, Effect.provide(live)))
    return { ms: Date.now() - t0, error: r._tag === "Left" ? r.left.message : null }
  } finally {
    process.env = saved
  }
}

describe("candidate readiness (SPEC E-4, E-5)", () => {
  it("E-5 llama-server is not ready while /health answers 503, though /v1/models already answers", async () => {
    const env = { FAKE_PROVIDER_HEALTH_DELAY_MS: "2500" }
    const withHealth = await startWith(llamaServer(fake, NO_OPTIONAL_FLAGS), env)
    expect(withHealth.error).toBeNull()
    expect(withHealth.ms).toBeGreaterThanOrEqual(2500)
    // The same process judged by /v1/models alone is ready long before.
    const modelsOnly = await startWith(macProvider(fake), env)
    expect(modelsOnly.error).toBeNull()
    expect(modelsOnly.ms).toBeLessThan(2500)
  })

  it("E-4 a provider that refuses the readiness check (HTTP 401) fails at once, naming the status", async () => {
    const r = await startWith(llamaServer(fake, NO_OPTIONAL_FLAGS), { FAKE_PROVIDER_REFUSE: "1" })
    expect(r.error).toMatch(/refused GET \/health with HTTP 401/)
    expect(r.ms).toBeLessThan(5000)
  })
})
