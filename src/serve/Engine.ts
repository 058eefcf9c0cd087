/**
 * The inference engine of `autotune serve`: one node-llama-cpp `Llama`, one
 * model, one context with `--max-batch` sequences, and per-token generation on
 * a free sequence. Every native object is a scoped resource (STACK.md:
 * node-llama-cpp 3.22.1).
 */
import { Effect, Option, Queue, Schema, type Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Llama, LlamaContext, LlamaContextOptions, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp"
import { ServeFailed } from "../domain/AutotuneError.js"
import { type KvBits, kvGgmlType } from "../domain/Knobs.js"
import type { FinishReason, Timings } from "./OpenAi.js"
import { awaitBounded } from "./AwaitBounded.js"
import { bootLlama } from "./LlamaBoot.js"
import { makeStopScanner } from "./StopScanner.js"
import type { ThreadpoolShim } from "./ThreadpoolShim.js"

/** Generation failed inside node-llama-cpp after the request was accepted (HTTP 500). Internal to serve. */
export class GenerateFailed extends Schema.TaggedError<GenerateFailed>()("GenerateFailed", {
  message: Schema.String
}) {}

/** What the engine is built from (a subset of ServeOptions). */
export interface EngineOptions {
  readonly modelPath: string
  readonly kvBits: Option.Option<NonNullable<KvBits>>
  readonly maxContext: Option.Option<number>
  readonly maxBatch: number
  readonly threads: Option.Option<number>
  /**
   * Flash attention: Some(true) on, Some(false) off, None = node-llama-cpp's `auto` (on, on CPU).
   * Off is refused for a quantized KV cache (llama.cpp needs it for a quantized V cache); the
   * caller checks that (`serveOptionsOf`). Absent = None. Measured, not assumed (issue 14): on 2
   * CPU cores, off decoded the synthetic 130M 1.7× faster than on after 990 tokens of context (the
   * 42M 1.2–1.5× after 512; llama-bench 1.4–1.9×).
   */
  readonly flashAttn?: Option.Option<boolean>
}

/** One generation request, already tokenized and checked against the context. */
export interface GenerateRequest {
  /** Prompt tokens, BOS included. */
  readonly prompt: ReadonlyArray<Token>
  /** Upper bound on generated tokens (≥ 1). */
  readonly maxTokens: number
  /** 0 = greedy (deterministic). */
  readonly temperature: number
  readonly seed: number | undefined
  readonly stops: ReadonlyArray<string>
}

/** Outcome of one generation: the full text (the concatenation of all deltas), counts and timings. */
export interface GenerateResult {
  readonly text: string
  readonly completionTokens: number
  readonly finishReason: FinishReason
  readonly timings: Timings
}

/** The loaded engine; valid until the Scope that built it closes. */
export interface Engine {
  /** Model id: the file's base name without `.gguf`. */
  readonly modelId: string
  /** Per-sequence token budget: prompt + max_tokens must not exceed it (--max-context, else the training context). */
  readonly contextLimit: number
  /** Actual per-sequence context llama.cpp allocated (rounded up to a multiple of 256). */
  readonly allocatedContext: number
  readonly threads: number
  /** The context's threads: a persistent ggml threadpool, or created per graph and why (ThreadpoolShim.ts). */
  readonly threadpool: ThreadpoolShim
  /** Flash attention as the context was created: on, off, or `auto` (llama.cpp decides: on, on CPU). */
  readonly flashAttn: "auto" | boolean
  /** KV cache type name, e.g. `F16`, `Q8_0`. */
  readonly kvCacheType: string
  /**
   * Milliseconds from the engine's start to a created context: the wait for getLlama (started at
   * launch, LlamaBoot.ts) + loadModel + createContext.
   */
  readonly loadMs: number
  /** Tokenizes `text`; `addBos` prepends BOS when the model has one and wants it. */
  readonly tokenize: (text: string, addBos: boolean) => ReadonlyArray<Token>
  /**
   * Generates on a free sequence (waiting for one if all `--max-batch` are busy),
   * calling `onToken` once per generated token with that token's newly
   * available text (possibly "" while a multi-byte character or a possible stop
   * string is held back). Interrupting it stops generation, clears the
   * sequence's KV cache and returns the sequence to the pool. `onEnd` runs once
   * the last token's text was given to `onToken`, before the sequence is cleared
   * and returned (a stream writer flushes there, so the last token's arrival is not
   * delayed by it); not on failure or interruption.
   * Fails: GenerateFailed when node-llama-cpp throws during evaluation.
   */
  readonly generate: <E>(
    req: GenerateRequest,
    onToken: (text: string) => Effect.Effect<void, E>,
    onEnd?: Effect.Effect<void, E>
  ) => Effect.Effect<GenerateResult, GenerateFailed | E>
}

/** How many llama.cpp log lines to keep for failure messages. */
const LOG_TAIL_LINES = 40

/**
 * A ring buffer of the last llama.cpp log lines, fed by getLlama's `logger`.
 * While starting, warnings are only collected (a failure message carries the
 * tail); once `live`, warnings and errors also go to stderr (the provider's log
 * file, SPEC E-3).
 */
const makeLogTail = () => {
  const lines: Array<string> = []
  const startupWarnings: Array<string> = []
  let live = false
  const push = (level: string, message: string) => {
    const serious = level === "error" || level === "fatal" || level === "warn"
    for (const line of message.split("\n")) {
      if (line.trim() === "") continue
      lines.push(`[${level}] ${line}`)
      if (lines.length > LOG_TAIL_LINES) lines.shift()
      if (serious && live) process.stderr.write(`llama.cpp ${level}: ${line}\n`)
      else if (serious && startupWarnings.length < LOG_TAIL_LINES) startupWarnings.push(`llama.cpp ${level}: ${line}`)
    }
  }
  const goLive = () => {
    live = true
    return startupWarnings.splice(0)
  }
  /** The warnings and errors among the last lines, or (when there are none) the last 10 lines. */
  const tail = () => {
    const serious = lines.filter((l) => !l.startsWith("[info]") && !l.startsWith("[log]") && !l.startsWith("[debug]"))
    return (serious.length > 0 ? serious : lines.slice(-10)).join("\n")
  }
  return { push, tail, goLive }
}

const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * Default and cap for threads: the core count. More threads than cores makes
 * decode collapse (STACK.md: 4 threads on 2 cores drop ~55 → ~1 tok/s).
 */
const coreCount = (): number => Math.max(1, Math.min(os.availableParallelism(), os.cpus().length))

/** A failure message with the llama.cpp log tail appended (the real reason is often only there). */
const withLog = (what: string, e: unknown, tail: string): string =>
  tail === "" ? `${what}: ${errorMessage(e)}` : `${what}: ${errorMessage(e)}\nllama.cpp log (last lines):\n${tail}`

/**
 * Runs one native step (getLlama, loadModel, createContext). On failure it
 * first waits briefly: llama.cpp's log lines reach JS through a thread-safe
 * callback that can arrive after the rejection, and the real reason (e.g.
 * "tensor … data is not within the file bounds") is often only in them.
 */
const nativeStep = <A>(what: string, run: () => Promise<A>, log: { readonly tail: () => string }) =>
  Effect.tryPromise({ try: run, catch: (e) => e }).pipe(
    Effect.catchAll((e) =>
      Effect.sleep(LOG_SETTLE_MS).pipe(
        // failSync: read the tail after the wait, not when the pipeline is built.
        Effect.zipRight(Effect.failSync(() => new ServeFailed({ message: withLog(what, e, log.tail()) })))
      )
    )
  )

/** How long a failed native step waits for late llama.cpp log lines. */
const LOG_SETTLE_MS = 250

/**
 * Prefill chunking: an interrupted request waits for at most one native prefill
 * call, so chunks are sized to take about PREFILL_CHUNK_MS at the prefill rate
 * measured on the previous chunk, within [MIN, MAX] tokens; the first chunk is
 * MIN tokens. On 2 cores a 1.1B Q4_0 model prefills ~70–240 tok/s, a 3B one
 * ~20–80 tok/s: a fixed 256-token chunk could outlast the tuner's stop grace
 * (`STOP_GRACE` in services/CandidateProvider.ts, 3 s; a candidate the gate has
 * decided gets 200 ms, then SIGKILL: its answer no longer matters).
 */
const PREFILL_CHUNK_MS = 500
const PREFILL_CHUNK_MIN_TOKENS = 32
const PREFILL_CHUNK_MAX_TOKENS = 512

/**
 * The options of the engine's llama.cpp context (node-llama-cpp 3.22.1 `createContext`):
 * `contextSize` tokens shared by `sequences` slots, `threads` CPU threads (prefill and decode
 * alike), flash attention on, off or `auto` (on, on CPU: STACK.md; a quantized V cache needs it),
 * the KV cache type on both K and V (`F16` is node-llama-cpp's default, so it is left unset), and
 * no shrinking retry on failure (the caller names the failure). bench/LibraryLoop.ts builds its
 * context from it too, so bench figure 8 compares the same work (issue 14).
 */
export const engineContextOptions = (o: {
  readonly contextSize: number
  readonly sequences: number
  readonly threads: number
  readonly flashAttn: boolean | "auto"
  readonly kvType: ReturnType<typeof kvGgmlType>
}): LlamaContextOptions => ({
  contextSize: o.contextSize,
  sequences: o.sequences,
  threads: o.threads,
  flashAttention: o.flashAttn,
  failedCreationRemedy: false,
  ...(o.kvType === "F16" ? {} : { experimentalKvCacheKeyType: o.kvType, experimentalKvCacheValueType: o.kvType })
})

/**
 * Decode speed, tokens/s: `(n − 1)` tokens over the time from the first generated token to the
 * last (`firstAt`, `lastAt`: ms on one clock); 0 for fewer than 2 tokens or no time between them.
 * The first token comes with the prefill (its time is in TTFT), so decode counts from it. The
 * provider's `predicted_per_second`; bench figure 8's loop (bench/LibraryLoop.ts) uses it too.
 */
export const decodeTokensPerSecond = (n: number, firstAt: number, lastAt: number): number =>
  n > 1 && lastAt > firstAt ? ((n - 1) * 1000) / (lastAt - firstAt) : 0

/**
 * Loads the model and creates the context; disposes context, model and Llama
 * (in that order) when the Scope closes.
 * Fails: ServeFailed when the file is missing or not a regular file, when
 * llama.cpp cannot load it (bad GGUF magic, truncated tensor data, …) or
 * cannot create the context (message includes the llama.cpp log tail).
 */
export const makeEngine = (o: EngineOptions): Effect.Effect<Engine, ServeFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const modelPath = path.resolve(o.modelPath)
    const stat = yield* Effect.try({
      try: () => fs.statSync(modelPath),
      catch: () => new ServeFailed({ message: `model file not found: ${modelPath}` })
    })
    if (!stat.isFile()) return yield* new ServeFailed({ message: `model path is not a regular file: ${modelPath}` })

    const cores = coreCount()
    const requested = Option.getOrElse(o.threads, () => cores)
    const threads = Math.min(requested, cores)
    if (requested > cores) {
      yield* Effect.logWarning(`--threads ${requested} exceeds the ${cores} available cores; using ${threads}`)
    }

    const started = performance.now()
    const log = makeLogTail()
    let threadpool: ThreadpoolShim = { loaded: false, why: "llama.cpp not started" }
    const llama: Llama = yield* Effect.acquireRelease(
      nativeStep("cannot initialise llama.cpp", async () => {
        const boot = await bootLlama()
        threadpool = boot.threadpool
        // What llama.cpp said before this engine took over goes to the log tail either way;
        // on success the logger is replaced first, so no line lands in the early buffer after it is read.
        const handOver = () => boot.earlyLog.splice(0).forEach((line) => log.push(line.level, line.message))
        const l = await boot.llama.catch((e: unknown) => {
          handOver()
          throw e
        })
        l.logger = (level, message) => log.push(level, message)
        handOver()
        l.maxThreads = threads
        return l
      }, log),
      (l) => awaitBounded(() => l.dispose(), 10_000)
    )
    const model: LlamaModel = yield* Effect.acquireRelease(
      nativeStep(`cannot load model ${modelPath}`, () => llama.loadModel({ modelPath }), log),
      (m) => awaitBounded(() => m.dispose(), 10_000)
    )
    const contextLimit = Option.getOrElse(o.maxContext, () => model.trainContextSize || 4096)
    const kvType = kvGgmlType(Option.getOrNull(o.kvBits))
    const context: LlamaContext = yield* Effect.acquireRelease(
      nativeStep(
        `cannot create a context of ${contextLimit} tokens × ${o.maxBatch} sequences (KV ${kvType})`,
        () =>
          model.createContext(engineContextOptions({
            contextSize: contextLimit,
            sequences: o.maxBatch,
            threads,
            flashAttn: Option.getOrElse(o.flashAttn ?? Option.none(), () => "auto" as const),
            kvType
          })),
        log
      ),
      (c) => awaitBounded(() => c.dispose(), 10_000)
    )
    const loadMs = performance.now() - started

    // The pool of free sequences: a request takes one, and gives it back with its KV cache cleared.
    const pool = yield* Queue.unbounded<LlamaContextSequence>()
    const sequences = yield* Effect.try({
      try: () => Array.from({ length: o.maxBatch }, () => context.getSequence()),
      catch: (e) => new ServeFailed({ message: withLog("cannot create context sequences", e, log.tail()) })
    })
    yield* Queue.offerAll(pool, sequences)
    yield* Effect.forEach(log.goLive(), (w) => Effect.logWarning(w), { discard: true })
    const takeSequence = Effect.acquireRelease(Queue.take(pool), (seq) =>
      awaitBounded(() => seq.clearHistory(), 10_000).pipe(Effect.zipRight(Queue.offer(pool, seq))))

    const bos = model.tokens.bos
    const tokenize = (text: string, addBos: boolean): ReadonlyArray<Token> => {
      const tokens = model.tokenize(text, false)
      return addBos && bos !== null && model.tokens.shouldPrependBosToken ? [bos, ...tokens] : tokens
    }

    const generate = <E>(req: GenerateRequest, onToken: (text: string) => Effect.Effect<void, E>, onEnd: Effect.Effect<void, E> = Effect.void) =>
      Effect.gen(function*() {
        const seq = yield* takeSequence
        const t0 = performance.now()
        // The native call in flight: an interrupted request waits for it, then
        // closes the iterator so the sequence's lock is released before its KV
        // cache is cleared (scope finalizers run in reverse order).
        let inFlight: Promise<unknown> = Promise.resolve()
        let iterator: AsyncGenerator<Token, void> | null = null
        const close = (): Promise<unknown> => (iterator === null ? Promise.resolve() : iterator.return())
        yield* Effect.addFinalizer(() => awaitBounded(() => inFlight.then(close, close), 30_000))
        // Prefill all but the last chunk (`chunk` tokens, sized by PREFILL_CHUNK_MS) one
        // native call at a time, so an interruption (client gone, SIGTERM) waits for one
        // chunk at most instead of a whole long prompt (a 2000-token prefill of a 1.1B
        // model takes ~10 s on 2 cores: longer than the tuner's stop grace).
        const prompt = [...req.prompt]
        let done = 0
        let chunk = PREFILL_CHUNK_MIN_TOKENS
        while (prompt.length - done > chunk) {
          const part = prompt.slice(done, done + chunk)
          const c0 = performance.now()
          yield* Effect.tryPromise({
            try: () => (inFlight = seq.evaluateWithoutGeneratingNewTokens(part)),
            catch: (e) => new GenerateFailed({ message: `evaluation failed: ${errorMessage(e)}` })
          })
          done += part.length
          const tokensPerMs = part.length / Math.max(1, performance.now() - c0)
          chunk = Math.round(Math.min(PREFILL_CHUNK_MAX_TOKENS, Math.max(PREFILL_CHUNK_MIN_TOKENS, tokensPerMs * PREFILL_CHUNK_MS)))
        }
        const it = seq.evaluate(prompt.slice(done), {
          temperature: req.temperature,
          ...(req.seed === undefined ? {} : { seed: req.seed })
        })
        iterator = it
        const next = Effect.tryPromise({
          try: () => {
            const p = it.next()
            inFlight = p
            return p
          },
          catch: (e) => new GenerateFailed({ message: `evaluation failed: ${errorMessage(e)}` })
        })

        const scanner = makeStopScanner(req.stops)
        const generated: Array<Token> = []
        let decodedUpTo = 0 // generated[0, decodedUpTo) has been turned into text
        let text = ""
        let firstAt = 0
        let lastAt = 0
        let finishReason: FinishReason = "length"
        let hitStopString = false
        /** Text of tokens not yet decoded; held while it ends in an incomplete UTF-8 character (≤ 4 tokens). */
        const decodePending = (force: boolean): string => {
          if (decodedUpTo === generated.length) return ""
          const before = decodedUpTo === 0
            ? req.prompt.slice(-8)
            : generated.slice(Math.max(0, decodedUpTo - 8), decodedUpTo)
          const piece = model.detokenize(generated.slice(decodedUpTo), false, before)
          if (!force && piece.endsWith("\uFFFD") && generated.length - decodedUpTo < 4) return ""
          decodedUpTo = generated.length
          return piece
        }

        while (generated.length < req.maxTokens) {
          const step = yield* next
          if (step.done) {
            finishReason = "stop"
            break
          }
          lastAt = performance.now()
          if (generated.length === 0) firstAt = lastAt
          generated.push(step.value)
          const scanned = scanner.push(decodePending(false))
          text += scanned.emit
          yield* onToken(scanned.emit)
          if (scanned.stopped) {
            finishReason = "stop"
            hitStopString = true
            break
          }
        }
        if (!hitStopString) {
          // Flush what is still held (an incomplete character, a never-completed stop prefix).
          const tail = scanner.push(decodePending(true))
          const rest = tail.stopped ? tail.emit : tail.emit + scanner.flush()
          if (rest !== "") {
            text += rest
            yield* onToken(rest)
          }
        }
        yield* onEnd
        const n = generated.length
        const promptMs = (n > 0 ? firstAt : performance.now()) - t0
        const predictedMs = n > 1 ? lastAt - firstAt : 0
        const timings: Timings = {
          prompt_n: req.prompt.length,
          prompt_ms: promptMs,
          prompt_per_second: promptMs > 0 ? (req.prompt.length * 1000) / promptMs : 0,
          predicted_n: n,
          predicted_ms: predictedMs,
          predicted_per_second: decodeTokensPerSecond(n, firstAt, lastAt)
        }
        return { text, completionTokens: n, finishReason, timings }
      }).pipe(Effect.scoped)

    return {
      modelId: path.basename(modelPath).replace(/\.gguf$/i, ""),
      contextLimit,
      allocatedContext: context.contextSize,
      threads,
      threadpool,
      flashAttn: context.flashAttention,
      kvCacheType: kvType,
      loadMs,
      tokenize,
      generate
    } satisfies Engine
  })
