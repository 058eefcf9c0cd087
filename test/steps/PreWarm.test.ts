/**
 * The pre-warm against real providers (SPEC D-1, P-1; issue 14 part 4): the
 * embedded provider (`autotune serve`) and the real `llama-server` on the
 * tiny synthetic model, every request the pre-warm sends recorded on its way
 * out. Where the provider counts tokens, the probe prompt is sized by its
 * tokenizer without a prefill, and a provider the short requests warm gets
 * no full-length request; the prompt so sized is on the target when the
 * provider itself counts it. And a probe past the TTFT asked of it ends at
 * its first token (Stage 1's first probe where no full-length pre-warm ran).
 */
import { FetchHttpClient, HttpClient } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, type Scope } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { PROMPT_TOLERANCE, promptOfWords, wordsForTokens } from "../../src/domain/Prompt.js"
import { serverWithoutProcess } from "../../src/services/CandidateProvider.js"
import { preWarm, type PreWarmResult } from "../../src/steps/PreWarm.js"
import { probeOnce } from "../../src/steps/Probe.js"
import { freePort, spawnServe, waitReady } from "../serve/ServeProcess.js"
import { llamaServerBin } from "../support/llamaCpp.js"
import { tinyModelPath } from "../support/models.js"

/** What one request sent: its path, its prompt's words (the chat message's, or `/tokenize`'s content), its model. */
interface Sent {
  readonly path: string
  readonly words: number
  readonly model: unknown
}

/** The live HTTP client, recording every request into `sent`. */
const recording = (sent: Array<Sent>) =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.map(HttpClient.HttpClient, (client) =>
      HttpClient.tapRequest(client, (req) =>
        Effect.sync(() => {
          const body = req.body._tag === "Uint8Array" ? JSON.parse(new TextDecoder().decode(req.body.body)) : {}
          const text = String(body.messages?.[0]?.content ?? body.content ?? "")
          sent.push({ path: new URL(req.url).pathname, words: text === "" ? 0 : text.split(" ").length, model: body.model })
        })))
  ).pipe(Layer.provide(FetchHttpClient.layer))

const TARGET = 256

/** Pre-warms the provider at `baseUrl` as a one-slot trial of a provider the short requests warm, recording what it sent. */
const warmAt = (baseUrl: string, countsTokens: boolean) =>
  Effect.gen(function*() {
    const sent: Array<Sent> = []
    const server = serverWithoutProcess(baseUrl, "synth-15M-q4_0")
    const result: PreWarmResult = yield* preWarm(server, {
      targetContext: TARGET,
      concurrent: 1,
      timeoutMs: 120_000,
      boundMs: null,
      gateTtftMs: 60_000,
      known: null,
      countsTokens,
      fullLength: false
    }).pipe(Effect.provide(recording(sent)))
    assert.strictEqual(result._tag, "Warm", JSON.stringify(result))
    if (result._tag !== "Warm") throw new Error("unreachable")
    // The provider's own count of the prompt the probes would send (variant 1, the first probe's).
    const probe = yield* probeOnce(server, {
      prompt: promptOfWords(wordsForTokens(result.calibration, TARGET), 1),
      maxTokens: 1,
      gateTtftMs: 120_000,
      requestTimeoutMs: 120_000
    }).pipe(Effect.provide(FetchHttpClient.layer))
    return { sent, result, promptTokens: probe.promptTokens }
  })

/** Both ways of sizing the prompt on one provider. */
const bothWays = (baseUrl: string) =>
  Effect.gen(function*() {
    const counted = yield* warmAt(baseUrl, true)
    // The two short requests (the first use), then only /tokenize calls: no full-length request.
    const chats = counted.sent.filter((s) => s.path === "/v1/chat/completions")
    assert.deepStrictEqual(chats.map((s) => s.words), [16, 64])
    const counts = counted.sent.filter((s) => s.path === "/tokenize")
    assert.isAtLeast(counts.length, 2)
    // Each names the model, for a router in front of several (llama-server's presets, llama-swap).
    for (const c of counts) assert.strictEqual(c.model, "synth-15M-q4_0")
    assert.isFalse(counted.result._tag === "Warm" && counted.result.fullLength)
    // P-1: sized without a prefill, and on the target as the provider counts it (within half of the tolerance).
    assert.isNotNull(counted.promptTokens)
    assert.isAtMost(Math.abs(counted.promptTokens! - TARGET), (PROMPT_TOLERANCE / 2) * TARGET)

    // Without counting: the two short requests, then a full-length one, which refines the calibration.
    const fitted = yield* warmAt(baseUrl, false)
    const fittedChats = fitted.sent.filter((s) => s.path === "/v1/chat/completions").map((s) => s.words)
    assert.deepStrictEqual(fittedChats.slice(0, 2), [16, 64])
    assert.strictEqual(fittedChats.length, 3)
    assert.isAbove(fittedChats[2]!, 64)
    assert.isFalse(fitted.sent.some((s) => s.path === "/tokenize"))
    assert.isTrue(fitted.result._tag === "Warm" && fitted.result.fullLength)
    assert.isAtMost(Math.abs(fitted.promptTokens! - TARGET), PROMPT_TOLERANCE * TARGET)
  })

/**
 * The real llama-server on `model`, one slot, SIGKILLed when the Scope closes; ready once `/health` answers
 * 200. With `presetDir`, as a router (`--models-preset`, F-4) whose one section, named synth-15M-q4_0,
 * serves `model` from a server of its own started on first use (which ends when the router's pipe to it
 * closes: "EOF on stdin detected"), listing no model of the machine's llama.cpp cache (LLAMA_CACHE there).
 */
const llamaServer = (model: string, presetDir: string | null = null): Effect.Effect<string, never, Scope.Scope> =>
  Effect.gen(function*() {
    const port = yield* freePort
    const options = ["--ctx-size", "2048", "--parallel", "1", "--threads", "1"]
    const args = presetDir === null ? ["-m", model, ...options] : ["--models-preset", Path.join(presetDir, "models.ini")]
    if (presetDir !== null) {
      Fs.writeFileSync(Path.join(presetDir, "models.ini"), `[synth-15M-q4_0]\nmodel = ${model}\nctx-size = 2048\nparallel = 1\nthreads = 1\n`)
    }
    const proc = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(llamaServerBin(), [...args, "--host", "127.0.0.1", "--port", `${port}`], {
          stdio: "ignore",
          env: presetDir === null ? process.env : { ...process.env, LLAMA_CACHE: presetDir }
        })
      ),
      (p) => Effect.sync(() => void p.kill("SIGKILL"))
    )
    const baseUrl = `http://127.0.0.1:${port}`
    yield* Effect.promise(async () => {
      for (;;) {
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`llama-server exited (${proc.exitCode ?? proc.signalCode}) before ready`)
        if (await fetch(`${baseUrl}/health`).then((r) => r.ok, () => false)) return
        await new Promise((r) => setTimeout(r, 50))
      }
    })
    return baseUrl
  })

/**
 * A probe whose first token comes later than `overMs` (0: any) ends at that token, and the provider, whose
 * reply was abandoned, answers the next request whole: what Stage 1's first probe under its wider bound relies on.
 */
const endsAtFirstToken = (baseUrl: string) =>
  Effect.gen(function*() {
    const server = serverWithoutProcess(baseUrl, "synth-15M-q4_0")
    const req = { prompt: promptOfWords(200, 1), maxTokens: 64, gateTtftMs: 120_000, requestTimeoutMs: 120_000 }
    const over = yield* probeOnce(server, { ...req, overMs: 0 }).pipe(Effect.provide(FetchHttpClient.layer))
    assert.strictEqual(over.failure?._tag, "GateMissed")
    assert.deepInclude(over.failure, { gateTtftMs: 0, ttftMs: over.ttftMs })
    assert.strictEqual(over.completionTokens, 1)
    const whole = yield* probeOnce(server, req).pipe(Effect.provide(FetchHttpClient.layer))
    assert.isNull(whole.failure)
    assert.isAbove(whole.completionTokens, 1)
  })

describe("the pre-warm sizes the probe prompt with the provider's tokenizer (issue 14 part 4)", () => {
  it.scopedLive("D-1 P-1 embedded: the short requests and /tokenize, no full-length request, the prompt on the target; without counting, a full-length one too; N-2 a probe past its TTFT bound ends at its first token", () =>
    Effect.gen(function*() {
      const s = yield* spawnServe(["--model", tinyModelPath(), "--max-context", "600", "--threads", "1"])
      yield* waitReady(s, 120_000)
      yield* bothWays(s.baseUrl)
      yield* endsAtFirstToken(s.baseUrl)
    }), 300_000)
  it.scopedLive("D-1 P-1 N-2 llama-server: the same, with its own /tokenize and chat template", () =>
    Effect.gen(function*() {
      const baseUrl = yield* llamaServer(tinyModelPath())
      yield* bothWays(baseUrl)
      yield* endsAtFirstToken(baseUrl)
    }), 300_000)
  it.scopedLive("D-1 P-1 F-4 llama-server as a router (--models-preset): its /tokenize needs the model's id, which the pre-warm sends; the same sizing", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "prewarm-router-"))),
        (d) => Effect.sync(() => Fs.rmSync(d, { recursive: true, force: true }))
      )
      const baseUrl = yield* llamaServer(tinyModelPath(), dir)
      // A router answers /tokenize only for a named model (without one: 400, and the pre-warm would fall back to fitting).
      const unnamed = yield* Effect.promise(() =>
        fetch(`${baseUrl}/tokenize`, { method: "POST", body: JSON.stringify({ content: "hello world", add_special: false }) }).then((r) => r.status)
      )
      assert.strictEqual(unnamed, 400)
      yield* bothWays(baseUrl)
    }), 300_000)
})
