/**
 * Figure 8's measurements (issue 14; the rows: Figures.ts `engineFigures`): the embedded provider against llama.cpp's own speed on
 * the same GGUF, per model (15M and 130M) and threads (1 and 2). For each, the
 * embedded provider serves the throughput step's requests (1 warm-up, 5
 * measured, f16 KV, one slot), then llama-bench runs the same work at the
 * prompt length the provider counted: `-p P -n 0` (prefill of P tokens) and
 * `-p 0 -n <max_tokens> -d P` (decode after P tokens of context). Ratios use
 * the provider's own timings (`prompt_per_second`, `predicted_per_second`), as
 * llama-bench times only the engine. Decode is measured a second time with
 * flash attention off on both sides (`serve --flash-attn off`, `llama-bench
 * -fa 0`; issue 14). node-llama-cpp's own `evaluate` loop runs the same decode
 * (bench/LibraryLoop.ts), so the decode ratio splits into two factors: the served
 * path's (provider ÷ loop) and the library's with its build (loop ÷ llama-bench). Start-up: spawn → ready minus the load
 * the provider logs (`loaded <model> in N ms`: getLlama + model + context).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { measureLibraryLoop, type LibraryLoopResult } from "./LibraryLoop.js"
import { findRow, llamaBench, type LlamaBenchRow } from "./LlamaBench.js"
import { measureThroughput, type ThroughputResult, type ThroughputSpec } from "./Throughput.js"
import { providerLoadMs, providerLog } from "./TuneCost.js"

/** One model × threads: the provider's medians, its logged load (ms) and llama-bench's rows at the same length. */
export interface EngineRow {
  readonly params: string
  readonly threads: number
  readonly embedded: ThroughputResult
  readonly loadMs: number | null
  readonly promptTokens: number | null
  readonly pp: LlamaBenchRow | null
  readonly tg: LlamaBenchRow | null
  /**
   * The same decode with flash attention off on both sides (issue 14: the embedded provider can
   * switch it off now, and on CPU off decodes faster): the provider's medians and llama-bench's
   * `-fa 0` tg row. Absent in results saved before it was measured.
   */
  readonly flashAttnOff?: { readonly embedded: ThroughputResult; readonly tg: LlamaBenchRow | null }
  /** Why the flash-attention-off measurement failed (its rows are then n/a; the others stay). */
  readonly flashAttnOffFailure?: string
  /**
   * What the provider's context computed on (`threadpoolOf`): the ggml threadpool of src/serve/ThreadpoolShim.ts
   * attached, or why not; null when its log says neither. Absent before it was kept.
   */
  readonly threadpool?: string | null
  /**
   * The same provider measurement with llama.cpp's threads started per graph (`AUTOTUNE_THREADPOOL=off`), from a start
   * right after the provider's own: the threadpool's factor. Absent in results saved before it was measured.
   */
  readonly perGraph?: ThroughputResult
  /** Why the per-graph measurement failed (its row is then n/a; the others stay). */
  readonly perGraphFailure?: string
  /**
   * node-llama-cpp's own `evaluate` loop on the same model, threads, context and prompt length
   * (bench/LibraryLoop.ts): the provider with nothing of its own around node-llama-cpp. Absent in results saved
   * before it was measured.
   */
  readonly library?: LibraryLoopResult
  /** Why the loop failed (its rows are then n/a; the others stay). */
  readonly libraryFailure?: string
}

/** Thread counts compared. */
export const THREADS = [1, 2] as const

/** Figure 8's measurements: the rows of the models that ran, and why each other model did not (by params). */
export interface EngineMeasurements {
  readonly rows: ReadonlyArray<EngineRow>
  readonly failures: Readonly<Record<string, string>>
}

/**
 * Measures every model at 1 and 2 threads (embedded, then node-llama-cpp's own loop and llama-bench at the counted prompt
 * length); logs go to `<logDir>/engine-<params>/`. A model that fails (a server, llama-bench)
 * is recorded with its reason and the next one still runs; rejects only when none ran.
 */
export const measureEngine = async (
  models: ReadonlyArray<{ readonly params: string; readonly path: string }>,
  spec: Omit<ThroughputSpec, "model">
): Promise<EngineMeasurements> => {
  const rows: Array<EngineRow> = []
  const failures: Record<string, string> = {}
  for (const m of models) {
    try {
      rows.push(...await measureModel(m, spec))
    } catch (e) {
      failures[m.params] = e instanceof Error ? (e.message.split("\n")[0] ?? e.message) : String(e)
    }
  }
  if (rows.length === 0) throw new Error(Object.entries(failures).map(([k, v]) => `${k}: ${v}`).join("; "))
  return { rows, failures }
}

/** One model at 1 and 2 threads. Rejects when a server or llama-bench fails or no prompt count came back. */
const measureModel = async (
  m: { readonly params: string; readonly path: string },
  spec: Omit<ThroughputSpec, "model">
): Promise<Array<EngineRow>> => {
  const logDir = path.join(spec.logDir, `engine-${m.params}`)
  fs.mkdirSync(logDir, { recursive: true })
  const measured: Array<ThroughputResult> = []
  // Each thread count's provider, then at once the same without its persistent threadpool (AUTOTUNE_THREADPOOL=off):
  // the threadpool's factor from two starts one right after the other; that start's failure leaves the other rows.
  const perGraph = new Map<number, ThroughputResult | string>()
  for (const t of THREADS) {
    measured.push(await measureThroughput("embedded", t, { ...spec, model: m.path, logDir }))
    perGraph.set(t, await measureThroughput("embedded", t, { ...spec, model: m.path, logDir, threadpool: false }).catch((e: unknown) =>
      e instanceof Error ? e.message.split("\n")[0] ?? e.message : String(e)))
  }
  // llama-bench at the length the provider counted (both threads see the same prompts).
  const counted = measured[0]!.serverPromptN ?? measured[0]!.promptTokens
  if (counted === null) throw new Error("the provider reported no prompt token count")
  const p = Math.round(counted)
  const bench = [
    ...await llamaBench(m.path, ["-t", THREADS.join(","), "-p", `${p}`, "-n", "0"]),
    ...await llamaBench(m.path, ["-t", THREADS.join(","), "-p", "0", "-n", `${spec.maxTokens}`, "-d", `${p}`])
  ]
  // node-llama-cpp's own loop at the same length, per thread count: a failure leaves the rows above.
  const library = new Map<number, LibraryLoopResult | string>()
  for (const t of THREADS) {
    library.set(t, await measureLibraryLoop({ ...spec, model: m.path, threads: t, promptTokens: p }).catch((e: unknown) =>
      e instanceof Error ? e.message.split("\n")[0] ?? e.message : String(e)))
  }
  // Flash attention off on both sides: its own step, so a failure there leaves the rows above.
  const off = await (async () => {
    const faOff: Array<ThroughputResult> = []
    for (const t of THREADS) faOff.push(await measureThroughput("embedded", t, { ...spec, model: m.path, logDir, flashAttn: false }))
    const tg = await llamaBench(m.path, ["-t", THREADS.join(","), "-p", "0", "-n", `${spec.maxTokens}`, "-d", `${p}`, "-fa", "0"])
    return { faOff, tg }
  })().catch((e: unknown) => (e instanceof Error ? e.message.split("\n")[0] ?? e.message : String(e)))
  return measured.map((e) => ({
    params: m.params,
    threads: e.threads,
    embedded: e,
    loadMs: providerLoadMs(path.join(logDir, `throughput-embedded-t${e.threads}.log`)),
    promptTokens: p,
    pp: findRow(bench, { threads: e.threads, nPrompt: p, nGen: 0, nDepth: 0 }),
    tg: findRow(bench, { threads: e.threads, nPrompt: 0, nGen: spec.maxTokens, nDepth: p }),
    ...loopFields(library.get(e.threads)),
    threadpool: threadpoolOf(path.join(logDir, `throughput-embedded-t${e.threads}.log`)),
    ...perGraphFields(perGraph.get(e.threads)),
    ...(typeof off === "string" ? { flashAttnOffFailure: off } : {
      flashAttnOff: {
        embedded: off.faOff.find((x) => x.threads === e.threads)!,
        tg: findRow(off.tg, { threads: e.threads, nPrompt: 0, nGen: spec.maxTokens, nDepth: p, flashAttn: false })
      }
    })
  }))
}

const perGraphFields = (r: ThroughputResult | string | undefined): Pick<EngineRow, "perGraph" | "perGraphFailure"> =>
  r === undefined ? {} : typeof r === "string" ? { perGraphFailure: r } : { perGraph: r }

/**
 * What `autotune serve`'s context computed on, from its log `logFile`: `persistent, N thread(s) attached` where the
 * threadpool library said it attached a pool; `loaded, never attached` where only the loaded line says it was loaded
 * (the library then says why on its own line); `per graph (<why>)` as the loaded line says it; null without that line.
 */
export const threadpoolOf = (logFile: string): string | null => {
  const text = providerLog(logFile)
  if (text === null) return null
  const fellBack = /^autotune: (?:a llama\.cpp context changed its thread count|ggml could not make a threadpool)/m.test(text)
  if (fellBack) return "per graph after all (its log says why)"
  const attached = /^autotune: a persistent ggml threadpool of (\d+) thread\(s\) attached/m.exec(text)
  if (attached !== null) return `persistent, ${attached[1]} thread(s) attached`
  const said = /\bloaded \S+ in .*, ggml threadpool (.*?)\s*$/m.exec(text)?.[1]
  return said === undefined ? null : said.startsWith("persistent") ? "loaded, never attached" : said
}

const loopFields = (r: LibraryLoopResult | string | undefined): Pick<EngineRow, "library" | "libraryFailure"> =>
  r === undefined ? {} : typeof r === "string" ? { libraryFailure: r } : { library: r }
