/**
 * `autotune serve`: the embedded provider, an OpenAI-compatible HTTP server over
 * node-llama-cpp (SPEC E-5). Routes: `GET /v1/models`, `POST /v1/chat/completions`
 * (JSON or SSE), `GET /health`, `POST /tokenize` (llama-server compatible).
 */
import { Cause, Deferred, Effect, Either, Option, ParseResult, Schedule, Schema, type Scope } from "effect"
import type * as http from "node:http"
import { randomUUID } from "node:crypto"
import { ServeFailed } from "../domain/AutotuneError.js"
import type { KvBits } from "../domain/Knobs.js"
import { DEFAULT_STREAM_INTERVAL_MS } from "../domain/StreamInterval.js"
import { holdSignals } from "../system/HoldSignals.js"
import { leadsOwnGroup, pidAlive } from "../system/Pids.js"
import { type Engine, makeEngine } from "./Engine.js"
import { type BodyReadFailed, listen, readBody, sendJson } from "./HttpServer.js"
import { makeSseWriter } from "./SseWriter.js"
import { threadpoolText } from "./ThreadpoolShim.js"
import {
  ChatRequest,
  chunk,
  completion,
  type CompletionIds,
  errorBody,
  modelList,
  renderPrompt,
  stopStrings,
  TokenizeRequest,
  type Usage
} from "./OpenAi.js"

/** Options of `autotune serve` (same surface as `macprovider-cli serve`, SPEC E-5). */
export interface ServeOptions {
  readonly modelPath: string
  readonly port: number
  readonly host: string
  readonly kvBits: Option.Option<NonNullable<KvBits>>
  readonly maxContext: Option.Option<number>
  readonly maxBatch: number
  readonly threads: Option.Option<number>
  /** Flash attention on (true) or off (false); None or absent = `auto`. Off with a quantized KV cache is refused before (`serveOptionsOf`). */
  readonly flashAttn?: Option.Option<boolean>
  /** Least time between two socket writes of a stream's content deltas, ms (SseWriter.ts); absent = DEFAULT_STREAM_INTERVAL_MS, 0 = every token as it comes. */
  readonly streamIntervalMs?: number
}


/** Largest accepted request body (bytes). */
const BODY_LIMIT_BYTES = 16 * 1024 * 1024

/** A request that is answered with an OpenAI-style error body. Internal to serve. */
class HttpError extends Schema.TaggedError<HttpError>()("HttpError", {
  status: Schema.Number,
  message: Schema.String,
  code: Schema.NullOr(Schema.String)
}) {}

const badRequest = (message: string, code: string | null = null) => new HttpError({ status: 400, message, code })

/** Reads and decodes a JSON body with `schema`; 400 on malformed JSON or a schema mismatch. */
const decodeBody = <A, I>(req: http.IncomingMessage, schema: Schema.Schema<A, I>): Effect.Effect<A, HttpError> =>
  readBody(req, BODY_LIMIT_BYTES).pipe(
    Effect.mapError((e: BodyReadFailed) => new HttpError({ status: e.status, message: e.message, code: null })),
    Effect.flatMap((text) =>
      Effect.try({ try: () => JSON.parse(text) as unknown, catch: (e) => badRequest(`invalid JSON body: ${(e as Error).message}`) })
    ),
    Effect.flatMap((json) =>
      Schema.decodeUnknown(schema)(json, { onExcessProperty: "ignore" }).pipe(
        Effect.mapError((e) =>
          badRequest(
            ParseResult.ArrayFormatter.formatErrorSync(e)
              .map((i) => `${i.path.length > 0 ? i.path.join(".") : "body"}: ${i.message}`)
              .join("; ")
          )
        )
      )
    )
  )

/**
 * `POST /v1/chat/completions`. Renders the fixed template, tokenizes with BOS,
 * refuses (400 `context_length_exceeded`) when prompt + max_tokens exceed the
 * per-sequence context instead of letting node-llama-cpp truncate the front
 * (STACK.md), then generates on a free sequence.
 */
const chatCompletions = (engine: Engine, req: http.IncomingMessage, res: http.ServerResponse, streamIntervalMs: number) =>
  Effect.gen(function*() {
    const body = yield* decodeBody(req, ChatRequest)
    const prompt = engine.tokenize(renderPrompt(body.messages), true)
    const room = engine.contextLimit - prompt.length
    const asked = body.max_tokens ?? body.max_completion_tokens ?? undefined
    if (room < 1 || (asked !== undefined && asked > room)) {
      const what = asked === undefined ? `prompt (${prompt.length} tokens)` : `prompt (${prompt.length} tokens) + max_tokens (${asked})`
      return yield* badRequest(
        `${what} exceeds the context of ${engine.contextLimit} tokens per sequence`,
        "context_length_exceeded"
      )
    }
    const maxTokens = asked ?? room
    const ids: CompletionIds = {
      id: `chatcmpl-${randomUUID().replaceAll("-", "").slice(0, 24)}`,
      created: Math.floor(Date.now() / 1000),
      model: engine.modelId
    }
    const generateRequest = {
      prompt,
      maxTokens,
      temperature: body.temperature ?? 0,
      seed: body.seed ?? undefined,
      stops: stopStrings(body.stop)
    }
    const usageOf = (completionTokens: number): Usage => ({
      prompt_tokens: prompt.length,
      completion_tokens: completionTokens,
      total_tokens: prompt.length + completionTokens
    })

    if (body.stream !== true) {
      const r = yield* engine.generate(generateRequest, () => Effect.void)
      return yield* sendJson(res, 200, completion(ids, r.text, r.finishReason, usageOf(r.completionTokens), r.timings))
    }

    yield* Effect.sync(() => {
      res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache", Connection: "keep-alive" })
      res.flushHeaders()
    })
    const sse = makeSseWriter(res, streamIntervalMs)
    const event = (data: unknown) => Effect.sync(() => sse.event(data))
    yield* event(chunk(ids, { role: "assistant" }))
    const r = yield* Effect.either(engine.generate(
      generateRequest,
      (text) => Effect.sync(() => sse.content(chunk(ids, { content: text }), text !== "")),
      Effect.sync(() => sse.flush())
    ))
    if (Either.isRight(r)) {
      const { completionTokens, finishReason, timings } = r.right
      yield* event(chunk(ids, {}, { finishReason, usage: usageOf(completionTokens), timings }))
    } else {
      // Headers are sent: a failure can only be reported in the stream.
      yield* Effect.logError(r.left.message)
      yield* event(errorBody(500, r.left.message))
    }
    yield* event("[DONE]")
    yield* Effect.sync(() => res.end())
  })

/** `POST /tokenize`: `{content, add_special?}` → `{tokens}` (llama-server compatible), to size prompts in tokens. */
const tokenizeRoute = (engine: Engine, req: http.IncomingMessage, res: http.ServerResponse) =>
  decodeBody(req, TokenizeRequest).pipe(
    Effect.flatMap((b) => sendJson(res, 200, { tokens: engine.tokenize(b.content, b.add_special) }))
  )

/** Routes one request; every failure becomes an OpenAI-style error response (or ends a started stream). */
const handle = (engine: Engine, streamIntervalMs: number) => (req: http.IncomingMessage, res: http.ServerResponse): Effect.Effect<void> => {
  const url = new URL(req.url ?? "/", "http://localhost")
  const route = `${req.method ?? "GET"} ${url.pathname.replace(/\/+$/, "") || "/"}`
  const routed: Effect.Effect<void, HttpError> = (() => {
    switch (route) {
      case "GET /v1/models":
        return sendJson(res, 200, modelList(engine.modelId))
      case "GET /health":
        return sendJson(res, 200, { status: "ok" })
      case "POST /v1/chat/completions":
        return chatCompletions(engine, req, res, streamIntervalMs).pipe(
          Effect.catchTag("GenerateFailed", (e) => new HttpError({ status: 500, message: e.message, code: null }))
        )
      case "POST /tokenize":
        return tokenizeRoute(engine, req, res)
      default:
        return new HttpError({ status: 404, message: `no route for ${req.method} ${url.pathname}`, code: "not_found" })
    }
  })()
  return routed.pipe(
    Effect.catchTag("HttpError", (e) => sendJson(res, e.status, errorBody(e.status, e.message, e.code))),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.sync(() => res.destroyed || res.writableEnded || res.destroy())
        : Effect.logError("request failed", cause).pipe(
          Effect.zipRight(
            res.headersSent ? Effect.sync(() => res.destroy()) : sendJson(res, 500, errorBody(500, "internal server error"))
          )
        )
    )
  )
}

/**
 * Answers every request with 503 "loading" until `ready` holds an engine, then
 * routes to it: one server, bound once, before the model loads (so its port is
 * never taken between a check and the real bind).
 */
const whenReady = (ready: Deferred.Deferred<Engine>, streamIntervalMs: number) =>
(req: http.IncomingMessage, res: http.ServerResponse): Effect.Effect<void> =>
  Effect.flatMap(Deferred.poll(ready), (loaded) =>
    Option.match(loaded, {
      onNone: () => sendJson(res, 503, errorBody(503, "loading the model", "loading")),
      onSome: (engine) => Effect.flatMap(engine, (e) => handle(e, streamIntervalMs)(req, res))
    }))

/**
 * Runs the embedded provider until interrupted: binds `host:port` first (a busy
 * port fails at once, before any time goes into the model), answering 503
 * "loading" while it loads the model and creates the context; then `GET
 * /v1/models` answers 200 (ready, SPEC E-4) and it logs `listening on
 * http://HOST:PORT` to stderr. From the start it watches the tuner that started
 * it (`$AUTOTUNE_PARENT_PID`): gone, it stops, its own process group with it
 * when it leads one (SPEC L-1). Never succeeds; on interruption (SIGTERM/SIGINT
 * via runMain) it closes the server, stops generations and disposes the
 * context, model and Llama.
 * Fails: ServeFailed (exit 1) when the model file is missing or cannot load,
 * the context cannot be created (message carries the llama.cpp log tail), the
 * port cannot be bound, or the tuner is gone.
 */
export const serve = (o: ServeOptions): Effect.Effect<never, ServeFailed, Scope.Scope> =>
  Effect.gen(function*() {
    yield* holdSignals
    let served = false
    // Runs last (finalizers run in reverse), after the context, model and Llama are disposed.
    yield* Effect.addFinalizer(() =>
      served ? Effect.logInfo("stopped: context, model and llama.cpp released") : Effect.void
    )
    const ready = yield* Deferred.make<Engine>()
    yield* listen(o.host, o.port, whenReady(ready, o.streamIntervalMs ?? DEFAULT_STREAM_INTERVAL_MS))
    return yield* Effect.raceFirst(
      Effect.gen(function*() {
        const engine = yield* makeEngine(o)
        // bin/autotune.js sets it to 1 for serve (issue 14): at 4, decode at 2 threads on 2 cores collapses.
        const pool = process.env["UV_THREADPOOL_SIZE"]
        yield* Effect.logInfo(
          `loaded ${engine.modelId} in ${Math.round(engine.loadMs)} ms: context ${engine.contextLimit} tokens/sequence ` +
            `(allocated ${engine.allocatedContext}) × ${o.maxBatch} sequences, KV ${engine.kvCacheType}, ${engine.threads} threads, ` +
            `flash attention ${engine.flashAttn === "auto" ? "auto" : engine.flashAttn ? "on" : "off"}, ` +
            `libuv pool ${pool ?? "4 (default)"}, ${threadpoolText(engine.threadpool)}`
        )
        if (pool !== "1") {
          yield* Effect.logWarning(
            "libuv's thread pool is not 1 thread: start serve through bin/autotune.js (the `autotune` command), " +
              "which sets UV_THREADPOOL_SIZE=1 before the pool starts; otherwise decode at 2 or more threads can " +
              "run at a fraction of the hardware's speed (issue 14)"
          )
        }
        yield* Effect.addFinalizer(() => Effect.logInfo("shutting down: closing the server, disposing the model"))
        yield* Deferred.succeed(ready, engine)
        const shownHost = o.host.includes(":") ? `[${o.host}]` : o.host
        served = true
        yield* Effect.logInfo(`listening on http://${shownHost}:${o.port}`)
        return yield* Effect.never
      }),
      parentGone
    )
  })

/**
 * Fails when the process named by `$AUTOTUNE_PARENT_PID` is gone (checked each
 * second), else never completes. The tuner sets it for the candidate providers
 * it starts, so a provider cannot outlive a tuner that was SIGKILLed or crashed
 * (SPEC §2), where no finalizer of the tuner could run.
 */
const parentGone: Effect.Effect<never, ServeFailed> = (() => {
  const pid = Number(process.env["AUTOTUNE_PARENT_PID"])
  if (!Number.isInteger(pid) || pid <= 1) return Effect.never
  // A direct child is re-parented the moment its parent dies, so a changed
  // ppid is the sure sign (a zombie or a reused pid still answers kill 0).
  const startPpid = process.ppid
  const alive = Effect.sync(() => {
    if (startPpid === pid && process.ppid !== pid) return false
    return pidAlive(pid)
  })
  return alive.pipe(
    Effect.repeat({ schedule: Schedule.spaced("1 second"), while: (up) => up }),
    Effect.zipRight(Effect.logError(`the tuner that started this provider (pid ${pid}) is gone; stopping`)),
    // Leading its own group (as the tuner starts it), it takes any process of that group along (SPEC L-1).
    Effect.zipRight(Effect.sync(() => leadsOwnGroup() && process.kill(0, "SIGKILL"))),
    Effect.zipRight(Effect.fail(new ServeFailed({ message: `the tuner that started this provider (pid ${pid}) is gone; stopping` })))
  )
})()
