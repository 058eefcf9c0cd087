/**
 * node-llama-cpp's own decode speed: the floor under the embedded provider
 * (issue 14 part 1: "if node-llama-cpp itself is the floor, show it with a
 * minimal script (its own `evaluate` loop against llama-bench)"). Figure 8
 * divides the embedded provider's decode by this loop's (what the provider adds
 * on top of the library: HTTP, SSE, the stop scanner, detokenizing, Effect) and
 * this loop's by llama-bench's (what the library loses against llama.cpp's own
 * tool: node-llama-cpp 3.22.1 runs each native call on a libuv pool thread and
 * attaches no persistent ggml threadpool, so llama.cpp's worker threads are
 * created anew for every graph; docs/SPEC.md, the embedded provider).
 *
 * The loop is a separate process (`node --import tsx bench/LibraryLoop.ts
 * <spec JSON>`) started as the provider's launcher starts `serve`: with
 * `UV_THREADPOOL_SIZE=1` (bin/autotune.js) and the engine's own options — CPU
 * only, the prebuilt binary (`build: "never"`), one sequence of
 * `contextTokens`, flash attention as the build's `auto` unless set, f16 KV.
 * It prints one JSON line: the medians over the measured requests.
 */
import * as ChildProcess from "node:child_process"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { promptOfWords } from "../src/domain/Prompt.js"
import { median } from "../src/domain/Stats.js"

/** What the loop runs: the throughput step's requests, the prompt cut or repeated to `promptTokens` (the provider's count). */
export interface LibraryLoopSpec {
  readonly model: string
  readonly threads: number
  readonly contextTokens: number
  /** Prompt length, tokens: what the embedded provider counted for the same requests (chat template included). */
  readonly promptTokens: number
  readonly promptWords: number
  readonly maxTokens: number
  readonly warmup: number
  readonly requests: number
  /** Flash attention on or off; absent: the build's `auto`, as `serve` without `--flash-attn`. */
  readonly flashAttn?: boolean
}

/** The loop's medians over its measured requests. */
export interface LibraryLoopResult {
  /** Tokens/s from the first generated token to the last, `(n − 1) / (last − first)`: the embedded provider's `predicted_per_second`. */
  readonly decodeTps: number | null
  readonly completionTokens: number | null
  readonly requests: number
}

const here = fileURLToPath(import.meta.url)

/**
 * Runs the loop in its own process and returns its medians. Rejects with the
 * child's last stderr line when it exits non-zero, prints no result, or runs
 * longer than `timeoutMs` (then its process group is killed).
 */
export const measureLibraryLoop = (spec: LibraryLoopSpec, timeoutMs = 300_000): Promise<LibraryLoopResult> =>
  new Promise((resolve, reject) => {
    const tsx = createRequire(import.meta.url).resolve("tsx")
    const child = ChildProcess.spawn(process.execPath, ["--import", pathToFileURL(tsx).href, here, JSON.stringify(spec)], {
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
      env: { ...process.env, UV_THREADPOOL_SIZE: "1" }
    })
    let out = ""
    let err = ""
    child.stdout.on("data", (b: Buffer) => (out += b.toString()))
    child.stderr.on("data", (b: Buffer) => (err += b.toString()))
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL")
      } catch { /* gone */ }
    }, timeoutMs)
    child.once("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      const line = out.trim().split("\n").pop() ?? ""
      if (code === 0 && line.startsWith("{")) return resolve(JSON.parse(line) as LibraryLoopResult)
      const why = err.trim().split("\n").filter((l) => l.trim() !== "").pop() ?? "no output"
      reject(new Error(`node-llama-cpp loop (${path.basename(spec.model)}, ${spec.threads} threads) ${
        signal === null ? `exited ${code}` : `killed by ${signal}`}: ${why}`))
    })
  })

/** The child: load, then `warmup + requests` generations one after another on one sequence, cleared between. */
const runLoop = async (spec: LibraryLoopSpec): Promise<LibraryLoopResult> => {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp")
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error })
  llama.maxThreads = spec.threads
  const model = await llama.loadModel({ modelPath: spec.model })
  const context = await model.createContext({
    contextSize: spec.contextTokens,
    sequences: 1,
    threads: spec.threads,
    flashAttention: spec.flashAttn ?? "auto",
    failedCreationRemedy: false
  })
  const seq = context.getSequence()
  const measured: Array<{ tps: number | null; n: number }> = []
  for (let i = 0; i < spec.warmup + spec.requests; i++) {
    // The same prompt variant the provider was sent, as tokens, cut or repeated to its count.
    const words = model.tokenize(promptOfWords(spec.promptWords, 1 + i), false)
    const prompt = Array.from({ length: spec.promptTokens }, (_, k) => words[k % words.length]!)
    let first = 0
    let last = 0
    let n = 0
    for await (const _ of seq.evaluate(prompt, { temperature: 0 })) {
      last = performance.now()
      if (n === 0) first = last
      if (++n >= spec.maxTokens) break
    }
    await seq.clearHistory()
    if (i >= spec.warmup) measured.push({ tps: n > 1 ? ((n - 1) * 1000) / (last - first) : null, n })
  }
  await context.dispose()
  await model.dispose()
  await llama.dispose()
  const tps = measured.flatMap((m) => (m.tps === null ? [] : [m.tps]))
  return {
    decodeTps: tps.length === 0 ? null : median(tps),
    completionTokens: measured.length === 0 ? null : median(measured.map((m) => m.n)),
    requests: measured.length
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === here) {
  runLoop(JSON.parse(process.argv[2] ?? "{}") as LibraryLoopSpec).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`)
      process.exit(0)
    },
    (e: unknown) => {
      // The message alone, on one line: the parent quotes the last line (a stack's would be a frame).
      process.stderr.write(`${(e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, " ")}\n`)
      process.exit(1)
    }
  )
}
