/**
 * The bench's figures (bench/README.md, figures 1–8), each computed from the
 * steps' outcomes: a value with its unit and target, or "n/a: <reason>" when
 * the step behind it failed.
 */
import * as path from "node:path"
import { type EngineMeasurements, type EngineRow, THREADS as ENGINE_THREADS } from "./EngineVsLlamaBench.js"
import type { CellCost } from "./ExhaustiveCells.js"
import { findRow, type LlamaBenchRow } from "./LlamaBench.js"
import type { Figure } from "./Report.js"
import { SETTINGS } from "./Settings.js"
import type { Outcome } from "./Steps.js"
import type { ThroughputResult } from "./Throughput.js"
import type { TuneCost } from "./TuneCost.js"
import type { TuneRun } from "./TuneRun.js"

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
export const tuneFigures = (p: string, o: Outcome<TuneCost>, smallModel: string, bigModel: string): Array<Figure> => {
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
      key: `overhead.${p}.excl_quiet`, n: 1, label: "wall less the quiet-machine waits (N-3) ÷ limit (the disturbed starts stay in both)",
      value: v((c) => c.overheadExclQuiet), unit: "×", target: null, sub: true,
      detail: d((c) =>
        `(wall ${s1(c.breakdown.wallMs)} − ${s1(c.breakdown.quietWaitMs)} waited after ${c.breakdown.quietWaits} disturbed trial${c.breakdown.quietWaits === 1 ? "" : "s"}) ÷ limit ${s1(c.limit.totalMs)}`
      )
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
      (c) => `start-up ${s1(c.breakdown.startupMs)}, between trials ${s1(c.breakdown.betweenMs)} (of which pre-load checks and memory estimates ${s1(c.breakdown.preLoadMs)}, quiet-machine waits ${s1(c.breakdown.quietWaitMs)}), finish ${s1(c.breakdown.finishMs)}; providers' stop ≈ ${s1(c.breakdown.providerStopMs)}`
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
export const throughputFigures = (t: number, o: Outcome<ReadonlyArray<ThroughputResult>>): Array<Figure> => {
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
export const llamaBenchFigures = (tune: Outcome<{ readonly run: TuneRun }>, bench: Outcome<ReadonlyArray<LlamaBenchRow>>): Array<Figure> =>
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
export const sweepFigures = (tune: Outcome<TuneCost>, extra: Outcome<ReadonlyArray<CellCost>>, gridCells: number): Array<Figure> => {
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

/** A rate, tokens/s, with its per-request range: `408.9 [312–702]`. */
const tpsWithRange = (v: number | null, range: readonly [number, number] | null | undefined): string =>
  `${fx(v, 1)}${range == null ? "" : ` [${fx(range[0], 0)}–${fx(range[1], 0)}]`}`

/**
 * What the embedded ÷ llama-bench rows compare besides the code: two llama.cpp builds, node-llama-cpp's
 * prebuilt with the CPU backend it loaded (an AVX-512 variant where the CPU has it) and the shared AVX2
 * llama-bench; named where the loop saw it.
 */
const builds = (r: EngineRow): string =>
  r.library?.build.cpuBackend == null ? "" : `; two builds: node-llama-cpp's ${r.library.build.cpuBackend}, the shared llama-bench`

const fa = (v: boolean | "auto"): string => (v === "auto" ? "auto" : v ? "on" : "off")

/**
 * Figure 8's rows: per model and threads, decode ÷ llama-bench (flash attention as the builds decide,
 * then off on both sides), that decode split in two factors (the served path: embedded ÷ node-llama-cpp's
 * own loop, bench/LibraryLoop.ts; the library and its build: the loop ÷ llama-bench), prefill ÷
 * llama-bench and the start-up beyond the load.
 */
export const engineFigures = (o: Outcome<EngineMeasurements>, models: ReadonlyArray<string>): Array<Figure> =>
  models.flatMap((params) =>
    ENGINE_THREADS.flatMap((t): Array<Figure> => {
      const r = o.value?.rows.find((x) => x.params === params && x.threads === t) ?? null
      const th = `${params}, ${t} thread${t > 1 ? "s" : ""}`
      const missing = `n/a: ${o.reason ?? o.value?.failures[params] ?? `no result for ${th}`}`
      const startupS = r === null || r.loadMs === null ? null : (r.embedded.readyMs - r.loadMs) / 1000
      return [
        {
          key: `embedded_vs_llama_bench.decode.${params}.t${t}`, n: 8,
          label: `embedded decode ÷ llama-bench tg after the prompt, ${th}`,
          value: r === null ? null : ratio(r.embedded.serverDecodeTps, r.tg?.medianTps), unit: "×", target: { op: ">=", value: 0.95 },
          detail: r === null ? missing : `${fx(r.embedded.serverDecodeTps, 1)} tok/s over ${fx(r.embedded.completionTokens, 0)} tokens (median of ${
            r.embedded.requests}) ÷ llama-bench -n ${r.tg?.nGen ?? "?"} -d ${r.promptTokens}: ${fx(r.tg?.medianTps, 1)} tok/s${builds(r)}`
        },
        {
          key: `embedded_vs_llama_bench.decode_fa_off.${params}.t${t}`, n: 8, sub: true,
          label: `… with flash attention off on both sides, ${th}`,
          value: r?.flashAttnOff === undefined ? null : ratio(r.flashAttnOff.embedded.serverDecodeTps, r.flashAttnOff.tg?.medianTps),
          unit: "×", target: { op: ">=", value: 0.95 },
          detail: r?.flashAttnOff === undefined ? (r === null ? missing : `n/a: ${r.flashAttnOffFailure ?? "not measured in this run"}`) : `${
            fx(r.flashAttnOff.embedded.serverDecodeTps, 1)} tok/s ÷ llama-bench -fa 0: ${fx(r.flashAttnOff.tg?.medianTps, 1)} tok/s; ${
            fx(ratio(r.flashAttnOff.embedded.serverDecodeTps, r.embedded.serverDecodeTps), 2)}× the embedded decode with it on${builds(r)}`
        },
        {
          key: `embedded_threadpool.decode.${params}.t${t}`, n: 8, sub: true,
          label: `… factor of the persistent ggml threadpool: embedded decode ÷ the same with llama.cpp's threads per graph (AUTOTUNE_THREADPOOL=off), ${th}`,
          value: r?.perGraph === undefined ? null : ratio(r.embedded.serverDecodeTps, r.perGraph.serverDecodeTps), unit: "×", target: null,
          detail: r?.perGraph === undefined ? (r === null ? missing : `n/a: ${r.perGraphFailure ?? "not measured in this run"}`) : `${
            tpsWithRange(r.embedded.serverDecodeTps, r.embedded.serverDecodeTpsRange)} (threadpool ${r.threadpool ?? "not said"}) ÷ ${
            tpsWithRange(r.perGraph.serverDecodeTps, r.perGraph.serverDecodeTpsRange)} tok/s (median [range] of ${r.embedded.requests} and ${
            r.perGraph.requests} requests, one start each, the second right after the first: one process can decode tens of % off another's)`
        },
        {
          key: `embedded_vs_library.decode.${params}.t${t}`, n: 8, sub: true,
          label: `… factor of the served path: embedded decode ÷ node-llama-cpp's own evaluate loop, ${th}`,
          value: r?.library === undefined ? null : ratio(r.embedded.serverDecodeTps, r.library.decodeTps), unit: "×", target: { op: ">=", value: 0.95 },
          detail: r?.library === undefined ? (r === null ? missing : `n/a: ${r.libraryFailure ?? "not measured in this run"}`) : `${
            tpsWithRange(r.embedded.serverDecodeTps, r.embedded.serverDecodeTpsRange)} ÷ ${tpsWithRange(r.library.decodeTps, r.library.decodeTpsRange)} tok/s (median [range] of ${
            r.embedded.requests} and ${r.library.requests} requests; ${fx(r.embedded.completionTokens, 0)} and ${fx(r.library.completionTokens, 0)} tokens; the loop: ${
            r.library.context.contextSize}-token context, ${r.library.context.threads} thread${r.library.context.threads === 1 ? "" : "s"}, flash attention ${
            fa(r.library.context.flashAttention)}${r.library.threadpool === undefined ? "" : `, ${r.library.threadpool}`}); × the next row = the decode row`
        },
        {
          key: `library_vs_llama_bench.decode.${params}.t${t}`, n: 8, sub: true,
          label: `… node-llama-cpp's own loop ÷ llama-bench tg (two builds of llama.cpp), ${th}`,
          value: r?.library === undefined ? null : ratio(r.library.decodeTps, r.tg?.medianTps), unit: "×", target: null,
          detail: r?.library === undefined ? (r === null ? missing : `n/a: ${r.libraryFailure ?? "not measured in this run"}`) : `${
            fx(r.library.decodeTps, 1)} ÷ ${fx(r.tg?.medianTps, 1)} tok/s: node-llama-cpp's prebuilt llama.cpp (release ${
            r.library.build.llamaCppRelease}, ${r.library.build.cpuBackend ?? "CPU backend unseen"}) against the shared llama-bench`
        },
        {
          key: `embedded_vs_llama_bench.prefill.${params}.t${t}`, n: 8, sub: true,
          label: `embedded prefill ÷ llama-bench pp, ${th}`,
          value: r === null ? null : ratio(r.embedded.serverPrefillTps, r.pp?.medianTps), unit: "×", target: { op: ">=", value: 0.9 },
          detail: r === null ? missing : `${fx(r.embedded.serverPrefillTps, 0)} tok/s ÷ llama-bench -p ${r.promptTokens}: ${fx(r.pp?.medianTps, 0)} tok/s${builds(r)}`
        },
        {
          key: `embedded_start_beyond_load.${params}.t${t}`, n: 8, sub: true,
          label: `embedded spawn → ready minus its own load, ${th}`,
          value: startupS, unit: "s", target: { op: "<=", value: 0.3 },
          detail: r === null ? missing : `${fx(r.embedded.readyMs / 1000, 2)} s spawn → ready − ${fx(r.loadMs === null ? null : r.loadMs / 1000, 2)} s logged load`
        }
      ]
    })
  )
