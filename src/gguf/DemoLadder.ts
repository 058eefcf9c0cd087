/** The built-in demo ladder (SPEC A-1): synthetic models, largest first, written once into the cache. */
import * as fs from "node:fs"
import * as path from "node:path"
import { Console, Effect } from "effect"
import type { SynthFailed } from "../domain/AutotuneError.js"
import { writeSyntheticModel } from "./SyntheticModel.js"

/** One rung of the built-in ladder: a synthetic model written once into the cache. */
export interface Rung {
  readonly params: number
  readonly label: string
}

/**
 * The demo ladder, largest first (SPEC A-1: the default list is curated
 * largest-first), sized so the demo's model decision holds with a margin of
 * at least 2× on both sides of the 2.5 s gate (SPEC N-4, issue 13 item 5),
 * measured on 2 cores (AMD EPYC) at the demo's 512 tokens. The top rung is
 * a 3B (Llama-3.2-3B's shape): its embedded TTFT was 9.1 s [8.3–10.3] at
 * 2 threads (2026-12-07 18:40), 3.6× over the gate. A 1.1B top rung was
 * not enough: node-llama-cpp's AVX-512 CPU backend prefills about twice as
 * fast as the shared llama.cpp (AVX2) build, and the 1.1B's TTFT came to
 * 2.7–2.9 s, within 15 % of the gate (README run 24, and again at 18:36), so a fast hour
 * could let it through. The 42M's slowest Stage 2 cell (kv=8 with flash
 * attention, 1 thread) has a TTFT p95 of 0.36–0.62 s embedded, 4× under
 * the gate or more — 2× on a machine twice as slow. Measured on 2 cores
 * only: a machine with many more cores prefills the 3B faster (at 8 about
 * 2.3 s if it scaled linearly), where the demo may choose it; under ~2.2 GB
 * available the memory estimate rules it out first. A 130M middle rung cannot give
 * 2× both ways (its kv=8 cells prefill 2–3× slower than the 42M's). 15M is
 * the small alternate. The 3B is written once (1.7 GB, about 8 s).
 */
export const LADDER: ReadonlyArray<Rung> = [
  { params: 3e9, label: "3B" },
  { params: 42e6, label: "42M" },
  { params: 15e6, label: "15M" }
]

/** Earlier demo ladders (README runs 1 to 24: a 1.1B top rung), so that a demo run made with one can be resumed. */
const EARLIER_LADDERS: ReadonlyArray<ReadonlyArray<Rung>> = [
  [{ params: 1.1e9, label: "1.1B" }, LADDER[1]!, LADDER[2]!]
]

/**
 * The demo ladder whose files under `dir` are exactly `ids`, in its order, or null: this one, or with
 * `earlier` an earlier one too (a resumed demo run names its own ladder's files, which are written again
 * where missing; an operator's list naming an earlier ladder's files is an operator's list).
 */
export const ladderOf = (ids: ReadonlyArray<string>, dir: string, earlier: boolean): ReadonlyArray<Rung> | null =>
  (earlier ? [LADDER, ...EARLIER_LADDERS] : [LADDER]).find((l) => ids.length === l.length && l.every((r, i) => ids[i] === rungPath(dir, r))) ?? null

/**
 * Settings the demo uses where the operator gave no flag: the target context
 * (tokens), the TTFT gate (ms) and Stage 2 axes (kv-bits unset/8 × threads
 * `demoThreadsAxis` × flash attention on/off; a quantized KV cell runs with it
 * on only: six cells on 2 cores), so the demo shows a gate-out and a real
 * hill-climb in about two minutes on 2 cores. Each axis lists the default
 * first (kv unset; the tune's default threads, the physical core count;
 * flash attention on, what llama.cpp's `auto` picks on CPU), so a cell
 * the noise cannot tell from the default keeps the default (SPEC B-3, N-2).
 * Flash attention matters most there (issue 14, measured on 2 cores, 42M at
 * 512 tokens of context): llama.cpp turns it on on CPU, and off decodes
 * 1.2–1.5× faster in the embedded provider (llama-bench: 1.4–1.6×).
 */
export const DEMO_DEFAULTS = {
  targetContext: 512,
  gateTtftMs: 2500,
  kvBitsAxis: "unset,8",
  flashAttnAxis: "on,off"
} as const

/** The demo's threads axis on a machine of `cores` physical cores: all of them (the provider's default) first, then 1. */
export const demoThreadsAxis = (cores: number): string => (cores <= 1 ? "1" : `${cores},1`)

/** Path of a rung's model file under `dir`. */
export const rungPath = (dir: string, r: Rung): string => path.join(dir, `synth-${r.label.toLowerCase()}-q4_0.gguf`)

/**
 * Ensures every rung's Q4_0 model of `ladder` (this one, or an earlier one a resumed run names:
 * `ladderOf`) exists under `dir`, writing the missing ones (seed 1; written once, reused after).
 * Returns their paths, largest first. Fails with SynthFailed when a model cannot be written.
 */
export const ensureLadder = (dir: string, ladder: ReadonlyArray<Rung>): Effect.Effect<ReadonlyArray<string>, SynthFailed> =>
  Effect.forEach(ladder, (r) => {
    const file = rungPath(dir, r)
    return fs.existsSync(file) ? Effect.succeed(file) : Console.error(
      `autotune: writing synthetic ${r.label} model to ${file} (once; cached for later runs)`
    ).pipe(
      Effect.zipRight(writeSyntheticModel({ params: r.params, quant: "q4_0", seed: 1, outPath: file })),
      Effect.as(file)
    )
  })
