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
 * this run's document there. Exit 0 unless something crashed.
 *
 * Flags: --skip-embedded-tune, --no-wait (do not wait for a quiet machine),
 *        --save-baseline.
 */
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { parseKvBitsAxis, parseThreadsAxis } from "../src/domain/Axes.js"
import type { TrialRow } from "../src/domain/Trial.js"
import { runExhaustiveCells, type CellCost } from "./ExhaustiveCells.js"
import { findRow, llamaBench, type LlamaBenchRow } from "./LlamaBench.js"
import { machineInfo, startCpuMeter, type StepMeasure, waitForQuiet } from "./Machine.js"
import { type Figure, renderTable } from "./Report.js"
import { measureThroughput, type ThroughputResult } from "./Throughput.js"
import { autotuneBin, llamaServerPath, repoRoot } from "./Tools.js"
import { type TuneCost, tuneCost } from "./TuneCost.js"
import { runTune } from "./TuneRun.js"

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
 * (cores), the wait for a quiet machine before it (s; whether it got quiet) and
 * the 1-min load average when it began.
 */
const steps: Array<StepMeasure & { step: string; waitedS: number; quiet: boolean; loadavg1: number }> = []

/**
 * Waits (≤ `timeoutS`) until other processes leave the machine alone; a no-op
 * with --no-wait. The load average counts only before the first step: later it
 * holds the bench's own previous step.
 */
const quietWait = (timeoutS: number, maxLoadavg: number) =>
  argv.has("--no-wait")
    ? Promise.resolve({ quiet: true, waitedS: 0 })
    : waitForQuiet({ maxCores: 0.3, maxLoadavg, timeoutS }, log)

/** Runs one step after waiting for a quiet machine (other engineers' test runs come in bursts). */
const step = async <A>(name: string, f: () => Promise<A> | A, first = false): Promise<A> => {
  const q = first ? await quietWait(300, 1.5) : await quietWait(120, Infinity)
  const loadavg1 = os.loadavg()[0]!
  log(`bench: ${name}…`)
  const meter = startCpuMeter()
  const out = await f()
  const m = meter.stop()
  steps.push({ step: name, ...m, waitedS: q.waitedS, quiet: q.quiet, loadavg1 })
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

const ratio = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b
const s1 = (ms: number) => `${(ms / 1000).toFixed(1)} s`
const pct = (part: number, whole: number) => (whole > 0 ? `${((100 * part) / whole).toFixed(0)}%` : "")

/** Figures 1, 2 and 6 of one tune. */
const tuneFigures = (p: string, c: TuneCost, smallModel: string, bigModel: string): Array<Figure> => {
  const b = c.breakdown
  const remainder = b.startupMs + b.betweenMs + b.finishMs
  const verdict = c.recommendedModel !== null && path.resolve(c.recommendedModel) === smallModel &&
      c.trials.some((t) => t.stage === 1 && path.resolve(t.model) === bigModel && !t.fits)
    ? "1.1B gated out, 130M recommended"
    : `UNEXPECTED: exit ${c.exitCode} (${c.exitReason}), recommended ${c.recommendedModel === null ? "nothing" : path.basename(c.recommendedModel)}`
  const part = (key: string, label: string, ms: number, detail: string): Figure => ({
    key: `overhead.${p}.${key}`, n: 1, label, value: ms / 1000, unit: "s", target: null, detail: `${pct(ms, b.wallMs)} of wall; ${detail}`, sub: true
  })
  return [
    {
      key: `overhead.${p}`, n: 1, label: `overhead: tune wall ÷ physical limit (${p})`, value: c.overhead, unit: "×",
      target: { op: "<=", value: 1.1 },
      detail: `wall ${s1(b.wallMs)} ÷ limit ${s1(c.limit.totalMs)}; ${c.trials.length} trials; ${verdict}`
    },
    {
      key: `overhead.${p}.limit`, n: 1, label: "physical limit", value: c.limit.totalMs / 1000, unit: "s", target: null, sub: true,
      detail: `provider-logged load ${s1(c.limit.loadMs)} + server request time ${s1(c.limit.requestMs)} + gate waits ${s1(c.limit.gateWaitMs)}`
    },
    part("load", "load (spawn → ready, Σ load_ms)", b.loadMs, `provider's own load ${s1(c.limit.loadMs)}`),
    part("prewarm", "pre-warm (Σ prewarm_ms)", b.preWarmMs, "not in the limit: first-use costs kept out of the gate (D-1)"),
    part("probe", "probe (Σ probe_ms)", b.probeMs, `server-reported ${s1(c.limit.requestMs)} + gate waits ${s1(c.limit.gateWaitMs)}`),
    part(
      "remainder",
      "remainder (start-up, stops, SQLite, tuner)",
      remainder,
      `start-up ${s1(b.startupMs)}, between trials ${s1(b.betweenMs)}, finish ${s1(b.finishMs)}; providers' stop ≈ ${s1(b.providerStopMs)}`
    ),
    {
      key: `loads_per_stage1.${p}`, n: 2, label: `loads per Stage 1 candidate, max (${p})`,
      value: c.loadsPerStage1.length === 0 ? null : Math.max(...c.loadsPerStage1.map((x) => x.loads)), unit: "",
      target: { op: "=", value: 1 },
      detail: `${c.loadsPerStage1.map((x) => `${path.basename(x.model)}: ${x.loads}`).join(", ")}; provider logs outside trials: ${c.strayLogs}`
    },
    {
      key: `tuner_rss_mb.${p}`, n: 6, label: `tuner peak RSS (${p})`, value: c.tunerPeakRssMb, unit: "MB", target: null,
      detail: "VmHWM of the tune process (providers excluded)"
    },
    {
      key: `tuner_cpu_share.${p}`, n: 6, label: `tuner CPU ÷ provider CPU during probes (${p})`,
      value: ratio(c.probeCpu.tunerCpuS, c.probeCpu.providersCpuS), unit: "×", target: { op: "<=", value: 0.05 },
      detail: `tuner (+ shims) ${c.probeCpu.tunerCpuS.toFixed(2)} s vs providers ${c.probeCpu.providersCpuS.toFixed(1)} s of CPU over ${c.probeCpu.windowS.toFixed(1)} s of probes`
    },
    {
      key: `tuner_cpu_share_run.${p}`, n: 6, label: "over the whole tune", value: ratio(c.runCpu.tunerCpuS + c.runCpu.helpersCpuS, c.runCpu.providersCpuS), unit: "×",
      target: null, sub: true,
      detail: `tuner ${c.runCpu.tunerCpuS.toFixed(1)} s + shims and helpers ${c.runCpu.helpersCpuS.toFixed(1)} s vs providers ${c.runCpu.providersCpuS.toFixed(1)} s of CPU (start-up included)`
    }
  ]
}

/** Figure 3: embedded ÷ llama-server at one thread count. */
const throughputFigures = (emb: ThroughputResult, ls: ThroughputResult): Array<Figure> => {
  const t = emb.threads
  const row = (key: string, label: string, f: (r: ThroughputResult) => number | null, sub: boolean): Figure => ({
    key: `embedded_vs_llama_server.${key}.t${t}`, n: 3, label: `${label}, ${t} thread${t > 1 ? "s" : ""}`,
    value: ratio(f(emb), f(ls)), unit: "×", target: { op: ">=", value: 0.95 }, sub,
    detail: `${f(emb)?.toFixed(1)} ÷ ${f(ls)?.toFixed(1)} tok/s (median of ${emb.requests}; prompt ${emb.promptTokens} vs ${ls.promptTokens} tokens)`
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
  r === null ? "n/a" : `${r.medianTps.toFixed(1)} tok/s (median of ${r.samplesTps.length}, ${Math.min(...r.samplesTps).toFixed(0)}–${Math.max(...r.samplesTps).toFixed(0)})`

/** Figure 4: the tune's client-measured decode on llama-server ÷ llama-bench, per thread count. */
const llamaBenchFigures = (trials: ReadonlyArray<TrialRow>, rows: ReadonlyArray<LlamaBenchRow>): Array<Figure> =>
  [2, 1].flatMap((t): Array<Figure> => {
    const cell = trials.find((x) => x.stage === 2 && x.kv_bits === null && x.threads === t)
    const tg = findRow(rows, { threads: t, nPrompt: 0, nGen: 64, nDepth: 0 })
    const tgDeep = findRow(rows, { threads: t, nPrompt: 0, nGen: 64, nDepth: SETTINGS.targetContext })
    const pp = findRow(rows, { threads: t, nPrompt: 512, nGen: 0, nDepth: 0 })
    const th = `${t} thread${t > 1 ? "s" : ""}`
    return [
      {
        key: `client_vs_llama_bench.decode_depth.t${t}`, n: 4,
        label: `tune's client decode ÷ llama-bench tg64 after ${SETTINGS.targetContext} tokens, ${th}`,
        value: ratio(cell?.tps, tgDeep?.medianTps), unit: "×", target: { op: ">=", value: 0.95 },
        detail: `${cell?.tps?.toFixed(1)} tok/s (Stage 2 kv=unset threads=${t}, median of 3) ÷ llama-bench -d ${SETTINGS.targetContext} ${
          spread(tgDeep)} (same work: decode after the prompt)`
      },
      {
        key: `client_vs_llama_bench.decode.t${t}`, n: 4, label: "÷ llama-bench tg64 (empty context)", sub: true,
        value: ratio(cell?.tps, tg?.medianTps), unit: "×", target: null,
        detail: `llama-bench -p 0 -n 64: ${spread(tg)}; attention over no context is cheaper`
      },
      {
        key: `client_vs_llama_bench.server_decode.t${t}`, n: 4, label: `server-reported decode ÷ llama-bench tg64 after ${SETTINGS.targetContext}`, sub: true,
        value: ratio(cell?.server_decode_tps, tgDeep?.medianTps), unit: "×", target: null,
        detail: `${cell?.server_decode_tps?.toFixed(1)} tok/s (llama-server's predicted_per_second)`
      },
      {
        key: `client_vs_llama_bench.server_prefill.t${t}`, n: 4, label: "server-reported prefill ÷ llama-bench pp512", sub: true,
        value: ratio(cell?.server_prompt_tps, pp?.medianTps), unit: "×", target: null,
        detail: `${cell?.server_prompt_tps?.toFixed(0)} tok/s at ${SETTINGS.targetContext} tokens ÷ ${spread(pp)}`
      }
    ]
  })

/** Figure 5: tune provider-seconds ÷ exhaustive sweep's. */
const sweepFigures = (c: TuneCost, extra: ReadonlyArray<CellCost>): Array<Figure> => {
  const extraS = extra.reduce((a, x) => a + x.loadMs + x.preWarmMs + x.probeMs, 0) / 1000
  const fits = extra.filter((x) => x.fits).length
  return [
    {
      key: "tune_vs_exhaustive.llama-server", n: 5, label: "provider-seconds: tune ÷ exhaustive sweep (llama-server)",
      value: ratio(c.providerSeconds, c.providerSeconds + extraS), unit: "×", target: { op: "<", value: 1 },
      detail: `${c.providerSeconds.toFixed(1)} s ÷ (${c.providerSeconds.toFixed(1)} s + 1.1B Stage 2 cells ${extraS.toFixed(1)} s); sweep recommends the same (${fits}/${extra.length} 1.1B cells fit)`
    },
    ...extra.map((x): Figure => ({
      key: `tune_vs_exhaustive.extra.${x.knobs}`, n: 5, label: `1.1B ${x.knobs}`, sub: true,
      value: (x.loadMs + x.preWarmMs + x.probeMs) / 1000, unit: "s", target: null,
      detail: `load ${s1(x.loadMs)} + pre-warm ${s1(x.preWarmMs)} + probe ${s1(x.probeMs)}; ${x.fits ? "fits" : x.reason}`
    }))
  ]
}

const main = async () => {
  const machine = machineInfo(path.dirname(llamaServerPath()))
  const models = ensureModels()
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
  const lsRun = await step("tune llama-server", () => runTune(path.join(workDir, "tune-llama-server"), tuneArgs("llama-server", models), log))
  const lsCost = tuneCost(lsRun, SETTINGS.gateTtftMs["llama-server"])
  const embCost = argv.has("--skip-embedded-tune")
    ? null
    : tuneCost(
      await step("tune embedded", () => runTune(path.join(workDir, "tune-embedded"), tuneArgs("embedded", models), log)),
      SETTINGS.gateTtftMs.embedded
    )
  const axes = {
    kvBits: await Effect.runPromise(parseKvBitsAxis(SETTINGS.kvBitsAxis)),
    maxContext: [SETTINGS.targetContext],
    maxBatch: [1],
    threads: await Effect.runPromise(parseThreadsAxis(SETTINGS.threadsAxis))
  }
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

  const byKind = (k: string, t: number) => throughput.find((r) => r.kind === k && r.threads === t)!
  const figures: Array<Figure> = [
    ...tuneFigures("llama-server", lsCost, models.small, models.big).filter((f) => f.n === 1),
    ...(embCost === null ? [] : tuneFigures("embedded", embCost, models.small, models.big).filter((f) => f.n === 1)),
    ...tuneFigures("llama-server", lsCost, models.small, models.big).filter((f) => f.n === 2),
    ...(embCost === null ? [] : tuneFigures("embedded", embCost, models.small, models.big).filter((f) => f.n === 2)),
    ...throughputFigures(byKind("embedded", 2), byKind("llama-server", 2)),
    ...throughputFigures(byKind("embedded", 1), byKind("llama-server", 1)),
    ...llamaBenchFigures(lsRun.trials, benchRows),
    ...sweepFigures(lsCost, extra),
    ...tuneFigures("llama-server", lsCost, models.small, models.big).filter((f) => f.n === 6),
    ...(embCost === null ? [] : tuneFigures("embedded", embCost, models.small, models.big).filter((f) => f.n === 6))
  ]

  // Bench time proper: everything since the start less the waits for a quiet machine before steps.
  const waitedS = steps.reduce((a, x) => a + x.waitedS, 0)
  const stepsS = steps.reduce((a, x) => a + x.seconds, 0)
  const durationS = (Date.now() - t0) / 1000 - waitedS
  // Other processes' CPU over the steps (time-weighted), and the worst step.
  const foreign = steps.reduce((a, x) => a + x.foreignCores * x.seconds, 0) / stepsS
  const benchCores = steps.reduce((a, x) => a + x.benchCores * x.seconds, 0) / stepsS
  const worstStep = steps.reduce((a, x) => (x.foreignCores > a.foreignCores ? x : a), steps[0]!)
  const loadAtStart = steps[0]!.loadavg1
  const disturbed = loadAtStart > 1.5 || steps.some((x) => !x.quiet || x.foreignCores > 0.25)
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
      disturbed
    },
    settings: SETTINGS,
    models: { big: path.relative(repoRoot, models.big), small: path.relative(repoRoot, models.small) },
    figures: figures.map((f) => ({ ...f, sub: f.sub ?? false })),
    raw: { tunes: { "llama-server": lsCost, embedded: embCost }, throughput, llama_bench: benchRows, exhaustive_extra_cells: extra }
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
  if (argv.has("--save-baseline")) fs.writeFileSync(baselinePath, `${JSON.stringify(doc, null, 2)}\n`)

  const fmtLoad = (l: ReadonlyArray<number>) => l.map((x) => x.toFixed(2)).join(" ")
  console.log([
    `llm-autotune bench, ${measuredAt}: ${machine.cpu_model} × ${machine.cores} cores, ${machine.ram_gib} GiB, Node ${machine.node_version}, llama.cpp ${machine.llama_cpp_commit ?? "?"}`,
    `models: ${path.basename(models.big)}, ${path.basename(models.small)}; target context ${SETTINGS.targetContext}, gate ${SETTINGS.gateTtftMs["llama-server"]} ms (llama-server) / ${SETTINGS.gateTtftMs.embedded} ms (embedded), grid kv ${SETTINGS.kvBitsAxis} × threads ${SETTINGS.threadsAxis}, replicates ${SETTINGS.stage1Replicates}/${SETTINGS.stage2Replicates}`,
    `load: 1-min loadavg ${loadAtStart.toFixed(2)} at start (${fmtLoad(loadBefore)} before waiting), ${fmtLoad(os.loadavg())} at end; other processes used ${foreign.toFixed(2)} cores on average, at most ${worstStep.foreignCores.toFixed(2)} (${worstStep.step}); the bench's own process ${benchCores.toFixed(3)} cores${disturbed ? "  DISTURBED: re-run when the machine is quiet" : ""}`,
    baselineNote,
    "",
    renderTable(figures, baseline),
    "",
    `bench took ${durationS.toFixed(0)} s, plus ${waitedS.toFixed(0)} s waiting for a quiet machine (steps: ${steps.map((s) => `${s.step} ${s.seconds.toFixed(0)} s`).join(", ")}); results: ${path.relative(repoRoot, resultPath)}${argv.has("--save-baseline") ? "; saved as bench/baseline.json" : ""}`
  ].join("\n"))
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: crashed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
  process.exit(1)
})
