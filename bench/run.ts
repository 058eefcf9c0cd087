/**
 * `npm run bench`: what a tune costs against the physical limit, measured side
 * by side in one run on two synthetic llama models (~130M and 1.1B parameters,
 * Q4_0, generated once into `.cache/bench-models/`). See bench/README.md for
 * every figure, its unit, its target and where each number comes from.
 *
 * Steps, one after another on an otherwise quiet machine (it waits for one):
 *   1. llama-bench on the 130M model (raw prefill and decode speed)
 *   2. the same streaming requests to the embedded provider and llama-server
 *   2b. the embedded provider against llama-bench on 15M and 130M, 1 and 2 threads (figure 8)
 *   3. a real tune with `--provider llama-server`, sampled from /proc
 *   4. the same tune with the embedded provider (skip: --skip-embedded-tune)
 *   5. the 1.1B's Stage 2 cells an exhaustive sweep would add
 *   6. reproducibility (SPEC N-4): 5 repeated short tunes, then 5 with a
 *      CPU-burning neighbour (skip: --skip-reproducibility)
 * Prints ONE table on stdout (progress on stderr) and writes the same figures,
 * with the raw measurements, to `bench/results/<ISO-8601 basic timestamp>.json`.
 * Compares with `bench/baseline.json` when present; `--save-baseline` writes
 * this run's document there unless the run is disturbed. A step that throws is
 * recorded, its figures print as "n/a: <reason>", and the other steps still run:
 * exit 0 unless something outside the steps crashed (1); exit 2 when llama-server
 * or llama-bench is missing.
 *
 * Flags: --skip-embedded-tune, --skip-reproducibility, --no-wait (do not wait
 *        for a quiet machine), --save-baseline.
 */
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { cells, parseKvBitsAxis, parseThreadsAxis } from "../src/domain/Axes.js"
import { readBaseline } from "./Baseline.js"
import { runExhaustiveCells } from "./ExhaustiveCells.js"
import { engineFigures, llamaBenchFigures, sweepFigures, throughputFigures, tuneFigures } from "./Figures.js"
import { measureEngine } from "./EngineVsLlamaBench.js"
import { llamaBench } from "./LlamaBench.js"
import { machineInfo } from "./Machine.js"
import { type Figure, renderTable } from "./Report.js"
import { type Provider, SETTINGS } from "./Settings.js"
import { type Outcome, stepRunner } from "./Steps.js"
import { measureThroughput, type ThroughputResult } from "./Throughput.js"
import { autotuneBin, llamaServerPath, missingTools, repoRoot } from "./Tools.js"
import { type TuneCost, tuneCost } from "./TuneCost.js"
import { runTune } from "./TuneRun.js"
import { REPRO, reproducibilityFigures, runReproducibility } from "./Reproducibility.js"

const MODELS = [
  { params: "1.1B", file: "synth-1.1B-q4_0.gguf" },
  { params: "130M", file: "synth-130M-q4_0.gguf" },
  // Figure 8 only: the size the tests tune, where per-token overhead shows most.
  { params: "15M", file: "synth-15M-q4_0.gguf" }
] as const

const argv = new Set(process.argv.slice(2))
const log = (line: string) => process.stderr.write(`${line}\n`)
const modelsDir = path.join(repoRoot, ".cache", "bench-models")
const workDir = path.join(repoRoot, ".cache", "bench-run")
const resultsDir = path.join(repoRoot, "bench", "results")
const baselinePath = path.join(repoRoot, "bench", "baseline.json")
const { step, steps } = stepRunner(!argv.has("--no-wait"), log)

/** The models, written with the project's synthesizer when missing (seed 1), reused otherwise. */
const ensureModels = (): { readonly big: string; readonly small: string; readonly tiny: string } => {
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
  return {
    big: path.join(modelsDir, MODELS[0].file),
    small: path.join(modelsDir, MODELS[1].file),
    tiny: path.join(modelsDir, MODELS[2].file)
  }
}

const tuneArgs = (provider: Provider, models: { readonly big: string; readonly small: string }) => [
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
  const engineModels = [{ params: "15M", path: models.tiny }, { params: "130M", path: models.small }]
  const engine = await step("embedded vs llama-bench", () => measureEngine(engineModels, { logDir: workDir, ...SETTINGS.throughput }))
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

  const repro = argv.has("--skip-reproducibility") ? null : await step("reproducibility", () =>
    runReproducibility(workDir, [
      "--provider", "llama-server", "--provider-bin", llamaServerPath(),
      "--candidate-models", `${models.big},${models.small}`,
      "--target-context", `${REPRO.targetContext}`,
      "--gate-ttft-ms", `${REPRO.gateTtftMs}`,
      "--max-tokens", `${REPRO.maxTokens}`,
      "--kv-bits-axis", REPRO.kvBitsAxis,
      "--threads-axis", REPRO.threadsAxis
    ], log))

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
    ...engineFigures(engine, engineModels.map((m) => m.params)),
    ...sweepFigures(costOf(lsTune), extra, cells(axes).length),
    ...tuneRows(6),
    ...(repro === null ? [] : reproducibilityFigures(repro))
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
      embedded_vs_llama_bench: engine.value,
      exhaustive_extra_cells: extra.value,
      reproducibility: repro?.value ?? null
    }
  }

  const { figures: baseline, note: baselineNote } = readBaseline(baselinePath)

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
