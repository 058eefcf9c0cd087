/**
 * node-llama-cpp's own decode speed, with none of the provider around it
 * (issue 14 part 1: "if node-llama-cpp itself is the floor, show it with a
 * minimal script (its own `evaluate` loop against llama-bench)"). Figure 8
 * divides the embedded provider's decode by this loop's — the factor of the
 * served path: the provider's per-token code (Effect, detokenizing, the stop
 * scanner, SSE) and, at as many threads as cores, the HTTP stream and its
 * client competing with llama.cpp's compute threads for the cores — and this
 * loop's by llama-bench's: node-llama-cpp's native path against llama.cpp's own
 * tool, which is also another build (node-llama-cpp's prebuilt llama.cpp, its
 * CPU variant chosen at run time, against the shared llama.cpp), so the detail
 * names both.
 *
 * The loop is a separate process (`node --import tsx bench/LibraryLoop.ts
 * <spec JSON>`) started as the launcher starts `serve`: `UV_THREADPOOL_SIZE=1`
 * (bin/autotune.js), the engine's `getLlama` (src/serve/LlamaBoot.ts) and
 * context options (`engineContextOptions`: one sequence of `contextTokens`,
 * f16 KV, flash attention as set or the build's `auto`), and the engine's
 * decode rate (`decodeTokensPerSecond`). It prints one JSON line: the medians
 * over the measured requests, and what it ran with.
 */
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import type { Readable } from "node:stream"
import { fileURLToPath, pathToFileURL } from "node:url"
import { promptOfWords } from "../src/domain/Prompt.js"
import { median } from "../src/domain/Stats.js"
import { decodeTokensPerSecond, engineContextOptions } from "../src/serve/Engine.js"
import { bootLlama } from "../src/serve/LlamaBoot.js"
import { threadpoolText } from "../src/serve/ThreadpoolShim.js"
import { guardGroup } from "./GroupGuard.js"

/** What the loop runs: the throughput step's requests, the prompt cut or repeated to `promptTokens` (the provider's count). */
export interface LibraryLoopSpec {
  /** GGUF file. */
  readonly model: string
  readonly threads: number
  /** Context size, tokens (`serve --max-context`). */
  readonly contextTokens: number
  /** Prompt length, tokens: what the embedded provider counted for the same requests (chat template included). */
  readonly promptTokens: number
  /** Words of the prompt text tokenized (the project's probe prompt, P-1), before the cut to `promptTokens`. */
  readonly promptWords: number
  /** Tokens generated per request (`max_tokens`). */
  readonly maxTokens: number
  /** Requests run first and not measured. */
  readonly warmup: number
  /** Requests measured. */
  readonly requests: number
  /** Flash attention on or off; absent: the build's `auto`, as `serve` without `--flash-attn`. */
  readonly flashAttn?: boolean
}

/** The loop's medians over its measured requests, and the settings and build it ran with. */
export interface LibraryLoopResult {
  /** Median decode, tokens/s (`decodeTokensPerSecond`: the embedded provider's `predicted_per_second`). */
  readonly decodeTps: number | null
  /** The lowest and highest request's decode, tokens/s (2 threads on 2 cores is bimodal: this shows it). */
  readonly decodeTpsRange: readonly [number, number] | null
  /** Median tokens generated per request (below `maxTokens` only when the model ended a reply). */
  readonly completionTokens: number | null
  readonly requests: number
  /**
   * The context node-llama-cpp made: tokens and flash attention as it holds them (the options it was
   * given, `auto` unresolved), threads as llama.cpp reports them (`currentThreads`, native).
   */
  readonly context: { readonly contextSize: number; readonly threads: number; readonly flashAttention: boolean | "auto" }
  /**
   * node-llama-cpp's llama.cpp release and the CPU backend libraries mapped in the process after the
   * load (ggml loads the best variant for the CPU, e.g. `libggml-cpu-zen4.so`; joined with "+" if more
   * than one stayed; null if none was seen).
   */
  readonly build: { readonly llamaCppRelease: string; readonly cpuBackend: string | null }
  /** The context's threads, as `serve`'s loaded line says it (src/serve/ThreadpoolShim.ts); absent in results saved before. */
  readonly threadpool?: string
}

const here = fileURLToPath(import.meta.url)

/** The line of a child's stderr that says why it failed: the last one that is not a stack frame or Node's version banner. */
const reasonOf = (stderr: string): string =>
  stderr.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("at ") && !/^Node\.js v\d/.test(l)).pop() ??
    "no output"

/**
 * Runs the loop in its own process group and returns what it printed. Rejects,
 * naming the model and threads, with the child's reason when it exits non-zero or
 * prints no result, and when it runs longer than `timeoutMs` (its group is then
 * killed). While it runs its group is guarded (bench/GroupGuard.ts): a SIGINT,
 * SIGTERM or SIGHUP to this process (Ctrl-C, a closed terminal: they reach this
 * process's group, not the loop's) kills it first, then ends this process by the
 * same signal (unless another listener handles it); any other exit kills it too.
 */
export const measureLibraryLoop = (spec: LibraryLoopSpec, timeoutMs = 300_000): Promise<LibraryLoopResult> =>
  new Promise((resolve, reject) => {
    const tsx = createRequire(import.meta.url).resolve("tsx")
    // Ctrl-C, a closed terminal or another exit of this process takes the loop's group with it (GroupGuard).
    const guard = guardGroup()
    let child: ChildProcess.ChildProcessByStdio<null, Readable, Readable>
    try {
      child = ChildProcess.spawn(process.execPath, ["--import", pathToFileURL(tsx).href, here, JSON.stringify(spec)], {
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
        env: { ...process.env, UV_THREADPOOL_SIZE: "1" }
      })
    } catch (e) {
      // Thrown rather than emitted: nothing started, nothing to guard (the promise rejects with it).
      guard.release()
      throw e
    }
    const what = `node-llama-cpp loop (${path.basename(spec.model)}, ${spec.threads} thread${spec.threads === 1 ? "" : "s"})`
    let out = ""
    let err = ""
    let timedOut = false
    child.stdout.on("data", (b: Buffer) => (out += b.toString()))
    child.stderr.on("data", (b: Buffer) => (err += b.toString()))
    if (child.pid !== undefined) guard.watch(child.pid)
    const timer = setTimeout(() => {
      timedOut = true
      guard.kill()
    }, timeoutMs)
    const done = () => {
      clearTimeout(timer)
      guard.release()
    }
    child.once("error", (e) => {
      done()
      reject(new Error(`${what} could not be started: ${e.message}`))
    })
    // `close`, not `exit`: stdout may still hold the result line when the process has exited.
    child.once("close", (code, signal) => {
      done()
      if (timedOut) return reject(new Error(`${what} timed out after ${timeoutMs / 1000} s`))
      const line = out.trim().split("\n").pop() ?? ""
      if (code === 0) {
        try {
          return resolve(JSON.parse(line) as LibraryLoopResult)
        } catch {
          return reject(new Error(`${what} printed no result: ${JSON.stringify(line.slice(0, 200))}`))
        }
      }
      reject(new Error(`${what} ${signal === null ? `exited ${code}` : `killed by ${signal}`}: ${reasonOf(err)}`))
    })
  })

/** The CPU backend libraries mapped in this process (`/proc/self/maps`; Linux), "+"-joined, or null. */
const cpuBackend = (): string | null => {
  try {
    const found = [...new Set(fs.readFileSync("/proc/self/maps", "utf8").match(/libggml-cpu[\w.-]*\.so/g) ?? [])]
    return found.length === 0 ? null : found.sort().join("+")
  } catch {
    return null
  }
}

/** llama.cpp's last log lines, kept for a failure's message (as the engine's log tail). */
const logTail: Array<string> = []
const keepLog = (message: string): void => {
  logTail.push(message.trim())
  if (logTail.length > 5) logTail.shift()
}

/** The child: load, then `warmup + requests` generations one after another on one sequence, cleared between. */
const runLoop = async (spec: LibraryLoopSpec): Promise<LibraryLoopResult> => {
  const boot = await bootLlama()
  const llama = await boot.llama.finally(() => boot.earlyLog.forEach((l) => keepLog(l.message)))
  llama.logger = (_level, message) => keepLog(message)
  llama.maxThreads = spec.threads
  const model = await llama.loadModel({ modelPath: spec.model })
  const context = await model.createContext(engineContextOptions({
    contextSize: spec.contextTokens,
    sequences: 1,
    threads: spec.threads,
    flashAttn: spec.flashAttn ?? "auto",
    kvType: "F16"
  }))
  const seq = context.getSequence()
  const measured: Array<{ tps: number; n: number }> = []
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
    if (i >= spec.warmup) measured.push({ tps: decodeTokensPerSecond(n, first, last), n })
  }
  // A request of fewer than 2 tokens has no decode rate (0): left out of the median and the range alike.
  const rates = measured.flatMap((m) => (m.tps > 0 ? [m.tps] : []))
  const result: LibraryLoopResult = {
    decodeTps: median(rates),
    decodeTpsRange: rates.length === 0 ? null : [Math.min(...rates), Math.max(...rates)],
    completionTokens: median(measured.map((m) => m.n)),
    requests: measured.length,
    context: { contextSize: context.contextSize, threads: context.currentThreads, flashAttention: context.flashAttention },
    build: { llamaCppRelease: llama.llamaCppRelease.release, cpuBackend: cpuBackend() },
    threadpool: threadpoolText(boot.threadpool)
  }
  await context.dispose()
  await model.dispose()
  await llama.dispose()
  return result
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === here) {
  Promise.resolve().then(() => runLoop(JSON.parse(process.argv[2] ?? "") as LibraryLoopSpec)).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`)
      process.exit(0)
    },
    (e: unknown) => {
      // The message alone, on one line: the parent quotes the last line (a stack's would be a frame).
      const message = (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, " ")
      const log = logTail.filter((l) => l !== "").join(" | ")
      process.stderr.write(`${message}${log === "" ? "" : ` (llama.cpp: ${log})`}\n`)
      process.exit(1)
    }
  )
}
