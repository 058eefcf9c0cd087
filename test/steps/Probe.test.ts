import { HttpClient, HttpClientResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, TestClock } from "effect"
import type { ProcessExit, RunningServer } from "../../src/domain/RunningServer.js"
import { probeOnce } from "../../src/steps/Probe.js"
import { clockedSseResponse, deltaData, usageData } from "../support/clockedSse.js"
import { notesOf, Verdict } from "../../src/domain/Verdict.js"

const enc = new TextEncoder()

/** An HttpClient whose responses stream `chunks` (SSE lines) and then, if `hang`, never end. */
const clientStreaming = (chunks: ReadonlyArray<string>, hang: boolean) =>
  Layer.succeed(
    HttpClient.HttpClient,
    HttpClient.make((request) =>
      Effect.succeed(HttpClientResponse.fromWeb(
        request,
        new Response(
          new ReadableStream<Uint8Array>({
            start(controller) {
              for (const c of chunks) controller.enqueue(enc.encode(c))
              if (!hang) controller.close()
            }
          }),
          { status: 200, headers: { "content-type": "text/event-stream" } }
        )
      ))
    )
  )

const serverWith = (exited: Effect.Effect<ProcessExit>): RunningServer => ({
  baseUrl: "http://127.0.0.1:9",
  port: 9,
  pid: 1,
  modelId: "m",
  logPath: "/dev/null",
  exited,
  outputTail: Effect.succeed("CUDA error: out of memory"),
  decided: Effect.void,
  residentBytes: Effect.succeed(null),
  exitedAfterReady: Effect.succeed(null)
})
const alive = serverWith(Effect.never)
const delta = (t: string) => `data: {"choices":[{"delta":{"content":"${t}"}}]}\n\n`
const req = { prompt: "hello", maxTokens: 8, gateTtftMs: 5_000, requestTimeoutMs: 60_000 }

describe("probe timing under TestClock (SPEC G-1, P-2)", () => {
  it.effect("G-1 a request without a first token is cut off at the TTFT gate, not waited out", () =>
    Effect.gen(function*() {
      const fiber = yield* probeOnce(alive, req).pipe(Effect.provide(clientStreaming([": keep-alive\n\n"], true)), Effect.fork)
      yield* TestClock.adjust("4999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const sample = yield* Fiber.join(fiber)
      expect(sample.failure).toEqual(Verdict.GateMissed({ phase: "probe", gateTtftMs: 5000, ttftMs: null }))
      expect(notesOf(sample.failure!)).toBe("TTFT > 5000 ms gate (no first token yet)")
      expect(sample.ttftMs).toBeNull()
      expect(sample.totalMs).toBe(5000)
    }))

  it.effect("G-1 a stream that stalls after its first token fails at the request timeout", () =>
    Effect.gen(function*() {
      const fiber = yield* probeOnce(alive, req).pipe(Effect.provide(clientStreaming([delta("a")], true)), Effect.fork)
      yield* TestClock.adjust("59 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      const sample = yield* Fiber.join(fiber)
      expect(sample.failure?._tag).toBe("RequestFailed")
      expect(notesOf(sample.failure!)).toBe("request timed out after 60000 ms")
      expect(sample.ttftMs).toBe(0)
    }))

  it.effect("G-1 the provider process dying mid-request fails it at once, with exit code and output tail", () =>
    Effect.gen(function*() {
      const died = yield* Deferred.make<ProcessExit>()
      const fiber = yield* probeOnce(serverWith(Deferred.await(died)), req).pipe(
        Effect.provide(clientStreaming([delta("a")], true)),
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      yield* Deferred.succeed(died, { code: 137, signal: null })
      const sample = yield* Fiber.join(fiber)
      expect(sample.failure?._tag).toBe("ProviderDied")
      expect(notesOf(sample.failure!)).toMatch(/^provider process died during the request \(exit code 137; possibly out of memory\): CUDA error/)
    }))

  it.effect("P-2 TTFT is start → first content delta; throughput = generated tokens (usage) ÷ (last − first token)", () =>
    Effect.gen(function*() {
      const client = Layer.succeed(HttpClient.HttpClient, HttpClient.make((request) =>
        clockedSseResponse(request, [
          { afterMs: 50, data: JSON.stringify({ choices: [{ delta: { role: "assistant" } }] }) },
          { afterMs: 150, data: deltaData("a") },
          { afterMs: 100, data: deltaData("b") },
          { afterMs: 100, data: deltaData("c") },
          { afterMs: 100, data: deltaData("d") },
          { afterMs: 0, data: usageData(5, 8) } // the server counted 8 tokens in 4 deltas
        ])))
      const fiber = yield* probeOnce(alive, req).pipe(Effect.provide(client), Effect.fork)
      yield* TestClock.adjust("1 second")
      const sample = yield* Fiber.join(fiber)
      expect(sample.failure).toBeNull()
      expect(sample.ttftMs).toBe(200) // the role-only chunk at 50 ms is not content
      expect(sample.promptTokens).toBe(5)
      expect(sample.completionTokens).toBe(8)
      expect(sample.tps).toBeCloseTo(8 / 0.3) // first token at 200 ms, last at 500 ms
      expect(sample.totalMs).toBe(500)
    }))

  /**
   * A reply whose 4 deltas (8 tokens) arrive `gapsMs` apart after `firstMs`, then usage with the provider's
   * decode time over `predictedN` tokens.
   */
  const replyWith = (gapsMs: number, predictedMs: number, predictedN: number | null = 8, firstMs = 200) =>
    Layer.succeed(HttpClient.HttpClient, HttpClient.make((request) =>
      clockedSseResponse(request, [
        { afterMs: firstMs, data: deltaData("a") },
        { afterMs: gapsMs, data: deltaData("b") },
        { afterMs: gapsMs, data: deltaData("c") },
        { afterMs: gapsMs, data: deltaData("d") },
        {
          afterMs: 0,
          data: JSON.stringify({ choices: [{ delta: {} }], usage: { prompt_tokens: 5, completion_tokens: 8 }, timings: { ...(predictedN === null ? {} : { predicted_n: predictedN }), predicted_ms: predictedMs } })
        }
      ])))

  it.effect("P-2 a reply read in one burst (the first token read late, this side without a core) is timed over the provider's own decode time, not the squeezed arrival window", () =>
    Effect.gen(function*() {
      // The provider made the tokens from 150 to 450 ms; this side read them all at 500 ms.
      const fiber = yield* probeOnce(alive, req).pipe(Effect.provide(replyWith(0, 300, 8, 500)), Effect.fork)
      yield* TestClock.adjust("1 second")
      const sample = yield* Fiber.join(fiber)
      expect(sample.failure).toBeNull()
      expect(sample.ttftMs).toBe(500)
      // Every token arrived at 500 ms: the arrival window is 0, the provider took 300 ms over them.
      expect(sample.tps).toBeCloseTo(8 / 0.3)
    }))

  it.effect("P-2 an arrival window longer than the provider's decode time, or short of it by less than the squeeze margin, is the throughput a client sees", () =>
    Effect.gen(function*() {
      for (const predictedMs of [120, 310, 333]) {
        const fiber = yield* probeOnce(alive, req).pipe(Effect.provide(replyWith(100, predictedMs)), Effect.fork)
        yield* TestClock.adjust("1 second")
        const sample = yield* Fiber.join(fiber)
        expect(sample.tps, `provider ${predictedMs} ms`).toBeCloseTo(8 / 0.3) // first token at 200 ms, last at 500 ms
      }
    }))

  it.effect("P-2 a provider's decode time that cannot be this reply's (longer than the request lasted, or over other tokens) is not taken", () =>
    Effect.gen(function*() {
      const run = (gapsMs: number, predictedMs: number, predictedN: number | null = 8) =>
        Effect.gen(function*() {
          const fiber = yield* probeOnce(alive, req).pipe(Effect.provide(replyWith(gapsMs, predictedMs, predictedN)), Effect.fork)
          yield* TestClock.adjust("1 second")
          return (yield* Fiber.join(fiber)).tps
        })
      // The request lasted 500 ms here: a decode of 900 ms (a cumulative or stale figure) is the arrival window's 300 ms.
      expect(yield* run(100, 900)).toBeCloseTo(8 / 0.3)
      // Over 20 tokens, not the reply's 8: the same.
      expect(yield* run(100, 400, 20)).toBeCloseTo(8 / 0.3)
      // A burst with no plausible figure has no time between its tokens: no throughput rather than an infinite one.
      expect(yield* run(0, 900)).toBeNull()
      // Within the request and over its tokens it is taken: the arrivals 300 ms, under 0.9 of 400 (and of 500, the whole request).
      expect(yield* run(100, 400)).toBeCloseTo(8 / 0.4)
      expect(yield* run(100, 500)).toBeCloseTo(8 / 0.5)
      // A provider that does not say how many tokens its time covers: taken too.
      expect(yield* run(100, 400, null)).toBeCloseTo(8 / 0.4)
    }))
})
