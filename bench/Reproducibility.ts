/**
 * Reproducibility, measured (SPEC N-4, issue 13 item 6): the same tune
 * repeated K times on this machine, each with a fresh database, and how often
 * it gave the same Stage 1 choice and the same recipe hash; then K more with a
 * CPU-burning neighbour running for part of each tune, where the Stage 1
 * choice must not change and the quiet-machine guard (N-3) must notice.
 */
import * as ChildProcess from "node:child_process"
import * as path from "node:path"
import type { Figure } from "./Report.js"
import type { Outcome } from "./Steps.js"
import { runTune } from "./TuneRun.js"

/** The repeated tune's fixed inputs: short context, the bench's two models, llama-server. Units: tokens, ms. */
export const REPRO = {
  /** Tunes per row. */
  k: 5,
  targetContext: 256,
  /**
   * Between the 130M's slowest Stage 2 cell and the 1.1B's TTFT at 256 tokens with a
   * 2× margin both ways on this machine kind (llama-server, 2 cores: 130M ≤ 0.5 s at 1
   * thread, 1.1B ≥ 2 s), so the Stage 1 choice is the machine's, not the minute's.
   */
  gateTtftMs: 1000,
  maxTokens: 64,
  kvBitsAxis: "unset,8",
  threadsAxis: "1,2",
  /** The neighbour: one core burnt from this long after the tune starts, for this long, s. */
  burn: { afterS: 2, forS: 12 }
} as const

/** One repeated tune: what it chose, its recipe hash, its recommended tok/s, what the guard saw. */
export interface ReproRun {
  readonly exitCode: number | null
  readonly model: string | null
  readonly recipeHash: string | null
  readonly tps: number | null
  readonly disturbedTrials: number | null
  readonly wallS: number
}

/** Both rows' runs. */
export interface Reproducibility {
  readonly quiet: ReadonlyArray<ReproRun>
  readonly burnt: ReadonlyArray<ReproRun>
}

/** `node -e "for(;;){}"`, started after `afterS` and killed after `forS` more: one core burnt for part of a tune. */
const burner = (afterS: number, forS: number) => {
  let child: ChildProcess.ChildProcess | null = null
  const start = setTimeout(() => {
    child = ChildProcess.spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" })
  }, afterS * 1000)
  const stop = setTimeout(() => child?.kill("SIGKILL"), (afterS + forS) * 1000)
  return () => {
    clearTimeout(start)
    clearTimeout(stop)
    child?.kill("SIGKILL")
  }
}

/**
 * Runs the K quiet tunes, then the K with a neighbour, each in a fresh
 * directory under `workDir`, one after another. `args` are the tune's flags
 * (the runner adds `--db-path` and `--json`). Throws only when a tune cannot
 * be started at all.
 */
export const runReproducibility = async (
  workDir: string,
  args: ReadonlyArray<string>,
  log: (line: string) => void
): Promise<Reproducibility> => {
  const once = async (name: string, burn: boolean): Promise<ReproRun> => {
    const stopBurner = burn ? burner(REPRO.burn.afterS, REPRO.burn.forS) : () => {}
    try {
      const run = await runTune(path.join(workDir, name), args, log)
      const rec = run.doc?.recommendation ?? null
      const r: ReproRun = {
        exitCode: run.exitCode,
        model: rec === null ? null : path.basename(rec.model),
        recipeHash: run.doc?.recipe_hash ?? null,
        tps: rec?.tps_median ?? null,
        disturbedTrials: run.doc?.disturbed_trials ?? null,
        wallS: run.wallMs / 1000
      }
      log(`bench: ${name}: ${r.model ?? "nothing"} ${r.recipeHash?.slice(7, 19) ?? ""} ${r.tps?.toFixed(1) ?? "n/a"} tok/s, ${r.disturbedTrials ?? "?"} disturbed trial(s), ${r.wallS.toFixed(0)} s`)
      return r
    } finally {
      stopBurner()
    }
  }
  const quiet: Array<ReproRun> = []
  for (let i = 1; i <= REPRO.k; i++) quiet.push(await once(`repro-quiet-${i}`, false))
  const burnt: Array<ReproRun> = []
  for (let i = 1; i <= REPRO.k; i++) burnt.push(await once(`repro-burnt-${i}`, true))
  return { quiet, burnt }
}

/** How many of `xs` equal their most common non-null value, and that value. */
const mode = <A>(xs: ReadonlyArray<A | null>): { readonly value: A | null; readonly count: number } => {
  const counts = new Map<A, number>()
  for (const x of xs) if (x !== null) counts.set(x, (counts.get(x) ?? 0) + 1)
  let best: { value: A | null; count: number } = { value: null, count: 0 }
  for (const [value, count] of counts) if (count > best.count) best = { value, count }
  return best
}

/**
 * The reproducibility rows (figure 7): the quiet row's same-Stage-1 and
 * same-recipe-hash fractions (targets 5/5 and ≥ 4/5) and the spread of the
 * recommended tok/s (max ÷ min); the neighbour row's Stage 1 choices equal to
 * the quiet row's (target 5/5) and its disturbed trials (target > 0 in every run).
 */
export const reproducibilityFigures = (o: Outcome<Reproducibility>): Array<Figure> => {
  const k = REPRO.k
  const na = (label: string, key: string): Figure => ({
    key, n: 7, label, value: null, unit: "", target: null, detail: `n/a: ${o.reason}`
  })
  if (o.value === null) {
    return [
      na("same Stage 1 choice, quiet (of 5)", "repro.quiet.stage1"),
      na("same recipe hash, quiet (of 5)", "repro.quiet.hash"),
      na("same Stage 1 choice with a neighbour (of 5)", "repro.burnt.stage1"),
      na("tunes with a disturbed trial, with a neighbour (of 5)", "repro.burnt.disturbed")
    ]
  }
  const { quiet, burnt } = o.value
  const stage1 = mode(quiet.map((r) => r.model))
  const hash = mode(quiet.map((r) => r.recipeHash))
  const tps = quiet.flatMap((r) => (r.tps === null ? [] : [r.tps]))
  const spread = tps.length > 0 && Math.min(...tps) > 0 ? Math.max(...tps) / Math.min(...tps) : null
  const sameAsQuiet = burnt.filter((r) => r.model !== null && r.model === stage1.value).length
  const noticed = burnt.filter((r) => (r.disturbedTrials ?? 0) > 0).length
  const list = (rs: ReadonlyArray<ReproRun>, f: (r: ReproRun) => string) => rs.map(f).join(", ")
  return [
    {
      key: "repro.quiet.stage1", n: 7, label: `same Stage 1 choice, quiet (of ${k})`, value: stage1.count, unit: "",
      target: { op: ">=", value: k }, detail: `chose ${list(quiet, (r) => r.model ?? `nothing (exit ${r.exitCode})`)}`
    },
    {
      key: "repro.quiet.hash", n: 7, label: `same recipe hash, quiet (of ${k})`, value: hash.count, unit: "",
      target: { op: ">=", value: k - 1 }, detail: `hashes ${list(quiet, (r) => r.recipeHash?.slice(7, 19) ?? "none")}`
    },
    {
      key: "repro.quiet.tps_spread", n: 7, label: "recommended tok/s, max ÷ min over the quiet tunes", value: spread, unit: "×",
      target: null, sub: true, detail: `tok/s ${list(quiet, (r) => r.tps?.toFixed(1) ?? "n/a")}; wall ${list(quiet, (r) => `${r.wallS.toFixed(0)} s`)}`
    },
    {
      key: "repro.burnt.stage1", n: 7, label: `same Stage 1 choice with a neighbour (of ${k})`, value: sameAsQuiet, unit: "",
      target: { op: ">=", value: k },
      detail: `one core burnt ${REPRO.burn.afterS}–${REPRO.burn.afterS + REPRO.burn.forS} s into each tune; chose ${list(burnt, (r) => r.model ?? "nothing")}; hashes ${
        list(burnt, (r) => r.recipeHash?.slice(7, 19) ?? "none")
      }`
    },
    {
      key: "repro.burnt.disturbed", n: 7, label: `tunes with a disturbed trial, with a neighbour (of ${k})`, value: noticed, unit: "",
      target: { op: ">=", value: k }, sub: true,
      detail: `disturbed trials ${list(burnt, (r) => `${r.disturbedTrials ?? "?"}`)}; wall ${list(burnt, (r) => `${r.wallS.toFixed(0)} s`)}`
    }
  ]
}
