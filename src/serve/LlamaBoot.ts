/**
 * node-llama-cpp's `Llama`, started once per process and as early as the
 * launcher can: bin/autotune.js, for `serve`, imports node-llama-cpp and starts
 * `getLlama` before it loads the CLI. On Linux `getLlama` first tests its
 * prebuilt binary in a forked Node process (~0.45 s here, node-llama-cpp 3.22.1
 * `testBindingBinary`); started first, that test runs on another core while
 * this process loads the CLI's modules (~1 s) instead of after them, so an
 * embedded candidate's spawn → ready is shorter on every trial (issue 14).
 * Threads and logger are setters: the engine sets them when it takes the
 * Llama, and what llama.cpp logged before that is handed over (`takeEarlyLog`).
 */
import type { Llama, LlamaLogLevel } from "node-llama-cpp"

/** One llama.cpp log line: its level and message. */
export interface LlamaLogLine {
  readonly level: LlamaLogLevel
  readonly message: string
}

let started: Promise<Llama> | undefined
const early: Array<LlamaLogLine> = []

const start = (nlc: typeof import("node-llama-cpp")): Promise<Llama> => {
  started ??= nlc.getLlama({
    gpu: false,
    build: "never",
    // The engine sets the real count before creating a context (contexts take their threads then).
    maxThreads: 1,
    logLevel: nlc.LlamaLogLevel.info,
    logger: (level, message) => void early.push({ level, message })
  })
  // Observed by the engine; a launch that never reaches it (a usage error) must not crash on it.
  started.catch(() => {})
  return started
}

/**
 * Imports node-llama-cpp and starts `getLlama` without waiting for it; resolves once the
 * import is done. For the launcher. Rejects when node-llama-cpp cannot be imported.
 */
export const startLlama = (): Promise<void> => import("node-llama-cpp").then((nlc) => void start(nlc))

/**
 * The CPU-only `Llama` (`gpu: false`, `build: "never"`: the prebuilt binary or a failure,
 * never a compile), started by `startLlama` or now; the same promise on every call.
 * Rejects with node-llama-cpp's error when it cannot be imported or its binding cannot load.
 */
export const bootLlama = (): Promise<Llama> => started ?? import("node-llama-cpp").then(start)

/** The log lines llama.cpp wrote before the engine took over the logger (emptied by the call). */
export const takeEarlyLog = (): ReadonlyArray<LlamaLogLine> => early.splice(0)
