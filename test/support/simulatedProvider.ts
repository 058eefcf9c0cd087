/**
 * Stand-in services whose requests take simulated time (TestClock): provider
 * starts are instant and counted, chat completions stream on the test clock.
 * For deterministic budget tests (SPEC H-3) without real processes or sleeping.
 */
import { HttpClient, HttpClientResponse } from "@effect/platform"
import { Effect, Layer, Ref } from "effect"
import * as Os from "node:os"
import { macProvider } from "../../src/providers/MacProvider.js"
import { CandidateProvider, serverWithoutProcess, type StubEvent } from "../../src/services/CandidateProvider.js"
import { CpuMeter } from "../../src/services/CpuMeter.js"
import type { TrialSettings } from "../../src/steps/RunTrial.js"
import { clockedSseResponse, deltaData, usageData } from "./clockedSse.js"

/** Simulated seconds before the first token of one request, per model. */
export const ttftSeconds: Record<string, number> = { "slow-8b": 4, "fast-1b": 1 }

/** Simulated ms between tokens, per KV-cache setting: kv-bits 8 decodes fastest here. */
export const tokenGapMs: Record<string, number> = { unset: 100, "8": 50, "4": 80 }

/** Simulated chat-template tokens a request's `usage.prompt_tokens` counts beyond its text's, per model (default 5). */
export const templateTokens: Record<string, number> = {}

/** Simulated tokens of a text of n words, per model (default one a word). */
export const textTokens: Record<string, (words: number) => number> = {}

/** Models whose provider has no `/tokenize` route (404), and whose `/tokenize` counts every text as 0 tokens. */
export const noTokenize = new Set<string>()
export const zeroTokenize = new Set<string>()

/**
 * A provider whose chat completions stream up to 3 tokens: the first after
 * `ttftSeconds[model]`, the rest `tokenGapMs[kv]` apart, all in TestClock time;
 * a prompt counts `textTokens[model]` of its words, and the chat template
 * `templateTokens[model]` more. `POST /tokenize` counts a text at once (404 for
 * `noTokenize` models, 0 tokens for `zeroTokenize` ones).
 * The host name is `<model>.kv-<bits>`.
 */
export const fakeHttp = Layer.succeed(
  HttpClient.HttpClient,
  HttpClient.make((request, url) => {
    const [model, kv] = url.hostname.split(".kv-") as [string, string]
    const body = request.body._tag === "Uint8Array" ? JSON.parse(new TextDecoder().decode(request.body.body)) : {}
    const tokensOf = (text: unknown) => {
      const words = String(text ?? "").split(" ").length
      return textTokens[model]?.(words) ?? words
    }
    if (url.pathname === "/tokenize") {
      const n = zeroTokenize.has(model) ? 0 : tokensOf(body.content)
      const status = noTokenize.has(model) ? 404 : 200
      return Effect.succeed(HttpClientResponse.fromWeb(request, new Response(JSON.stringify({ tokens: Array.from({ length: n }, () => 1) }), { status })))
    }
    const promptTokens = tokensOf(body.messages?.[0]?.content) + (templateTokens[model] ?? 5)
    const n = Math.min(3, Number(body.max_tokens ?? 3))
    return clockedSseResponse(request, [
      ...Array.from({ length: n }, (_, i) => ({
        afterMs: i === 0 ? ttftSeconds[model]! * 1000 : tokenGapMs[kv]!,
        data: deltaData(`t${i}`)
      })),
      { afterMs: 0, data: usageData(promptTokens, n) }
    ])
  })
)

/**
 * Provider starts are instant (`CandidateProvider.Stub`): each answers at
 * `http://<model>.kv-<bits>` (fakeHttp's host); every start and stop goes to `journal`.
 * With a quiet CpuMeter (no background load).
 */
export const fakeProvider = (journal: Ref.Ref<ReadonlyArray<StubEvent>>) =>
  Layer.merge(
    CandidateProvider.Stub(
      (o) => Effect.succeed(serverWithoutProcess(`http://${o.spec.model}.kv-${o.spec.knobs.kvBits ?? "unset"}`, o.spec.model)),
      journal
    ),
    // A quiet machine: the guard (SPEC N-3) sees no other process.
    CpuMeter.Stub(() => 0)
  )

/** How many `Start` and `Stop` events a stub journal holds. */
export const startsAndStops = (events: ReadonlyArray<StubEvent>) => ({
  started: events.filter((e) => e._tag === "Start").length,
  stopped: events.filter((e) => e._tag === "Stop").length
})


/** Trial settings for the simulated provider: 100-token prompts, 3-token replies, generous timeouts, no estimate. */
export const simulatedSettings: TrialSettings = {
  adapter: macProvider("fake"),
  targetContext: 100,
  maxTokens: 3,
  replyTokens: 3,
  gateTtftMs: 60_000,
  requestTimeoutMs: 300_000,
  readyTimeoutMs: 300_000,
  logDir: Os.tmpdir(), // a stand-in provider writes no log there
  estimate: false,
  memoryLimitGiB: null,
  maxBackgroundCores: null
}
