/**
 * Figure 3's raw numbers: one provider serving one GGUF with given threads,
 * f16 KV and one slot, sent the same streaming requests as the other provider.
 * The first `warmup` requests are discarded (first-use costs, as the tune's
 * pre-warm discards them); the rest are summarized by medians.
 */
import * as path from "node:path"
import { median } from "../src/domain/Stats.js"
import { promptOfWords } from "../src/domain/Prompt.js"
import { type ChatMeasure, streamChat } from "./ChatStream.js"
import { type ServerKind, startServer } from "./Servers.js"

/** Medians over the measured requests (tokens/s; ms; tokens). */
export interface ThroughputResult {
  readonly kind: ServerKind
  readonly threads: number
  readonly requests: number
  readonly promptTokens: number | null
  readonly serverPromptN: number | null
  readonly completionTokens: number | null
  readonly ttftMs: number | null
  readonly serverPrefillTps: number | null
  readonly serverDecodeTps: number | null
  /** The lowest and highest measured request's `serverDecodeTps` (absent in results saved before it was kept). */
  readonly serverDecodeTpsRange?: readonly [number, number] | null
  readonly clientPrefillTps: number | null
  readonly clientDecodeTps: number | null
  /** Spawn → ready, ms. */
  readonly readyMs: number
}

/** What every server is sent. */
export interface ThroughputSpec {
  readonly model: string
  readonly contextTokens: number
  /** Prompt length in words (the project's probe prompt text, P-1); about one token per word plus the chat template. */
  readonly promptWords: number
  readonly maxTokens: number
  readonly warmup: number
  readonly requests: number
  readonly logDir: string
  /** Flash attention on or off; absent: the build's `auto` (on, on CPU). */
  readonly flashAttn?: boolean
  /**
   * false: the embedded provider without its persistent ggml threadpool (`AUTOTUNE_THREADPOOL=off`,
   * src/serve/ThreadpoolShim.ts), llama.cpp's threads started per graph; absent: as `serve` runs.
   */
  readonly threadpool?: false
}

const med = (xs: ReadonlyArray<ChatMeasure>, f: (m: ChatMeasure) => number | null) =>
  median(xs.flatMap((m) => {
    const v = f(m)
    return v === null ? [] : [v]
  }))

const range = (xs: ReadonlyArray<number>): readonly [number, number] | null =>
  xs.length === 0 ? null : [Math.min(...xs), Math.max(...xs)]

/**
 * Starts `kind` with `threads`, sends `warmup + requests` requests one after
 * another (each a different prompt variant, so no cached prefix beyond the chat
 * template), stops it, and returns the medians of the measured ones.
 */
export const measureThroughput = async (kind: ServerKind, threads: number, s: ThroughputSpec): Promise<ThroughputResult> => {
  const server = await startServer({
    kind,
    model: s.model,
    threads,
    contextTokens: s.contextTokens,
    logPath: path.join(s.logDir, `throughput-${kind}-t${threads}${s.flashAttn === undefined ? "" : `-fa-${s.flashAttn ? "on" : "off"}`}${
      s.threadpool === false ? "-per-graph" : ""}.log`),
    ...(s.flashAttn === undefined ? {} : { flashAttn: s.flashAttn }),
    ...(s.threadpool === false ? { env: { AUTOTUNE_THREADPOOL: "off" } } : {})
  })
  try {
    const measured: Array<ChatMeasure> = []
    for (let i = 0; i < s.warmup + s.requests; i++) {
      const m = await streamChat(server.baseUrl, promptOfWords(s.promptWords, 1 + i), s.maxTokens)
      if (i >= s.warmup) measured.push(m)
    }
    return {
      kind,
      threads,
      requests: measured.length,
      promptTokens: med(measured, (m) => m.promptTokens),
      serverPromptN: med(measured, (m) => m.serverPromptN),
      completionTokens: med(measured, (m) => m.completionTokens),
      ttftMs: med(measured, (m) => m.ttftMs),
      serverPrefillTps: med(measured, (m) => m.serverPrefillTps),
      serverDecodeTps: med(measured, (m) => m.serverDecodeTps),
      serverDecodeTpsRange: range(measured.flatMap((m) => (m.serverDecodeTps === null ? [] : [m.serverDecodeTps]))),
      clientPrefillTps: med(measured, (m) => m.clientPrefillTps),
      clientDecodeTps: med(measured, (m) => m.clientDecodeTps),
      readyMs: server.readyMs
    }
  } finally {
    await server.stop()
  }
}
