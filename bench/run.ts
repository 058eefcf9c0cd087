/**
 * `npm run bench`: what a tune costs against the physical limit, measured side
 * by side in one run on two synthetic llama models (~130M and 1.1B parameters,
 * Q4_0, generated once into `.cache/bench-models/`). See bench/README.md for
 * every figure, its unit, its target and where each number comes from.
 *
 * Steps, one after another on an otherwise quiet machine (it waits for one):
 *   1. llama-bench on the 130M model (raw prefill and decode speed)
 *   2. the same streaming requests to the embedded provider and llama-server
 *   3. a real tune with `--provider llama-server`, sampled from /proc
 *   4. the same tune with the embedded provider (skip: --skip-embedded-tune)
 *   5. the 1.1B's Stage 2 cells an exhaustive sweep would add
 * Prints ONE table on stdout (progress on stderr) and writes the same figures,
 * with the raw measurements, to `bench/results/<ISO-8601 basic timestamp>.json`.
 * Compares with `bench/baseline.json` when present; `--save-baseline` writes
 * this run's document there unless the run is disturbed. A step that throws is
 * recorded, its figures print as "n/a: <reason>", and the other steps still run:
 * exit 0 unless something outside the steps crashed (1); exit 2 when llama-server
 * or llama-bench is missing.
 *
 * Flags: --skip-embedded-tune, --no-wait (do not wait for a quiet machine),
 *        --save-baseline.
 */
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { cells, parseKvBitsAxis, parseThreadsAxis } from "../src/domain/Axes.js"
import { runExhaustiveCells, type CellCost } from "./ExhaustiveCells.js"
import { findRow, llamaBench, type LlamaBenchRow } from "./LlamaBench.js"
import { machineInfo, startCpuMeter, type StepMeasure, waitForQuiet } from "./Machine.js"
import { type Figure, renderTable } from "./Report.js"
import { measureThroughput, type ThroughputResult } from "./Throughput.js"
import { autotuneBin, llamaServerPath, missingTools, repoRoot } from "./Tools.js"
import { type TuneCost, tuneCost } from "./TuneCost.js"
import { runTune, type TuneRun } from "./TuneRun.js"

/** The bench's fixed settings: the tune's inputs and the throughput request. Units: tokens, ms. */
const SETTINGS = {
  /** 1024 tokens of prompt per probe. */
  targetContext: 1024,
  /**
   * TTFT gate per provider, ms, fixed so runs compare: between the 130M's slowest
   * cell and the 1.1B's fastest TTFT at 1024 tokens, measured here (README, "gate"):
   * llama-server 2.9 s (kv=8 threads=1) vs ~9 s; embedded 2.1 s vs ~4.6 s (its
   * bundled llama.cpp prefills twice as fast as the shared AVX2 build on this CPU).
   */
  gateTtftMs: { "llama-server": 5000, embedded: 3000 },
  maxTokens: 64,
  kvBitsAxis: "unset,8",
  threadsAxis: "1,2",
  stage1Replicates: 3,
  stage2Replicates: 3,
  throughput: { contextTokens: 2048, promptWords: 570, maxTokens: 64, warmup: 1, requests: 5 }
} as const

const MODELS = [
  { params: "1.1B", file: "synth-1.1B-q4_0.gguf" },
  { params: "130M", file: "synth-130M-q4_0.gguf" }
] as const

const argv = new Set(process.argv.slice(2))
const log = (line: string) => process.stderr.write(`${line}\n`)
const modelsDir = path.join(repoRoot, ".cache", "bench-models")
const workDir = path.join(repoRoot, ".cache", "bench-run")
const resultsDir = path.join(repoRoot, "bench", "results")
const baselinePath = path.join(repoRoot, "bench", "baseline.json")

/** The models, written with the project's synthesizer when missing (seed 1), reused otherwise. */
const ensureModels = (): { readonly big: string; readonly small: string } => {
  fs.mkdirSync(modelsDir, { recursive: true })
  for (const m of MODELS) {
    const out = path.join(modelsDir, m.file)
    if (fs.existsSync(out)) continue
    log(`bench: writing ${out}`)
    const tmp = `${out}.tmp-${process.pid}`
    ChildProcess.execFileSync(process.execPath, [autotuneBin, "synth", "--params", m.params, "--quant", "q4_0", "--out", tmp], {
      stdio: ["ignore", "ignore", "inherit"]
    })
    fs.renameSync(tmp, out)
  }
  return { big: path.join(modelsDir, MODELS[0].file), small: path.join(modelsDir, MODELS[1].file) }
}

/**
 * Per step: wall time (s), other processes' and the bench's own CPU during it
 * (cores), the wait for a quiet machine before it (s; whether it got quiet),
 * the 1-min load average when it began, and why it failed (null when it did not).
 */
const steps: Array<StepMeasure & { step: string; waitedS: number; quiet: boolean; loadavg1: number; error: string | null }> = []

/**
 * Waits (≤ `timeoutS`) until other processes leave the machine alone; a no-op
 * with --no-wait. The load average counts only before the first step: later it
 * holds the bench's own previous step.
 */
const quietWait = (timeoutS: number, maxLoadavg: number) =>
  argv.has("--no-wait")
    ? Promise.resolve({ quiet: true, waitedS: 0 })
    : waitForQuiet({ maxCores: 0.3, maxLoadavg, timeoutS }, log)

/** A step's outcome: its value, or (it threw) why there is none: "<step>: <first line of the error>". */
type Outcome<A> = { readonly value: A; readonly reason: null } | { readonly value: null; readonly reason: string }

/**
 * Runs one step after waiting for a quiet machine (other engineers' test runs
 * come in bursts). An exception in the step does not stop the bench: the step is
 * recorded as failed and its figures are n/a with the reason.
 */
const step = async <A>(name: string, f: () => Promise<A> | A, first = false): Promise<Outcome<A>> => {
  const q = first ? await quietWait(300, 1.5) : await quietWait(120, Infinity)
  const loadavg1 = os.loadavg()[0]!
  log(`bench: ${name}…`)
  const meter = startCpuMeter()
  let out: Outcome<A>
  try {
    out = { value: await f(), reason: null }
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e)
    out = { value: null, reason: `${name}: ${(message.trim().split("\n")[0] ?? "").slice(0, 200) || "failed"}` }
    log(`bench: ${name} FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
  }
  const m = meter.stop()
  steps.push({ step: name, ...m, waitedS: q.waitedS, quiet: q.quiet, loadavg1, error: out.reason })
  log(`bench: ${name}: ${m.seconds.toFixed(1)} s (other processes: ${m.foreignCores.toFixed(2)} cores; the bench itself: ${m.benchCores.toFixed(3)} cores)`)
  return out
}

type Provider = keyof typeof SETTINGS.gateTtftMs

const tuneArgs = (provider: Provider, models: { big: string; small: string }) => [
  "--provider", provider,
  "--candidate-models", `${models.big},${models.small}`,
  "--target-context", `${SETTINGS.targetContext}`,
  "--gate-ttft-ms", `${SETTINGS.gateTtftMs[provider]}`,
  "--max-tokens", `${SETTINGS.maxTokens}`,
  "--kv-bits-axis", SETTINGS.kvBitsAxis,
  "--threads-axis", SETTINGS.threadsAxis,
  "--stage1-replicates", `${SETTINGS.stage1Replicates}`,
  "--stage2-replicates", `${SETTINGS.stage2Replicates}`,
  ...(provider === "llama-server" ? ["--provider-bin", llamaServerPath()] : [])
]

const finite = (x: number | null | undefined): x is number => typeof x === "number" && Number.isFinite(x)
/** a ÷ b; null unless both are finite numbers and b ≠ 0 (no NaN or ∞ into the table). */
const ratio = (a: number | null | undefined, b: number | null | undefined): number | null =>
  finite(a) && finite(b) && b !== 0 ? a / b : null
/** A number with `digits` decimals, or "n/a" (never "undefined" in a detail). */
const fx = (x: number | null | undefined, digits: number) => (finite(x) ? x.toFixed(digits) : "n/a")
const s1 = (ms: number) => `${fx(ms / 1000, 1)} s`
const pct = (part: number, whole: number) => (whole > 0 ? `${((100 * part) / whole).toFixed(0)}%` : "")
const na = (reason: string) => `n/a: ${reason}`

/** Figures 1, 2 and 6 of one tune; every row n/a with the reason when the tune's step failed. */
const tuneFigures = (p: string, o: Outcome<TuneCost>, smallModel: string, bigModel: string): Array<Figure> => {
  const c = o.value
  const v = (f: (c: TuneCost) => number | null): number | null => (c === null ? null : f(c))
  const d = (f: (c: TuneCost) => string): string => (c === null ? na(o.reason!) : f(c))
  const verdict = (c: TuneCost) =>
    c.recommendedModel !== null && path.resolve(c.recommendedModel) === smallModel &&
      c.trials.some((t) => t.stage === 1 && path.resolve(t.model) === bigModel && !t.fits)
      ? "1.1B gated out, 130M recommended"
      : `UNEXPECTED: exit ${c.exitCode} (${c.exitReason ?? "no reason given"}), recommended ${c.recommendedModel === null ? "nothing" : path.basename(c.recommendedModel)}`
  const remainder = (c: TuneCost) => c.breakdown.startupMs + c.breakdown.betweenMs + c.breakdown.finishMs
  const part = (key: string, label: string, ms: (c: TuneCost) => number, detail: (c: TuneCost) => string): Figure => ({
    key: `overhead.${p}.${key}`, n: 1, label, value: v((c) => ms(c) / 1000), unit: "s", target: null, sub: true,
    detail: d((c) => `${pct(ms(c), c.breakdown.wallMs)} of wall; ${detail(c)}`)
  })
  return [
    {
      key: `overhead.${p}`, n: 1, label: `overhead: tune wall ÷ physical limit (${p})`, value: v((c) => c.overhead), unit: "×",
      target: { op: "<=", value: 1.1 },
      detail: d((c) => `wall ${s1(c.breakdown.wallMs)} ÷ limit ${s1(c.limit.totalMs)} (provider load + request time); ${c.trials.length} trials; ${verdict(c)}`)
    },
    {
      key: `overhead.${p}.incl_gate`, n: 1, label: "limit incl. gate waits: the cut requests' gate time counted as provider time",
      value: v((c) => c.overheadInclGate), unit: "×", target: null, sub: true,
      detail: d((c) => `wall ${s1(c.breakdown.wallMs)} ÷ (limit ${s1(c.limit.totalMs)} + gate waits ${s1(c.limit.gateWaitMs)})`)
    },
    {
      key: `overhead.${p}.limit`, n: 1, label: "physical limit (load + request time)", value: v((c) => c.limit.totalMs / 1000), unit: "s", target: null, sub: true,
      detail: d((c) =>
        `provider-logged load ${s1(c.limit.loadMs)} (${c.limit.loadFallbacks} trial${c.limit.loadFallbacks === 1 ? "" : "s"} fell back to load_ms) + server request time ${s1(c.limit.requestMs)}`
      )
    },
    part("load", "load (spawn → ready, Σ load_ms)", (c) => c.breakdown.loadMs, (c) => `provider's own load ${s1(c.limit.loadMs)}`),
    part("prewarm", "pre-warm (Σ prewarm_ms)", (c) => c.breakdown.preWarmMs, () => "not in the limit: first-use costs kept out of the gate (D-1)"),
    part("probe", "probe (Σ probe_ms)", (c) => c.breakdown.probeMs, (c) => `server-reported ${s1(c.limit.requestMs)} + gate waits ${s1(c.limit.gateWaitMs)}`),
    part(
      "remainder",
      "remainder (start-up, stops, SQLite, tuner)",
      remainder,
      (c) => `start-up ${s1(c.breakdown.startupMs)}, between trials ${s1(c.breakdown.betweenMs)}, finish ${s1(c.breakdown.finishMs)}; providers' stop ≈ ${s1(c.breakdown.providerStopMs)}`
    ),
    {
      key: `loads_per_stage1.${p}`, n: 2, label: `loads per Stage 1 candidate, max (${p})`,
      value: v((c) => (c.loadsPerStage1.length === 0 ? null : Math.max(...c.loadsPerStage1.map((x) => x.loads)))), unit: "",
      target: { op: "=", value: 1 },
      detail: d((c) => `${c.loadsPerStage1.map((x) => `${path.basename(x.model)}: ${x.loads}`).join(", ")}; provider logs outside trials: ${c.strayLogs}`)
    },
    {
      key: `tuner_rss_mb.${p}`, n: 6, label: `tuner peak RSS (${p})`, value: v((c) => c.tunerPeakRssMb), unit: "MB", target: null,
      detail: d(() => "VmHWM of the tune process (providers excluded)")
    },
    {
      key: `tuner_cpu_share.${p}`, n: 6, label: `tuner CPU ÷ provider CPU during probes (${p})`,
      value: v((c) => ratio(c.probeCpu.tunerCpuS, c.probeCpu.providersCpuS)), unit: "×", target: { op: "<=", value: 0.05 },
      detail: d((c) => `tuner (+ shims) ${fx(c.probeCpu.tunerCpuS, 2)} s vs providers ${fx(c.probeCpu.providersCpuS, 1)} s of CPU over ${fx(c.probeCpu.windowS, 1)} s of probes`)
    },
    {
      key: `tuner_cpu_share_run.${p}`, n: 6, label: "over the whole tune", value: v((c) => ratio(c.runCpu.tunerCpuS + c.runCpu.helpersCpuS, c.runCpu.providersCpuS)), unit: "×",
      target: null, sub: true,
      detail: d((c) => `tuner ${fx(c.runCpu.tunerCpuS, 1)} s + shims and helpers ${fx(c.runCpu.helpersCpuS, 1)} s vs providers ${fx(c.runCpu.providersCpuS, 1)} s of CPU (start-up included)`)
    }
  ]
}

/** Figure 3: embedded ÷ llama-server at `t` threads; n/a with the reason when the throughput step failed. */
const throughputFigures = (t: number, o: Outcome<ReadonlyArray<ThroughputResult>>): Array<Figure> => {
  const emb = o.value?.find((r) => r.kind === "embedded" && r.threads === t) ?? null
  const ls = o.value?.find((r) => r.kind === "llama-server" && r.threads === t) ?? null
  const row = (key: string, label: string, f: (r: ThroughputResult) => number | null, sub: boolean): Figure => ({
    key: `embedded_vs_llama_server.${key}.t${t}`, n: 3, label: `${label}, ${t} thread${t > 1 ? "s" : ""}`,
    value: emb === null || ls === null ? null : ratio(f(emb), f(ls)), unit: "×", target: { op: ">=", value: 0.95 }, sub,
    detail: emb === null || ls === null
      ? na(o.reason ?? `no result at ${t} threads`)
      : `${fx(f(emb), 1)} ÷ ${fx(f(ls), 1)} tok/s (median of ${emb.requests}; prompt ${fx(emb.promptTokens, 0)} vs ${fx(ls.promptTokens, 0)} tokens)`
  })
  return [
    row("prefill_server", "embedded ÷ llama-server prefill (server-reported)", (r) => r.serverPrefillTps, false),
    row("decode_server", "embedded ÷ llama-server decode (server-reported)", (r) => r.serverDecodeTps, false),
    row("prefill_client", "prefill (client: prompt tokens ÷ TTFT)", (r) => r.clientPrefillTps, true),
    row("decode_client", "decode (client: tokens ÷ stream time)", (r) => r.clientDecodeTps, true)
  ]
}

/** llama-bench's median tok/s and the range of its repetitions. */
const spread = (r: LlamaBenchRow | null) =>
  r === null ? "n/a" : `${fx(r.medianTps, 1)} tok/s (median of ${r.samplesTps.length}, ${fx(Math.min(...r.samplesTps), 0)}–${fx(Math.max(...r.samplesTps), 0)})`

/**
 * Figure 4: the tune's client-measured decode on llama-server ÷ llama-bench, per
 * thread count; n/a with the reason when the llama-server tune or llama-bench failed.
 */
const llamaBenchFigures = (tune: Outcome<{ readonly run: TuneRun }>, bench: Outcome<ReadonlyArray<LlamaBenchRow>>): Array<Figure> =>
  [2, 1].flatMap((t): Array<Figure> => {
    const why = tune.reason ?? bench.reason
    const trials = tune.value?.run.trials ?? []
    const rows = bench.value ?? []
    const cell = trials.find((x) => x.stage === 2 && x.kv_bits === null && x.threads === t)
    const tg = findRow(rows, { threads: t, nPrompt: 0, nGen: 64, nDepth: 0 })
    const tgDeep = findRow(rows, { threads: t, nPrompt: 0, nGen: 64, nDepth: SETTINGS.targetContext })
    const pp = findRow(rows, { threads: t, nPrompt: 512, nGen: 0, nDepth: 0 })
    const th = `${t} thread${t > 1 ? "s" : ""}`
    const d = (detail: string) => (why === null ? detail : na(why))
    return [
      {
        key: `client_vs_llama_bench.decode_depth.t${t}`, n: 4,
        label: `tune's client decode ÷ llama-bench tg64 after ${SETTINGS.targetContext} tokens, ${th}`,
        value: ratio(cell?.tps, tgDeep?.medianTps), unit: "×", target: { op: ">=", value: 0.95 },
        detail: d(`${fx(cell?.tps, 1)} tok/s (Stage 2 kv=unset threads=${t}, median of 3) ÷ llama-bench -d ${SETTINGS.targetContext} ${
          spread(tgDeep)} (same work: decode after the prompt)`)
      },
      {
        key: `client_vs_llama_bench.decode.t${t}`, n: 4, label: "÷ llama-bench tg64 (empty context)", sub: true,
        value: ratio(cell?.tps, tg?.medianTps), unit: "×", target: null,
        detail: d(`llama-bench -p 0 -n 64: ${spread(tg)}; attention over no context is cheaper`)
      },
      {
        key: `client_vs_llama_bench.server_decode.t${t}`, n: 4, label: `server-reported decode ÷ llama-bench tg64 after ${SETTINGS.targetContext}`, sub: true,
        value: ratio(cell?.server_decode_tps, tgDeep?.medianTps), unit: "×", target: null,
        detail: d(`${fx(cell?.server_decode_tps, 1)} tok/s (llama-server's predicted_per_second)`)
      },
      {
        key: `client_vs_llama_bench.server_prefill.t${t}`, n: 4, label: "server-reported prefill ÷ llama-bench pp512", sub: true,
        value: ratio(cell?.server_prompt_tps, pp?.medianTps), unit: "×", target: null,
        detail: d(`${fx(cell?.server_prompt_tps, 0)} tok/s at ${SETTINGS.targetContext} tokens ÷ ${spread(pp)}`)
      }
    ]
  })

/**
 * Figure 5: tune provider-seconds ÷ exhaustive sweep's, and whether the sweep
 * would recommend the same (it would not if a 1.1B cell fits). `gridCells` is
 * the number of Stage 2 cells of the grid: the tune's Stage 2 should have run
 * them all on the 130M, and the exhaustive step on the 1.1B.
 */
const sweepFigures = (tune: Outcome<TuneCost>, extra: Outcome<ReadonlyArray<CellCost>>, gridCells: number): Array<Figure> => {
  const c = tune.value
  const cellsRun = extra.value ?? []
  const extraS = cellsRun.reduce((a, x) => a + x.loadMs + x.preWarmMs + x.probeMs, 0) / 1000
  const fitting = cellsRun.filter((x) => x.fits)
  const why = tune.reason ?? extra.reason
  const stage2 = c === null ? 0 : c.trials.filter((t) => t.stage === 2).length
  const checks = [
    ...(c !== null && stage2 !== gridCells ? [`the tune ran ${stage2} Stage 2 trials, not the grid's ${gridCells} cells`] : []),
    ...(extra.value !== null && cellsRun.length !== gridCells ? [`the 1.1B ran ${cellsRun.length} of the grid's ${gridCells} cells`] : [])
  ]
  const sweep = fitting.length > 0
    ? `SWEEP DIFFERS (the 1.1B fits in cell ${fitting.map((x) => x.knobs).join(", ")})`
    : `sweep recommends the same (0/${cellsRun.length} 1.1B cells fit)`
  return [
    {
      key: "tune_vs_exhaustive.llama-server", n: 5, label: "provider-seconds: tune ÷ exhaustive sweep (llama-server)",
      value: c === null || extra.value === null ? null : ratio(c.providerSeconds, c.providerSeconds + extraS), unit: "×", target: { op: "<", value: 1 },
      detail: c === null || extra.value === null
        ? na(why!)
        : `${fx(c.providerSeconds, 1)} s ÷ (${fx(c.providerSeconds, 1)} s + 1.1B Stage 2 cells ${fx(extraS, 1)} s); ${sweep}${checks.map((x) => `; ${x}`).join("")}`
    },
    ...cellsRun.map((x): Figure => ({
      key: `tune_vs_exhaustive.extra.${x.knobs}`, n: 5, label: `1.1B ${x.knobs}`, sub: true,
      value: (x.loadMs + x.preWarmMs + x.probeMs) / 1000, unit: "s", target: null,
      detail: `load ${s1(x.loadMs)} + pre-warm ${s1(x.preWarmMs)} + probe ${s1(x.probeMs)}; ${x.fits ? "fits" : (x.reason ?? "does not fit")}`
    }))
  ]
}

/** Exits 2, saying where it looked, when llama-server or llama-bench is not an executable file. */
const checkTools = () => {
  const { looked, missing } = missingTools()
  if (missing.length === 0) return
  process.stderr.write(
    `bench: cannot run: ${missing.join("; ")}.\nLooked in:\n${looked.map((l) => `  ${l}\n`).join("")}` +
      "Set $LLAMA_SERVER or $LLAMA_CPP_BIN_DIR, put the llama.cpp tools on PATH, or build ../shared/llama.cpp.\n"
  )
  process.exit(2)
}

const main = async () => {
  checkTools()
  const machine = machineInfo(path.dirname(llamaServerPath()))
  const models = ensureModels()
  const axes = {
    kvBits: await Effect.runPromise(parseKvBitsAxis(SETTINGS.kvBitsAxis)),
    maxContext: [SETTINGS.targetContext],
    maxBatch: [1],
    threads: await Effect.runPromise(parseThreadsAxis(SETTINGS.threadsAxis))
  }
  const loadBefore = os.loadavg()
  const t0 = Date.now()
  fs.rmSync(workDir, { recursive: true, force: true })
  fs.mkdirSync(workDir, { recursive: true })

  // The first wait may be longer: the bench starts only on a quiet machine.
  const benchRows = await step("llama-bench", async () => [
    ...await llamaBench(models.small, ["-t", "1,2", "-p", "512", "-n", "64"]),
    ...await llamaBench(models.small, ["-t", "1,2", "-p", "0", "-n", "64", "-d", `${SETTINGS.targetContext}`])
  ], true)
  const tp = { model: models.small, logDir: workDir, ...SETTINGS.throughput }
  const throughput = await step("throughput", async () => {
    const out: Array<ThroughputResult> = []
    for (const t of [2, 1]) {
      out.push(await measureThroughput("llama-server", t, tp))
      out.push(await measureThroughput("embedded", t, tp))
    }
    return out
  })
  const tune = (provider: Provider) =>
    step(`tune ${provider}`, async () => {
      const run = await runTune(path.join(workDir, `tune-${provider}`), tuneArgs(provider, models), log)
      return { run, cost: tuneCost(run, SETTINGS.gateTtftMs[provider]) }
    })
  const lsTune = await tune("llama-server")
  const embTune = argv.has("--skip-embedded-tune") ? null : await tune("embedded")
  const extra = await step("1.1B cells", () =>
    runExhaustiveCells({
      model: models.big,
      axes,
      targetContext: SETTINGS.targetContext,
      gateTtftMs: SETTINGS.gateTtftMs["llama-server"],
      maxTokens: SETTINGS.maxTokens,
      replicates: SETTINGS.stage2Replicates,
      logDir: path.join(workDir, "exhaustive-logs")
    }, llamaServerPath()))

  const costOf = (o: Outcome<{ readonly cost: TuneCost }>): Outcome<TuneCost> => (o.reason === null ? { value: o.value.cost, reason: null } : o)
  const lsFigures = tuneFigures("llama-server", costOf(lsTune), models.small, models.big)
  const embFigures = embTune === null ? [] : tuneFigures("embedded", costOf(embTune), models.small, models.big)
  const tuneRows = (n: number) => [...lsFigures, ...embFigures].filter((f) => f.n === n)
  const figures: Array<Figure> = [
    ...tuneRows(1),
    ...tuneRows(2),
    ...throughputFigures(2, throughput),
    ...throughputFigures(1, throughput),
    ...llamaBenchFigures(lsTune, benchRows),
    ...sweepFigures(costOf(lsTune), extra, cells(axes).length),
    ...tuneRows(6)
  ]

  // Bench time proper: everything since the start less the waits for a quiet machine before steps.
  const waitedS = steps.reduce((a, x) => a + x.waitedS, 0)
  const stepsS = steps.reduce((a, x) => a + x.seconds, 0)
  const durationS = (Date.now() - t0) / 1000 - waitedS
  // Other processes' CPU over the steps (time-weighted), and the worst step.
  const foreign = stepsS > 0 ? steps.reduce((a, x) => a + x.foreignCores * x.seconds, 0) / stepsS : 0
  const benchCores = stepsS > 0 ? steps.reduce((a, x) => a + x.benchCores * x.seconds, 0) / stepsS : 0
  const worstStep = steps.reduce((a, x) => (x.foreignCores > a.foreignCores ? x : a), steps[0]!)
  const loadAtStart = steps[0]!.loadavg1
  const disturbedWhy = [
    ...(loadAtStart > 1.5 ? [`1-min load average ${loadAtStart.toFixed(2)} > 1.5 at the start`] : []),
    ...steps.filter((x) => !x.quiet).map((x) => `the wait for a quiet machine before ${x.step} timed out`),
    ...steps.filter((x) => x.foreignCores > 0.25).map((x) => `other processes used ${x.foreignCores.toFixed(2)} cores (> 0.25) during ${x.step}`)
  ]
  const disturbed = disturbedWhy.length > 0
  const failed = steps.filter((x) => x.error !== null)
  const measuredAt = new Date().toISOString()
  const doc = {
    measured_at: measuredAt,
    machine,
    duration_s: Math.round(durationS * 10) / 10,
    load: {
      loadavg_before_wait: loadBefore,
      loadavg_at_end: os.loadavg(),
      quiet_wait_s: Math.round(waitedS),
      other_processes_cores: Math.round(foreign * 1000) / 1000,
      steps,
      disturbed,
      disturbed_why: disturbedWhy
    },
    settings: SETTINGS,
    models: { big: path.relative(repoRoot, models.big), small: path.relative(repoRoot, models.small) },
    figures: figures.map((f) => ({ ...f, sub: f.sub ?? false })),
    raw: {
      tunes: { "llama-server": lsTune.value?.cost ?? null, embedded: embTune?.value?.cost ?? null },
      throughput: throughput.value,
      llama_bench: benchRows.value,
      exhaustive_extra_cells: extra.value
    }
  }

  let baseline = new Map<string, number | null>()
  let baselineNote = "no baseline (bench/baseline.json missing)"
  if (fs.existsSync(baselinePath)) {
    const b = JSON.parse(fs.readFileSync(baselinePath, "utf8")) as {
      measured_at?: string
      machine?: { cpu_model?: string; cores?: number }
      figures?: ReadonlyArray<{ key: string; value: number | null }>
    }
    baseline = new Map((b.figures ?? []).map((f) => [f.key, f.value]))
    baselineNote = `baseline: ${b.measured_at ?? "?"} on ${b.machine?.cpu_model ?? "?"} × ${b.machine?.cores ?? "?"} cores`
  }

  fs.mkdirSync(resultsDir, { recursive: true })
  const stamp = measuredAt.replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")
  const resultPath = path.join(resultsDir, `${stamp}.json`)
  fs.writeFileSync(resultPath, `${JSON.stringify(doc, null, 2)}\n`)
  // A disturbed run would make every later comparison wrong: never save it as the baseline.
  let saved = ""
  if (argv.has("--save-baseline")) {
    if (disturbed) {
      saved = `; --save-baseline REFUSED, bench/baseline.json left as it was: the run is DISTURBED (${disturbedWhy.join("; ")})`
      log(`bench${saved}`)
    } else {
      fs.writeFileSync(baselinePath, `${JSON.stringify(doc, null, 2)}\n`)
      saved = "; saved as bench/baseline.json"
    }
  }

  const fmtLoad = (l: ReadonlyArray<number>) => l.map((x) => x.toFixed(2)).join(" ")
  console.log([
    `llm-autotune bench, ${measuredAt}: ${machine.cpu_model} × ${machine.cores} cores, ${machine.ram_gib} GiB, Node ${machine.node_version}, llama.cpp ${machine.llama_cpp_commit ?? "?"}`,
    `models: ${path.basename(models.big)}, ${path.basename(models.small)}; target context ${SETTINGS.targetContext}, gate ${SETTINGS.gateTtftMs["llama-server"]} ms (llama-server) / ${SETTINGS.gateTtftMs.embedded} ms (embedded), grid kv ${SETTINGS.kvBitsAxis} × threads ${SETTINGS.threadsAxis}, replicates ${SETTINGS.stage1Replicates}/${SETTINGS.stage2Replicates}`,
    `load: 1-min loadavg ${loadAtStart.toFixed(2)} at start (${fmtLoad(loadBefore)} before waiting), ${fmtLoad(os.loadavg())} at end; other processes used ${foreign.toFixed(2)} cores on average, at most ${worstStep.foreignCores.toFixed(2)} (${worstStep.step}); the bench's own process ${benchCores.toFixed(3)} cores${disturbed ? `  DISTURBED (${disturbedWhy.join("; ")}): re-run when the machine is quiet` : ""}`,
    ...(failed.length === 0 ? [] : [`FAILED steps (their figures are n/a): ${failed.map((x) => x.error).join("; ")}`]),
    baselineNote,
    "",
    renderTable(figures, baseline),
    "",
    `bench took ${durationS.toFixed(0)} s, plus ${waitedS.toFixed(0)} s waiting for a quiet machine (steps: ${steps.map((s) => `${s.step} ${s.seconds.toFixed(0)} s`).join(", ")}); results: ${path.relative(repoRoot, resultPath)}${saved}`
  ].join("\n"))
}

// Step failures are reported in the table (exit 0); only a crash outside the steps exits 1.
// Exit explicitly: a failed step may leave a timer or handle behind that would keep the process alive.
main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench: crashed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    process.exit(1)
  }
)
