/**
 * Estimates, before launching a candidate, how much memory its GGUF model needs
 * at a given context, and compares it with the machine's memory (issue "Skip
 * what cannot fit, honestly"). The numbers come from node-llama-cpp's GGUF
 * insights, which ask llama.cpp itself: it loads the model and creates the
 * context with `no_alloc` (nothing is read or allocated) and reports the buffer
 * sizes it would allocate. Our own code only splits that total for display.
 */
import { Effect, Schema } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import type { GgufInsights, Llama } from "node-llama-cpp"
import { type KvBits, kvGgmlType } from "../domain/Knobs.js"
import { cachedByStamp, makeFileStampCache } from "./FileStampCache.js"
import { GgmlTypeId, tensorBytes } from "./GgmlType.js"
import { ggufStamp, readModelInfo } from "./ModelInfo.js"

/** Bytes in one GiB (2^30). */
const GIB = 1024 ** 3

/**
 * What a candidate model needs in RAM, in bytes, on CPU (no GPU layers).
 *
 * - `weightsBytes`: the model's buffers as llama.cpp would allocate them (its
 *   `no_alloc` load), i.e. the tensor data once. llama.cpp repacks Q4_0 weights
 *   for AVX2 into a buffer of the same size, so repacking does not change this
 *   number; what it does change is RSS: with mmap (llama.cpp's default, and
 *   `autotune serve`'s) the file pages the repack was read from stay mapped, so
 *   RSS shows the repacked weights twice (measured: 1.1B Q4_0, 607 MiB of
 *   weights → +1163 MiB RSS with mmap, +624 MiB without). Those extra pages are
 *   clean page cache the kernel reclaims under pressure, so they are not counted.
 * - `kvCacheBytes`: the KV cache for `contextSize × sequences` cells at the
 *   requested KV type (node-llama-cpp's own KV accounting, see `estimateMemory`).
 * - `computeBytes`: the rest of the context: compute (graph) buffers and the
 *   logits/output buffer.
 * - `totalBytes` = `weightsBytes + kvCacheBytes + computeBytes`.
 *
 * Not included: the serving process itself (measured ~165 MiB RSS for
 * `autotune serve`: Node, the compiled CLI, the llama.cpp addon), and the per-thread compute
 * scratch llama.cpp allocates at the first decode (small).
 * `source` names the library, version and method, e.g.
 * `node-llama-cpp 3.22.1 GgufInsights (llama.cpp no_alloc simulation)`.
 */
export class MemoryEstimate extends Schema.Class<MemoryEstimate>("MemoryEstimate")({
  totalBytes: Schema.Number,
  weightsBytes: Schema.Number,
  kvCacheBytes: Schema.Number,
  computeBytes: Schema.Number,
  source: Schema.String
}) {}

/**
 * No estimate could be made: the file is missing or not a loadable GGUF model
 * (bad magic, truncated, …), or node-llama-cpp could not start or estimate.
 * Local to this module: the caller falls back to launching the candidate and
 * letting the launch decide. `message` gives the concrete reason.
 */
export class EstimateUnavailable extends Schema.TaggedError<EstimateUnavailable>()("EstimateUnavailable", {
  modelPath: Schema.String,
  message: Schema.String
}) {}

/** What to estimate. */
export interface EstimateOptions {
  /** Path of the GGUF model file. */
  readonly modelPath: string
  /** Context per sequence, in tokens (as `autotune serve --max-context`; llama.cpp rounds it up to a multiple of 256). */
  readonly contextSize: number
  /** Parallel sequences (as `autotune serve --max-batch`); each gets its own `contextSize` of KV cells. */
  readonly sequences: number
  /** KV cache bits: 4 (Q4_0), 8 (Q8_0) or null (F16), as `autotune serve --kv-bits`. */
  readonly kvBits: KvBits
  /**
   * Flash attention on (true) or off (false), as `autotune serve --flash-attn`; absent: `auto` (on,
   * on CPU). Off makes llama.cpp build the whole KQ matrix, a bigger compute buffer (issue 14).
   */
  readonly flashAttn?: boolean
  /**
   * Threads of the estimating `Llama` (capped at the core count; default: the core count). Only the
   * first call in a process uses it (the `Llama` is shared); it does not change the estimate.
   */
  readonly threads?: number
}

/** How many log lines of the shared `Llama` are kept for failure messages. */
const LOG_TAIL_LINES = 20

/** The last llama.cpp/node-llama-cpp log lines (warn and above) of the shared `Llama`. */
const logTail: Array<string> = []

/** Bytes per F16 element. */
const F16_BYTES = 2

/** Bytes per KV cache element: F16 2; Q8_0 and Q4_0 blocks hold 32 elements in 34 and 18 bytes (ggml-common.h, GgmlType.ts). */
const kvBytesPerElement = (kvBits: KvBits): number =>
  kvBits === null ? F16_BYTES : tensorBytes(GgmlTypeId[kvGgmlType(kvBits)], 32, 32)! / 32

/** node-llama-cpp's message when its llama.cpp simulation failed and it fell back to its heuristic. */
const SIMULATION_FAILED = "Failed simulating"

/** How many times node-llama-cpp has logged that its llama.cpp simulation failed (see SIMULATION_FAILED). */
let simulationFailures = 0

/** The shared estimating `Llama` (one per process), or its creation in flight. */
let sharedLlama: Promise<Llama> | undefined

const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const coreCount = (): number => Math.max(1, Math.min(Os.availableParallelism(), Os.cpus().length))

/**
 * The process's estimating `Llama`, created on first use: from dist/ `getLlama` spawns a test
 * process (0.5–1 s; none from the CLI bundle, bin/bundle.js, whose build ran that test), so it
 * is made once and kept for the life of the process (it
 * holds no model and does not keep the event loop alive). CPU only, prebuilt
 * binaries only, at most `threads` ≤ core count threads (STACK.md), and llama.cpp's
 * logs go to `logTail`, never to stdout. A failed creation is forgotten, so a
 * later call retries.
 */
const getSharedLlama = (threads: number | undefined): Promise<Llama> => {
  if (sharedLlama !== undefined) return sharedLlama
  const maxThreads = Math.max(1, Math.min(threads ?? coreCount(), coreCount()))
  const created = import("node-llama-cpp").then((nlc) =>
    nlc.getLlama({
      gpu: false,
      build: "never",
      maxThreads,
      logLevel: nlc.LlamaLogLevel.warn,
      logger: (level, message) => {
        for (const line of message.split("\n")) {
          if (line.trim() === "") continue
          if (line.includes(SIMULATION_FAILED)) simulationFailures++
          logTail.push(`[${level}] ${line}`)
          if (logTail.length > LOG_TAIL_LINES) logTail.shift()
        }
      }
    })
  )
  sharedLlama = created
  created.catch(() => {
    if (sharedLlama === created) sharedLlama = undefined
  })
  return created
}

/** What an estimate needs from the model file alone (no context): kept per file by `modelParts`. */
interface ModelPart {
  readonly insights: GgufInsights
  /** The weights' buffers, bytes: llama.cpp's `no_alloc` simulation (node-llama-cpp's heuristic when `fellBack`). */
  readonly weightsBytes: number
  /** Whether that simulation fell back to node-llama-cpp's heuristic (SIMULATION_FAILED logged); such a part is not kept. */
  readonly fellBack: boolean
  readonly version: string
}

/**
 * The model parts of the two files most recently used (Stage 2 estimates one model cell after
 * cell; a part holds the model's vocabulary and llama.cpp's no_alloc model, so few are kept).
 */
const modelParts = makeFileStampCache<ModelPart>(2)

/**
 * One estimate at a time: the shared `Llama`'s log is how a fallback from llama.cpp's
 * simulation to node-llama-cpp's heuristic is detected, so lines must not interleave.
 */
const oneAtATime = Effect.unsafeMakeSemaphore(1)

/**
 * Estimates the RAM (bytes) a GGUF model needs when served on CPU with
 * `contextSize` tokens per sequence × `sequences` and the given KV cache type,
 * with the same settings as `autotune serve` (mmap, flash attention as `flashAttn` says, else "auto",
 * node-llama-cpp's default batch size min(contextSize × sequences, 512)).
 *
 * Source of the numbers: node-llama-cpp's `GgufInsights`
 * (`estimateModelResourceRequirementsV2({ gpuLayers: 0 })` +
 * `estimateContextResourceRequirementsV2({ contextSize, modelGpuLayers: 0, sequences, flashAttention: flashAttn ?? "auto",
 * kvCacheKeyType, kvCacheValueType })`). These load the model and create the context in llama.cpp with
 * `no_alloc` and read its memory breakdown, so they follow llama.cpp's real buffer sizes (including
 * CPU repack buffers). If that simulation fails, node-llama-cpp falls back to its own heuristic;
 * `source` then says "heuristic" (its heuristic overstates a quantized KV cache, see below).
 *
 * The split: `kvCacheBytes` is the KV element count from node-llama-cpp's KV accounting (its
 * deprecated heuristic `estimateContextResourceRequirements` without graph overhead, F16, at
 * `contextSize` minus at 0 with the same batch, so everything but the KV cells cancels; it knows
 * per-layer KV heads, sliding windows and recurrent layers) times the bytes per element of the
 * requested type. The heuristic itself is not used for quantized types: 3.22.1 multiplies their
 * element count by `ggml_type_size`, the bytes of a whole 32-element block (Q8_0 at 34 bytes per
 * element instead of 34/32). `computeBytes` is the simulated context total minus `kvCacheBytes`.
 *
 * Measured on 2 cores / AVX2 (`autotune serve --threads 2`, context 2048, F16 KV), estimate vs the
 * serve process's VmRSS when serve loaded the whole CLI: 15M Q4_0 83 MiB vs 327 MiB; 130M Q4_0
 * 206 MiB vs 475 MiB; 1.1B Q4_0 721 MiB vs 1468 MiB. Subtracting the ~250 MiB process baseline then,
 * the 15M/130M estimates are within ±20 % of the model's own RSS. Through its own entry
 * (src/serveBin.ts, 2026-12-06) the test's baseline (a process importing the same modules and
 * starting a `Llama`, no server, no model) is ~128 MiB and the 15M/130M serve 178/334 MiB: estimate
 * ÷ (serve − baseline) 1.6 and 1.0, within the test's 0.5–3. From the serve bundle (2026-12-07) the
 * baseline (the bundle's own code loaded, a `Llama` started) is ~109 MiB and the 15M/130M serve
 * 151–157/307–316 MiB: 1.7–2.0 and 1.0; run from its V8 code cache (one CommonJS file, 2026-12-07) the
 * baseline is ~99 MiB and the 15M/130M serve 157/318 MiB (context 2048): about 1.4 and 0.95. What "the
 * model adds" depends on how closely that baseline matches the
 * serving process (the two baselines give the 15M 50 or 77 MiB). For 1.1B the mmap
 * double-count of repacked Q4_0 weights (see `MemoryEstimate`) makes RSS ~1.7× the estimate.
 *
 * Cost (measured, 1.1B model): the first call in a process ~0.7–1.5 s from dist/ (importing
 * node-llama-cpp, `getLlama`'s test process; from the CLI bundle no test process), then ~65 ms median for a
 * file's first call (two header reads, ~35 ms model simulation, ~5 ms context simulation), then, while
 * the file stays as it was (gguf/FileStampCache.ts: its header check and model part kept), only the
 * context's simulation, which the kept insights also remember per context (1–4 ms for the same context
 * again; 2026-12-07, 130M and 1.1B, from TypeScript sources: 90–170 ms per call without the cache).
 * 40 calls in a row on one file leave RSS flat.
 *
 * Fails: `EstimateUnavailable` when the file is missing or not a valid GGUF (checked by
 * `readModelInfo`: magic, version, tensors within the file), when `contextSize` or `sequences`
 * is not a positive integer, or when node-llama-cpp cannot start or throws.
 */
export const estimateMemory = (o: EstimateOptions): Effect.Effect<MemoryEstimate, EstimateUnavailable> =>
  Effect.gen(function*() {
    const unavailable = (message: string) => new EstimateUnavailable({ modelPath: o.modelPath, message })
    if (!Number.isSafeInteger(o.contextSize) || o.contextSize <= 0) {
      return yield* unavailable(`context size must be a positive integer of tokens, got ${o.contextSize}`)
    }
    if (!Number.isSafeInteger(o.sequences) || o.sequences <= 0) {
      return yield* unavailable(`sequences must be a positive integer, got ${o.sequences}`)
    }
    // readGgufFileInfo is not a validator (STACK.md): reject broken files first.
    yield* readModelInfo(o.modelPath).pipe(Effect.mapError((e) => unavailable(e.message)))
    const nlc = yield* Effect.tryPromise({
      try: () => import("node-llama-cpp"),
      catch: (e) => unavailable(`cannot load node-llama-cpp: ${errorMessage(e)}`)
    })
    const llama = yield* Effect.tryPromise({
      try: () => getSharedLlama(o.threads),
      catch: (e) => unavailable(`cannot initialise llama.cpp: ${errorMessage(e)}\n${logTail.join("\n")}`)
    })
    const kvType = nlc.GgmlType[kvGgmlType(o.kvBits)]
    // The model's part (its header read whole, the insights, the weights' simulation) depends on the
    // file alone: kept while the file stays as it was (FileStampCache), so a Stage 2 cell pays only
    // for its context (the insights also remember a context they have simulated). A part whose
    // simulation fell back to the heuristic is not kept: the next call tries llama.cpp again.
    const modelPart = yield* cachedByStamp(
      modelParts,
      o.modelPath,
      () => Effect.tryPromise({
        try: async (): Promise<ModelPart> => {
          const before = simulationFailures
          const info = await nlc.readGgufFileInfo(o.modelPath, { sourceType: "filesystem", logWarnings: false })
          const insights: GgufInsights = await nlc.GgufInsights.from(info, llama)
          const model = await insights.estimateModelResourceRequirementsV2({ gpuLayers: 0 })
          return { insights, weightsBytes: model.cpuRam, fellBack: simulationFailures > before, version: await nlc.getModuleVersion() }
        },
        catch: (e) => unavailable(`node-llama-cpp could not estimate: ${errorMessage(e)}`)
      }),
      { stamp: ggufStamp, keep: (part) => !part.fellBack }
    )
    const failuresBefore = simulationFailures
    const estimated = yield* Effect.tryPromise({
      try: async () => {
        const { insights } = modelPart
        const context = await insights.estimateContextResourceRequirementsV2({
          contextSize: o.contextSize,
          modelGpuLayers: 0,
          sequences: o.sequences,
          flashAttention: o.flashAttn ?? "auto",
          kvCacheKeyType: kvType,
          kvCacheValueType: kvType
        })
        // F16 KV bytes from node-llama-cpp's KV accounting, at contextSize minus at 0 (same batch, so
        // everything but the KV cells cancels). F16 only: for quantized types 3.22.1 multiplies the
        // element count by ggml_type_size, the bytes of a whole 32-element block (Q8_0: 34 B/element).
        const kvF16 = (contextSize: number) =>
          insights.estimateContextResourceRequirements({
            contextSize,
            modelGpuLayers: 0,
            sequences: o.sequences,
            batchSize: Math.min(o.contextSize * o.sequences, 512),
            flashAttention: insights.flashAttentionSupported,
            includeGraphOverhead: false
          }).cpuRam
        const kvElements = (kvF16(o.contextSize) - kvF16(0)) / F16_BYTES
        return {
          weights: modelPart.weightsBytes,
          context: context.cpuRam,
          kv: kvElements * kvBytesPerElement(o.kvBits),
          version: modelPart.version
        }
      },
      catch: (e) => unavailable(`node-llama-cpp could not estimate: ${errorMessage(e)}`)
    })
    const fellBack = modelPart.fellBack || simulationFailures > failuresBefore
    const { weights, context, version } = estimated
    if (![weights, context, estimated.kv].every((n) => Number.isFinite(n) && n >= 0)) {
      return yield* unavailable(`node-llama-cpp returned an invalid estimate (weights ${weights}, context ${context} bytes)`)
    }
    const kvCacheBytes = Math.min(estimated.kv, context)
    return new MemoryEstimate({
      totalBytes: weights + context,
      weightsBytes: weights,
      kvCacheBytes,
      computeBytes: context - kvCacheBytes,
      source: `node-llama-cpp ${version} GgufInsights (${fellBack ? "heuristic: llama.cpp simulation failed" : "llama.cpp no_alloc simulation"})`
    })
  }).pipe(oneAtATime.withPermits(1))

/** Reads `MemAvailable` (bytes) from /proc/meminfo, or undefined where there is none. */
const memAvailableBytes = (): number | undefined => {
  try {
    const m = /^MemAvailable:\s+(\d+)\s*kB/m.exec(Fs.readFileSync("/proc/meminfo", "utf8"))
    return m === null ? undefined : Number(m[1]) * 1024
  } catch {
    return undefined
  }
}

/**
 * The memory (bytes) a candidate may use, to compare with `MemoryEstimate.totalBytes`.
 *
 * - `limitGiB` given (`--memory-limit`, GiB = 2^30 bytes): exactly that; the operator's word wins.
 * - Linux: `MemAvailable` from /proc/meminfo, the kernel's estimate of what new allocations can get
 *   without swapping (free memory plus reclaimable page cache), capped by a cgroup memory limit
 *   (`process.constrainedMemory()`) when one is set below the machine's total. This is more honest than
 *   `os.totalmem()`, which ignores everything else running: a candidate larger than MemAvailable
 *   swaps or wakes the OOM killer, which may kill the operator's other programs. `os.freemem()` is
 *   not used directly because before libuv 1.45 it meant MemFree, which excludes reclaimable page cache
 *   (and model files fill the page cache). Call it after the drain and with no candidate of this run
 *   running, or their memory counts as taken.
 * - Elsewhere (macOS): `os.totalmem()`. There `os.freemem()` counts only free pages, not inactive or
 *   purgeable ones, so it would skip models that fit.
 */
export const availableMemoryBytes = (limitGiB: number | null): number => {
  if (limitGiB !== null) return limitGiB * GIB
  const total = Os.totalmem()
  if (process.platform !== "linux") return total
  const available = memAvailableBytes() ?? Os.freemem()
  const constrained = process.constrainedMemory?.() ?? 0
  return constrained > 0 && constrained < total ? Math.min(available, constrained) : available
}
