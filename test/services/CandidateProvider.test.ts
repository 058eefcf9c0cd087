/**
 * Readiness of a started candidate (SPEC E-4, E-5) against a real fake
 * provider process: llama-server's `/health` gates readiness, a refusal fails
 * at once.
 */
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as Path from "node:path"
import * as fs from "node:fs"
import { describe, expect, it } from "vitest"
import { Knobs } from "../../src/domain/Knobs.js"
import type { RunningServer } from "../../src/domain/RunningServer.js"
import { embedded } from "../../src/providers/Embedded.js"
import { llamaServer, NO_OPTIONAL_FLAGS } from "../../src/providers/LlamaServer.js"
import { macProvider } from "../../src/providers/MacProvider.js"
import type { ProviderAdapter } from "../../src/providers/ProviderAdapter.js"
import { CandidateProvider, SHIM_CA_CERTS_VAR } from "../../src/services/CandidateProvider.js"
import { tempDir } from "../support/cli.js"
import { repoRoot, tinyModelPath } from "../support/models.js"

const fake = Path.join(repoRoot, "fixtures", "fake-provider.mjs")
const live = CandidateProvider.Default.pipe(Layer.provideMerge(Layer.mergeAll(NodeContext.layer, NodeHttpClient.layerUndici)))

/**
 * Starts the fake (or `model` under an adapter that serves files) under `adapter` with `env` set; resolves with
 * how long readiness took (ms) or the failure message, and what `whileUp` returned of the ready provider.
 */
const startWith = async <A = undefined>(
  adapter: ProviderAdapter,
  env: Record<string, string>,
  whileUp: (server: RunningServer) => A = () => undefined as A,
  model = "ok"
) => {
  const saved = { ...process.env }
  Object.assign(process.env, env)
  try {
    const t0 = Date.now()
    const r = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const provider = yield* CandidateProvider
      const server = yield* provider.start({
        adapter,
        spec: { model, knobs: Knobs.defaults, targetContext: 100, replyTokens: 8 },
        logDir: tempDir(),
        readyTimeoutMs: 60_000
      })
      return whileUp(server)
    })).pipe(Effect.either, Effect.provide(live)))
    return { ms: Date.now() - t0, error: r._tag === "Left" ? r.left.message : null, seen: r._tag === "Right" ? r.right : undefined }
  } finally {
    process.env = saved
  }
}

/** The environment process `pid` was started with (/proc/<pid>/environ). */
const environOf = (pid: number): Record<string, string> =>
  Object.fromEntries(fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter((e) => e !== "").map((e) => {
    const at = e.indexOf("=")
    return [e.slice(0, at), e.slice(at + 1)]
  }))

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

describe("a candidate's environment (issue 14 part 3)", () => {
  const caCerts = "/etc/ssl/certs/ca-certificates.crt"

  it("issue 14 E-5 the shim, a Node process of ours, starts without NODE_EXTRA_CA_CERTS and hands it back to the provider it runs; llama.cpp's LLAMA_ARG_* and LLAMA_API_KEY reach neither", async () => {
    const envLog = Path.join(tempDir(), "env.jsonl")
    const r = await startWith(
      llamaServer(fake, NO_OPTIONAL_FLAGS),
      { NODE_EXTRA_CA_CERTS: caCerts, LLAMA_ARG_CTX_SIZE: "99", LLAMA_API_KEY: "secret", FAKE_PROVIDER_ENV_LOG: envLog },
      (server) => environOf(server.pid)
    )
    expect(r.error).toBeNull()
    // The group's leader is the shim.
    const shim = r.seen!
    expect(shim.NODE_EXTRA_CA_CERTS).toBeUndefined()
    expect(shim.AUTOTUNE_PARENT_PID).toBe(`${process.pid}`)
    const provider = JSON.parse(fs.readFileSync(envLog, "utf8").trim()) as Record<string, string>
    expect(provider.NODE_EXTRA_CA_CERTS).toBe(caCerts)
    expect(provider.AUTOTUNE_PROVIDER_NODE_EXTRA_CA_CERTS).toBeUndefined()
    for (const env of [shim, provider]) {
      expect(env.LLAMA_ARG_CTX_SIZE).toBeUndefined()
      expect(env.LLAMA_API_KEY).toBeUndefined()
    }
    // Without it set, none is made up, not even from a hand-over variable this tuner inherited.
    fs.rmSync(envLog)
    const { NODE_EXTRA_CA_CERTS: _unset, ...without } = { ...process.env, [SHIM_CA_CERTS_VAR]: "/inherited/ca.pem" } as NodeJS.ProcessEnv
    const saved = process.env
    process.env = without
    try {
      const plain = await startWith(llamaServer(fake, NO_OPTIONAL_FLAGS), { FAKE_PROVIDER_ENV_LOG: envLog })
      expect(plain.error).toBeNull()
      const provider = JSON.parse(fs.readFileSync(envLog, "utf8").trim()) as Record<string, string>
      expect(provider.NODE_EXTRA_CA_CERTS).toBeUndefined()
      expect(provider[SHIM_CA_CERTS_VAR]).toBeUndefined()
    } finally {
      process.env = saved
    }
  })

  it("issue 14 E-5 the embedded provider, this project's own serve, starts without NODE_EXTRA_CA_CERTS; another binary keeps it", async () => {
    const own = await startWith(embedded(null), { NODE_EXTRA_CA_CERTS: caCerts }, (server) => environOf(server.pid), tinyModelPath("q4_0"))
    expect(own.error).toBeNull()
    expect(own.seen!.NODE_EXTRA_CA_CERTS).toBeUndefined()
    expect(own.seen!.AUTOTUNE_PARENT_PID).toBe(`${process.pid}`)
    // --provider-bin: not known to be this project's Node code, so its environment is left as it is.
    const envLog = Path.join(tempDir(), "env.jsonl")
    const other = await startWith(embedded(fake), { NODE_EXTRA_CA_CERTS: caCerts, FAKE_PROVIDER_ENV_LOG: envLog })
    expect(other.error).toBeNull()
    expect(JSON.parse(fs.readFileSync(envLog, "utf8").trim()).NODE_EXTRA_CA_CERTS).toBe(caCerts)
  })
})
