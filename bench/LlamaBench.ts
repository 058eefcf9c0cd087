/**
 * llama.cpp's own speed for a GGUF on this machine (figure 4's reference):
 * `llama-bench -o json`, one row per test. A pp test is prefill of `n_prompt`
 * tokens, a tg test is decode of `n_gen` tokens after `n_depth` tokens of
 * context. Each test runs a warm-up and then its repetitions (`-r`, default 5);
 * the bench takes the median of the repetitions' tokens/s (`samples_ts`), which
 * a single disturbed repetition cannot move the way it moves the mean (`avg_ts`;
 * with 2 threads on 2 cores any other process stalls both threads).
 */
import * as ChildProcess from "node:child_process"
import { median } from "../src/domain/Stats.js"
import { llamaBenchPath } from "./Tools.js"

/** One llama-bench test result. Rates in tokens/s. */
export interface LlamaBenchRow {
  readonly threads: number
  readonly nPrompt: number
  readonly nGen: number
  readonly nDepth: number
  /** Whether flash attention was on (llama-bench `-fa`; its default `auto` is on, on CPU). */
  readonly flashAttn: boolean
  /** Median over the repetitions. */
  readonly medianTps: number
  /** llama-bench's own mean and standard deviation over the repetitions. */
  readonly avgTps: number
  readonly stddevTps: number
  readonly samplesTps: ReadonlyArray<number>
}

/**
 * Runs `llama-bench -m model <args> -o json` (≤ 10 min) and parses its rows.
 * Asynchronous, so the bench's CPU meter keeps sampling. Rejects on a non-zero exit.
 */
export const llamaBench = (model: string, args: ReadonlyArray<string>): Promise<Array<LlamaBenchRow>> =>
  new Promise((resolve, reject) =>
    ChildProcess.execFile(
      llamaBenchPath(),
      ["-m", model, ...args, "-o", "json"],
      { encoding: "utf8", timeout: 600_000, maxBuffer: 16 * 2 ** 20 },
      (err, stdout, stderr) => {
        if (err !== null) return reject(new Error(`llama-bench failed: ${err.message}\n${stderr.slice(-2000)}`))
        const rows = JSON.parse(stdout) as ReadonlyArray<Record<string, unknown>>
        resolve(rows.map((r) => {
          const samples = Array.isArray(r["samples_ts"]) ? (r["samples_ts"] as Array<unknown>).map(Number) : []
          return {
            threads: Number(r["n_threads"]),
            nPrompt: Number(r["n_prompt"]),
            nGen: Number(r["n_gen"]),
            nDepth: Number(r["n_depth"] ?? 0),
            flashAttn: Number(r["flash_attn"] ?? 1) !== 0,
            medianTps: median(samples) ?? Number(r["avg_ts"]),
            avgTps: Number(r["avg_ts"]),
            stddevTps: Number(r["stddev_ts"]),
            samplesTps: samples
          }
        }))
      }
    )
  )

/** The row of a test with these threads, prompt, generation and depth; null when llama-bench did not run it. */
export const findRow = (
  rows: ReadonlyArray<LlamaBenchRow>,
  q: { readonly threads: number; readonly nPrompt: number; readonly nGen: number; readonly nDepth: number; readonly flashAttn?: boolean }
): LlamaBenchRow | null =>
  rows.find((r) =>
    r.threads === q.threads && r.nPrompt === q.nPrompt && r.nGen === q.nGen && r.nDepth === q.nDepth &&
    (q.flashAttn === undefined || r.flashAttn === q.flashAttn)
  ) ?? null
