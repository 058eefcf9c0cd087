/**
 * node-llama-cpp's `Llama` for the next engine, started as early as the
 * launcher can: bin/autotune.js, for `serve` with `--model` or `--config` (and no
 * help, version, wizard or completions flag), imports node-llama-cpp and starts
 * `getLlama` before it loads the CLI, so that llama.cpp's start overlaps the
 * loading of the serve entry's modules (src/serveBin.ts) instead of following it:
 * an embedded candidate's spawn → ready is shorter on every trial (issue 14).
 * From dist/, `getLlama` on Linux first tests its prebuilt binary in a forked
 * Node process (~0.45 s here, node-llama-cpp 3.22.1 `testBindingBinary`), which
 * then runs on another core; from a serve bundle with node-llama-cpp inside
 * no test is forked (bin/bundle.js ran it once, at build time, and
 * bundles node-llama-cpp only where it passed and llama.cpp then started
 * through the bundle's own `bootLlama`).
 * The early start is taken once, by the first engine, which owns (and
 * disposes) it; a later engine in the same process starts its own.
 * Threads and logger are setters: the engine sets them when it takes the
 * Llama, and what llama.cpp logged before that is handed over.
 */
import type { Llama, LlamaLogLevel } from "node-llama-cpp"
import { loadThreadpoolShim, type ThreadpoolShim } from "./ThreadpoolShim.js"

/** One llama.cpp log line: its level and message. */
export interface LlamaLogLine {
  readonly level: LlamaLogLevel
  readonly message: string
}

/**
 * A started `getLlama`, the log lines it has written so far (until the engine takes the logger),
 * and whether llama.cpp's contexts get a persistent threadpool (ThreadpoolShim.ts).
 */
export interface BootedLlama {
  readonly llama: Promise<Llama>
  readonly earlyLog: Array<LlamaLogLine>
  readonly threadpool: ThreadpoolShim
}

let early: BootedLlama | undefined

const importNlc = (): Promise<typeof import("node-llama-cpp")> =>
  import("node-llama-cpp").catch((e: unknown) => {
    throw new Error(`cannot load node-llama-cpp: ${e instanceof Error ? e.message : String(e)}`)
  })

const start = (nlc: typeof import("node-llama-cpp")): BootedLlama => {
  // Before getLlama loads the addon, whose llama_decode must resolve to the shim's.
  const threadpool = loadThreadpoolShim()
  const earlyLog: Array<LlamaLogLine> = []
  const llama = nlc.getLlama({
    gpu: false,
    build: "never",
    // The engine sets the real count before it creates a context (contexts take their threads then).
    maxThreads: 1,
    logLevel: nlc.LlamaLogLevel.info,
    logger: (level, message) => void earlyLog.push({ level, message })
  })
  // Observed by the engine; a launch that never gets that far (a usage error) must not crash on it.
  llama.catch(() => {})
  return { llama, earlyLog, threadpool }
}

/**
 * For the launcher: imports node-llama-cpp and starts `getLlama` without waiting for it;
 * resolves once the import is done. Rejects when node-llama-cpp cannot be imported.
 */
export const startLlama = (): Promise<void> =>
  importNlc().then((nlc) => {
    early ??= start(nlc)
  })

/**
 * The CPU-only `Llama` (`gpu: false`, `build: "never"`: the prebuilt binary or a failure,
 * never a compile) for one engine: the launcher's early start the first time, else a new one.
 * The caller owns it (disposes it) and sets its threads and logger.
 * `llama` rejects with "cannot load node-llama-cpp: …" or node-llama-cpp's own error
 * when its binding cannot load; `earlyLog` then holds what llama.cpp said.
 */
export const bootLlama = async (): Promise<BootedLlama> => {
  const taken = early
  early = undefined
  return taken ?? start(await importNlc())
}
