import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { boundedLines, MAX_SSE_LINE, parseSseLine, sseChunks } from "../../src/domain/SseStream.js"

const enc = new TextEncoder()
const bodyOf = (...parts: Array<string>) => Stream.fromIterable(parts.map((p) => enc.encode(p)))
const texts = (...parts: Array<string>) =>
  sseChunks(bodyOf(...parts)).pipe(
    Stream.runCollect,
    Effect.map((c) => Chunk.toReadonlyArray(c).filter((x) => !x.done).map((x) => x.text))
  )

describe("SSE reader (SPEC P-3)", () => {
  it.effect("P-3 reads chat deltas choices[0].delta.content and ends on [DONE]", () =>
    Effect.gen(function*() {
      const out = yield* texts(
        `data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n`,
        `data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n`,
        `data: {"choices":[{"delta":{"content":"lo"}}]}\n\n`,
        `data: [DONE]\n\n`,
        `data: {"choices":[{"delta":{"content":"after done"}}]}\n\n`
      )
      expect(out.filter((t) => t !== "")).toEqual(["Hel", "lo"])
    }))

  it.effect("P-3 reads completions chunks choices[0].text", () =>
    Effect.gen(function*() {
      const out = yield* texts(`data: {"choices":[{"text":"a"}]}\n`, `data: {"choices":[{"text":"b"}]}\n`, "data: [DONE]\n")
      expect(out).toEqual(["a", "b"])
    }))

  it.effect("P-3 skips keep-alive comments, other fields and malformed payloads", () =>
    Effect.gen(function*() {
      const out = yield* texts(
        ": keep-alive\n\n",
        "event: message\nid: 7\n",
        "data: {not json\n\n",
        `data: {"choices":"wrong shape"}\n\n`,
        `data: {"choices":[{"delta":{"content":"ok"}}]}\n\n`,
        "data: [DONE]\n\n"
      )
      expect(out).toEqual(["ok"])
    }))

  it.effect("P-3 [DONE] is reported as a last chunk with done = true; an early end has none", () =>
    Effect.gen(function*() {
      const done = yield* sseChunks(bodyOf(`data: {"choices":[{"text":"a"}]}\n`, "data: [DONE]\n")).pipe(Stream.runCollect)
      expect(Chunk.toReadonlyArray(done).map((c) => c.done)).toEqual([false, true])
      const early = yield* sseChunks(bodyOf(`data: {"choices":[{"text":"a"}]}\n`)).pipe(Stream.runCollect)
      expect(Chunk.toReadonlyArray(early).map((c) => c.done)).toEqual([false])
    }))

  it.effect("P-3 ends at stream end without [DONE] (early end) and keeps what came", () =>
    Effect.gen(function*() {
      const out = yield* texts(`data: {"choices":[{"delta":{"content":"x"}}]}\n`)
      expect(out).toEqual(["x"])
    }))

  it.effect("P-3 reassembles a line split across network chunks, CRLF included", () =>
    Effect.gen(function*() {
      const out = yield* texts(`data: {"choices":[{"del`, `ta":{"content":"split"}}]}\r\n\r\n`, "data: [DO", "NE]\r\n")
      expect(out).toEqual(["split"])
    }))

  it.effect("P-2 the last chunk's usage and llama-server timings are read", () =>
    Effect.gen(function*() {
      const chunks = yield* sseChunks(bodyOf(
        `data: {"choices":[{"delta":{}}],"usage":{"prompt_tokens":512,"completion_tokens":64,"total_tokens":576},` +
          `"timings":{"prompt_n":512,"prompt_ms":568.6,"prompt_per_second":900.5,"predicted_n":64,"predicted_ms":1143.4,"predicted_per_second":55.1}}\n\n`
      )).pipe(Stream.runCollect)
      const last = Chunk.unsafeLast(chunks)
      expect(last.usage).toEqual({ promptTokens: 512, completionTokens: 64 })
      expect(last.timings).toEqual({
        promptN: 512, promptPerSecond: 900.5, predictedPerSecond: 55.1, promptMs: 568.6, predictedMs: 1143.4, predictedN: 64
      })
    }))

  it.effect("P-3 a bare CR ends a line too (WHATWG SSE), also split across network chunks", () =>
    Effect.gen(function*() {
      const lines = yield* Stream.runCollect(boundedLines(Stream.make("a\rb\r", "\nc\n", "d")))
      // "b\r" + "\nc": CR then LF in the next chunk leaves one blank line, which the reader skips.
      expect(Chunk.toArray(lines).filter((l) => l !== "")).toEqual(["a", "b", "c", "d"])
    }))

  it.effect("P-3 a line over 1 MiB fails the stream with SseLineTooLong (never unbounded memory), finished or not", () =>
    Effect.gen(function*() {
      const open = yield* Effect.flip(Stream.runDrain(boundedLines(Stream.make("data: ", "x".repeat(MAX_SSE_LINE)))))
      expect(open._tag).toBe("SseLineTooLong")
      expect(open.message).toMatch(/more than \d+ characters without an end/)
      const whole = yield* Effect.flip(Stream.runDrain(boundedLines(Stream.make(`${"y".repeat(MAX_SSE_LINE + 1)}\n`))))
      expect(whole._tag).toBe("SseLineTooLong")
      const fine = yield* Stream.runCollect(boundedLines(Stream.make(`${"z".repeat(MAX_SSE_LINE)}\n`)))
      expect(Chunk.toArray(fine)[0]!.length).toBe(MAX_SSE_LINE)
    }))

  it("P-3 classifies single lines", () => {
    expect(parseSseLine(": ping")._tag).toBe("Skip")
    expect(parseSseLine("")._tag).toBe("Skip")
    expect(parseSseLine("data:[DONE]")._tag).toBe("Done")
    expect(parseSseLine("data: null")._tag).toBe("Skip")
    const c = parseSseLine(`data:{"choices":[{"delta":{"content":null}}]}`)
    expect(c).toEqual({ _tag: "Chunk", chunk: { text: "", usage: null, timings: null, error: null, done: false } })
    const e = parseSseLine(`data: {"error":{"message":"out of memory","code":500}}`)
    expect(e).toEqual({ _tag: "Chunk", chunk: { text: "", usage: null, timings: null, error: "out of memory", done: false } })
  })
})
