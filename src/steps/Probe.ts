/**
 * The probe (SPEC P-1..P-3, G-1): one streaming chat completion sent to a
 * started provider and measured: TTFT, decode rate, what the server reported,
 * or why it failed.
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Clock, Effect, Ref, Stream } from "effect"
import { exitText, type RunningServer } from "../domain/RunningServer.js"
import { median, percentile } from "../domain/Stats.js"
import { type ServerTimings, sseChunks, type Usage } from "../domain/SseStream.js"
import type { ProbeSample } from "../domain/Trial.js"
import { type ProbeFailure, Verdict } from "../domain/Verdict.js"

/** One probe request's parameters (SPEC P-1). */
export interface ProbeRequest {
  /** Prompt text (already padded to the target context). */
  readonly prompt: string
  /** Fixed `max_tokens` of the reply. */
  readonly maxTokens: number
  /** TTFT gate (SPEC G-1), ms: a request still without a first token at this point is cut off. */
  readonly gateTtftMs: number
  /** Whole-request cap, ms; a request over it fails its trial, not the run. */
  readonly requestTimeoutMs: number
  /**
   * A first token later than this, ms (meant to be under `gateTtftMs`), ends the request
   * at once as a GateMissed naming this bound, with its TTFT: only whether it
   * was over is asked of it (Stage 1's first probe bounded wider than its
   * cut-off, RunTrial, issue 14). Absent: a reply is read to its end.
   */
  readonly overMs?: number
}

/** The longest reply text kept, in characters (4 MiB): far beyond any `max_tokens` a probe asks for. */
export const MAX_REPLY_CHARS = 4 * 1024 * 1024

/** Special tokens whose text in a reply means the provider leaked a stop token (SPEC G-1). */
export const STOP_TOKENS = ["<|eot_id|>", "<|end_of_text|>", "</s>", "<|im_end|>", "<|endoftext|>", "<|end|>", "<end_of_turn>"]

const nowMs = Clock.currentTimeNanos.pipe(Effect.map((n) => Number(n) / 1e6))

const excerpt = (s: string) => s.replace(/\s+/g, " ").trim().slice(0, 200)

/** The message of an OpenAI-style error body (`{"error":{"message":…}}`), else the body itself. */
const errorMessage = (body: string): string => {
  try {
    const m = (JSON.parse(body) as { error?: { message?: unknown } }).error?.message
    return typeof m === "string" ? m : body
  } catch {
    return body
  }
}

/** A failed request, carried on the error channel until the sample is built. */
class Failed {
  readonly _tag = "Failed"
  constructor(readonly failure: ProbeFailure) {}
}

const requestFailed = (detail: string, status: number | null = null) =>
  new Failed(Verdict.RequestFailed({ phase: "probe", detail, status }))

/**
 * An arrival window shorter than this fraction of the provider's own decode time was squeezed on the
 * tuner's side (`throughput`). Where nothing delays the reading the two agree within about 0.5 %
 * (llama-server: the arrival window 0.2–0.4 % shorter, three benches on 2 cores, 2026-12-07); the squeezed
 * windows seen were 9 % and 62 % of the provider's time (2026-12-08, 15M at 2 threads). Below 1 by a margin so
 * that the arrival window, P-2's own measure, stays the figure wherever nothing squeezed it.
 */
export const SQUEEZED_BELOW = 0.9

/**
 * How `throughput` takes a request's throughput, in a run's identity (SPEC R-1 `policy.throughput`):
 * built from SQUEEZED_BELOW, and changed whenever the rule changes, so a resume does not replay trials measured otherwise.
 */
export const THROUGHPUT_POLICY = `tokens over the arrival window, or the provider's plausible predicted_ms where the arrivals were squeezed below ${SQUEEZED_BELOW} of it`

/**
 * A request's throughput, tokens/s (SPEC P-2 as docs/SPEC.md extends it): `n` generated tokens ÷ the
 * time from the first content token's arrival to the last's (`firstMs`, `lastMs`, ms on the clock of the
 * request's start `startMs`) — P-2's measure — unless that window is shorter than SQUEEZED_BELOW × the
 * provider's own time from its first token to its last (`server`: `timings.predicted_ms`, as llama-server
 * and the embedded provider report it); then ÷ the provider's time. Tokens cannot leave a provider faster
 * than it makes them, so such a reply was read late on this side, in a burst (this process without a
 * core while the candidate's threads held both; 2 cores, 15M at 2 threads, 2026-12-08: one of three
 * replicates read 90 301 tok/s, its 64 tokens in 5 ms, the provider's 1 119, and the replicate's 95 %
 * interval, N-1, with it). The provider's figure is taken only where it is plausible: over the same
 * tokens (`predicted_n` equal to `n`, where reported) and positive, no longer than the request has
 * lasted here (`lastMs − startMs`). Null with fewer than 2 tokens or no time between them.
 */
export const throughput = (
  n: number,
  startMs: number,
  firstMs: number | null,
  lastMs: number | null,
  server: ServerTimings | null
): number | null => {
  if (firstMs === null || lastMs === null || n < 2) return null
  const decodeMs = server?.predictedMs ?? null
  const plausible = decodeMs !== null && decodeMs > 0 && decodeMs <= lastMs - startMs &&
    (server?.predictedN == null || server.predictedN === n)
  const arrivals = lastMs - firstMs
  const window = plausible && arrivals < SQUEEZED_BELOW * decodeMs ? decodeMs : arrivals
  return window > 0 ? (n * 1000) / window : null
}

/**
 * Sends one streaming chat completion to `server` and measures it (SPEC P-1..P-3, G-1).
 * Never fails: every failure becomes a sample with a `failure` (domain/Verdict.ts) —
 * RequestFailed for a non-2xx answer ("HTTP 503: …"), a request error, a request timeout,
 * a stream with no content, a stream cut short (neither `[DONE]` nor `usage`) or an error
 * payload in the stream; ProviderDied for the provider's death during the request (with
 * its exit code and output tail); GateMissed for a TTFT over the gate (cut off at the gate,
 * not waited out), or a first token past `overMs` (the request ended there: no usage, no
 * server timings; the provider stops its reply within about one decode step, which a
 * next request may wait for); StopTokenLeak for a special token in the reply. The
 * sample carries the inter-token latencies' median and p95 (ms, from the
 * arrival times of successive content deltas; SPEC C-1).
 */
export const probeOnce = (server: RunningServer, req: ProbeRequest): Effect.Effect<ProbeSample, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const start = yield* nowMs
    const first = yield* Ref.make<number | null>(null)
    const last = yield* Ref.make<number | null>(null)
    const deltas = yield* Ref.make(0)
    // Gaps between successive content deltas as they arrived (SPEC C-1's inter-token latency), ms.
    const gaps: Array<number> = []
    const text = yield* Ref.make("")
    const usage = yield* Ref.make<Usage | null>(null)
    const timings = yield* Ref.make<ServerTimings | null>(null)
    const complete = yield* Ref.make(false)

    const brokenConnection = (reason: string) =>
      server.exited.pipe(
        Effect.timeout("1 second"),
        Effect.matchEffect({ onFailure: () => Effect.fail(requestFailed(reason)), onSuccess: () => death })
      )
    const death: Effect.Effect<never, Failed> = server.exited.pipe(Effect.flatMap((x) =>
      Effect.gen(function*() {
        const tail = yield* server.outputTail
        return yield* Effect.fail(
          new Failed(Verdict.ProviderDied({ phase: "probe", exit: exitText(x), tail: tail ? excerpt(tail) : "" }))
        )
      })
    ))
    const body = {
      model: server.modelId,
      messages: [{ role: "user", content: req.prompt }],
      max_tokens: req.maxTokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true }
    }
    const request = Effect.gen(function*() {
      const res = yield* client.execute(
        HttpClientRequest.post(`${server.baseUrl}/v1/chat/completions`).pipe(HttpClientRequest.bodyUnsafeJson(body))
      )
      if (res.status < 200 || res.status >= 300) {
        const t = yield* res.text.pipe(Effect.orElseSucceed(() => ""))
        return yield* Effect.fail(requestFailed(`HTTP ${res.status}${t ? `: ${excerpt(errorMessage(t))}` : ""}`, res.status))
      }
      yield* sseChunks(res.stream).pipe(Stream.runForEach((c) =>
        Effect.gen(function*() {
          if (c.error !== null) return yield* Effect.fail(requestFailed(`provider error in the stream: ${excerpt(c.error)}`))
          if (c.done) yield* Ref.set(complete, true)
          if (c.usage) yield* Ref.set(usage, c.usage)
          if (c.timings) yield* Ref.set(timings, c.timings)
          if (c.text.length > 0) {
            const t = yield* nowMs
            const before = yield* Ref.get(last)
            if (before !== null) gaps.push(t - before)
            const isFirst = (yield* Ref.get(first)) === null
            if (isFirst) yield* Ref.set(first, t)
            yield* Ref.set(last, t)
            yield* Ref.update(deltas, (n) => n + 1)
            // Past the TTFT asked of it: the request has given its answer, nothing after it is measured.
            if (isFirst && req.overMs !== undefined && t - start > req.overMs) {
              return yield* Effect.fail(new Failed(Verdict.GateMissed({ phase: "probe", gateTtftMs: req.overMs, ttftMs: t - start })))
            }
            // The reply is read for stop tokens only: a provider that streams without end fails
            // the request at MAX_REPLY_CHARS, never the run's memory.
            const sofar = yield* Ref.updateAndGet(text, (s) => s + c.text)
            if (sofar.length > MAX_REPLY_CHARS) {
              return yield* Effect.fail(requestFailed(`the reply grew past ${MAX_REPLY_CHARS} characters (max_tokens ${req.maxTokens} ignored?)`))
            }
          }
        })
      ))
    }).pipe(
      // A broken connection is usually the provider dying (OOM): give its exit
      // event a moment to arrive so the reason says so, with its exit code.
      Effect.catchTags({
        RequestError: (e) => brokenConnection(`request error: ${e.message}`),
        ResponseError: (e) => brokenConnection(`response error: ${e.message}`),
        SseLineTooLong: (e) => Effect.fail(requestFailed(e.message))
      })
    )

    // Cut off at the gate when no first token has come (G-1): waiting longer can't make it feasible.
    const gateWatch = Effect.sleep(`${req.gateTtftMs} millis`).pipe(
      Effect.zipRight(Ref.get(first)),
      Effect.flatMap((f) =>
        f === null
          ? Effect.fail(new Failed(Verdict.GateMissed({ phase: "probe", gateTtftMs: req.gateTtftMs, ttftMs: null })))
          : Effect.never
      )
    )
    const outcome = yield* request.pipe(
      Effect.raceFirst(gateWatch),
      Effect.raceFirst(death),
      Effect.timeoutFail({
        duration: `${req.requestTimeoutMs} millis`,
        onTimeout: () => requestFailed(`request timed out after ${req.requestTimeoutMs} ms`)
      }),
      Effect.either
    )
    const end = yield* nowMs
    const f = yield* Ref.get(first)
    const l = yield* Ref.get(last)
    const u = yield* Ref.get(usage)
    const n = u?.completionTokens ?? (yield* Ref.get(deltas))
    const out = yield* Ref.get(text)
    const ttftMs = f === null ? null : f - start
    const tps = throughput(n, start, f, l, yield* Ref.get(timings))
    const leaked = STOP_TOKENS.find((s) => out.includes(s))
    const failure: ProbeFailure | null = outcome._tag === "Left"
      ? outcome.left.failure
      : f === null
      ? Verdict.RequestFailed({ phase: "probe", detail: "stream ended without any content", status: null })
      : !(yield* Ref.get(complete)) && u === null
      ? Verdict.RequestFailed({ phase: "probe", detail: `stream ended early: no [DONE] and no usage after ${n} token(s)`, status: null })
      : ttftMs !== null && ttftMs > req.gateTtftMs
      ? Verdict.GateMissed({ phase: "probe", gateTtftMs: req.gateTtftMs, ttftMs })
      : leaked !== undefined
      ? Verdict.StopTokenLeak({ phase: "probe", token: leaked })
      : null
    return {
      failure,
      ttftMs,
      tps,
      promptTokens: u?.promptTokens ?? null,
      completionTokens: n,
      totalMs: end - start,
      serverTimings: yield* Ref.get(timings),
      itlP50Ms: median(gaps),
      itlP95Ms: percentile(gaps, 95)
    } satisfies ProbeSample
  })
