/**
 * Streaming HTTP responses whose chunks arrive in TestClock time: a forked
 * fiber sleeps between chunks and feeds a web ReadableStream, so the code under
 * test measures TTFT and throughput against the test clock.
 */
import { type HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { Effect } from "effect"

/** One SSE payload (`data:` value) sent `afterMs` after the previous one (or the request). */
export interface TimedEvent {
  readonly afterMs: number
  readonly data: string
}

/** An SSE chat delta payload. */
export const deltaData = (text: string) => JSON.stringify({ choices: [{ delta: { content: text } }] })

/** The last payload: usage with prompt and completion tokens. */
export const usageData = (promptTokens: number, completionTokens: number) =>
  JSON.stringify({ choices: [{ delta: {} }], usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens } })

/** A 200 `text/event-stream` response that sends `events` on the test clock, then `[DONE]`. */
export const clockedSseResponse = (request: HttpClientRequest.HttpClientRequest, events: ReadonlyArray<TimedEvent>) =>
  Effect.gen(function*() {
    const enc = new TextEncoder()
    let controller!: ReadableStreamDefaultController<Uint8Array>
    const stream = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) })
    const send = (data: string) => Effect.sync(() => controller.enqueue(enc.encode(`data: ${data}\n\n`)))
    yield* Effect.forkDaemon(Effect.gen(function*() {
      for (const e of events) {
        if (e.afterMs > 0) yield* Effect.sleep(`${e.afterMs} millis`)
        yield* send(e.data)
      }
      yield* send("[DONE]")
      yield* Effect.sync(() => controller.close())
    }))
    return HttpClientResponse.fromWeb(request, new Response(stream, { status: 200 }))
  })
