/**
 * What a tune cost, against the physical limit (figures 1, 2, 5 and 6), from a
 * TuneRun: its wall time, its trial rows, its provider logs and the /proc samples.
 *
 * Physical limit of a tune (the issue's definition) = Σ over the trials it ran of
 *   (model load time, as the provider itself reports it in its log:
 *      llama-server's timestamp of "llama_server: model loaded" (ms since the
 *      process started logging), the embedded provider's "loaded … in N ms";
 *      `load_ms` (spawn → ready, client-side) when the log says nothing, counted
 *      in `loadFallbacks`)
 * + (the measured requests' own time, as the provider reports it:
 *      `server_request_ms` = Σ prompt_ms + predicted_ms).
 * Everything else (process start-up, pre-warm, HTTP, teardown, SQLite, the
 * tuner's own work) is overhead. A request cut off at the TTFT gate reports
 * nothing; a second, gate-inclusive limit also counts the gate for it (the
 * least time that proves TTFT > gate) as provider time.
 */
import * as fs from "node:fs"
import type { TrialRow } from "../src/domain/Trial.js"
import { DISTURBED_RERUNS } from "../src/steps/QuietGuard.js"
import { cpuInWindows } from "./TreeSampler.js"
import type { ChildSeen } from "./TreeSampler.js"
import type { MeasuredStart, ProviderLog, TuneRun } from "./TuneRun.js"

/** One trial on the tune's timeline (wall-clock ms) with its limit parts (ms). */
export interface TrialCost {
  readonly stage: 1 | 2 | 3
  readonly model: string
  readonly knobs: string
  readonly fits: boolean
  readonly notes: string | null
  readonly startMs: number
  /** Its start plus its time before the spawn and its phases (a merged row's phases summed over its starts). */
  readonly endMs: number
  /** The tuner's time before the provider's spawn: the pre-load check and memory estimate (`preload_ms`; 0 where not recorded). */
  readonly preLoadMs: number
  readonly loadMs: number
  readonly preWarmMs: number
  readonly probeMs: number
  /** Load time as the provider logged it; null when its log does not say. */
  readonly providerLoadMs: number | null
  readonly serverRequestMs: number
  readonly gateWaitMs: number
  /** Provider load (or load_ms) + server request time: this trial's part of the limit (gate waits excluded). */
  readonly limitMs: number
  /** Provider logs created in this trial's window (one per provider start). */
  readonly logs: number
}

/** Where a tune's wall time went, ms; the parts sum to `wallMs`. */
export interface WallBreakdown {
  readonly wallMs: number
  /** Tune spawn → first trial start (Node start-up, the compiled CLI, run lock, SQLite open, pre-flight, model headers). */
  readonly startupMs: number
  /** Σ load_ms (spawn → ready), Σ prewarm_ms, Σ probe_ms. */
  readonly loadMs: number
  readonly preWarmMs: number
  readonly probeMs: number
  /**
   * Between trials: the wall time not in start-up, the trials' phases or the finish (provider stops, SQLite
   * inserts, the next GGUF check, the gaps around an extension's later start).
   */
  readonly betweenMs: number
  /**
   * Of between: the tuner's checks before each provider's spawn (the GGUF pre-load check, SPEC D-2, and the
   * memory estimate, C-3), per start from the ledger (and the rows it does not hold), ms.
   */
  readonly preLoadMs: number
  /**
   * Of between: the tuner's waits for a quiet machine (SPEC N-3) before measuring a disturbed trial again —
   * from the end of each disturbed provider start (its start, its time before the spawn and its phases, from the ledger) to the same
   * trial's re-run (at most DISTURBED_RERUNS in a row; a third disturbed outcome is kept, and what follows it
   * follows no wait) — and how many there were. Each also holds that start's provider stop (also in
   * `providerStopMs`) and the ordinary work between trials, ~0.1–0.2 s.
   */
  readonly quietWaitMs: number
  readonly quietWaits: number
  /**
   * The last provider gone (last seen alive, ± one sample interval) and the last trial ended → tune exit:
   * SQLite, document, process exit.
   */
  readonly finishMs: number
  /**
   * Of between and finish: providers' stop (a trial's end → its own provider last seen alive), each up to one
   * sample interval short; not known, so not counted, for a row merged from two provider starts (N-2's extra
   * replicates), a trial that started no provider, or one whose provider was never seen.
   */
  readonly providerStopMs: number
}

/** Everything the figures need from one tune. */
export interface TuneCost {
  readonly exitCode: number | null
  readonly exitReason: string | null
  readonly recommendedModel: string | null
  readonly recommendedKnobs: unknown
  readonly trials: ReadonlyArray<TrialCost>
  readonly breakdown: WallBreakdown
  /**
   * `totalMs` = loadMs + requestMs (the limit); `totalInclGateMs` adds
   * `gateWaitMs`; `loadFallbacks` = trials whose load is `load_ms` because their
   * provider log did not say.
   */
  readonly limit: {
    readonly loadMs: number
    readonly requestMs: number
    readonly gateWaitMs: number
    readonly totalMs: number
    readonly totalInclGateMs: number
    readonly loadFallbacks: number
  }
  /**
   * Figure 1: wall ÷ limit, wall ÷ the gate-inclusive limit, and (wall − the N-3 quiet-machine waits) ÷ limit:
   * what the tune cost beyond its inference when nothing else ran on the machine.
   */
  readonly overhead: number | null
  readonly overheadInclGate: number | null
  readonly overheadExclQuiet: number | null
  /** Figure 2: provider logs per Stage 1 trial (one entry per candidate), and logs outside any trial. */
  readonly loadsPerStage1: ReadonlyArray<{ readonly model: string; readonly loads: number }>
  readonly strayLogs: number
  /** Figure 5's numerator: Σ (load_ms + prewarm_ms + probe_ms), s. */
  readonly providerSeconds: number
  /** Figure 6: tuner peak RSS (MB); CPU during probe windows and over the whole run (s). */
  readonly tunerPeakRssMb: number
  readonly probeCpu: { readonly tunerCpuS: number; readonly providersCpuS: number; readonly windowS: number }
  readonly runCpu: { readonly tunerCpuS: number; readonly helpersCpuS: number; readonly providersCpuS: number }
}

/** A provider's log file's text, or null when it cannot be read (never written, removed). */
export const providerLog = (logFile: string): string | null => {
  try {
    return fs.readFileSync(logFile, "utf8")
  } catch {
    return null
  }
}

/** Provider-reported load time in a log, ms; null when the log does not say. */
export const providerLoadMs = (logFile: string): number | null => {
  const text = providerLog(logFile)
  if (text === null) return null
  // llama-server: "0.00.503.239 I srv  llama_server: model loaded" — minutes.seconds.ms.µs since its log started.
  const ls = /^(\d+)\.(\d{2})\.(\d{3})\.(\d{3}) .*model loaded/m.exec(text)
  if (ls !== null) return Number(ls[1]) * 60_000 + Number(ls[2]) * 1000 + Number(ls[3]) + Number(ls[4]) / 1000
  // embedded (`autotune serve`): "loaded <id> in 577 ms: …"
  const emb = /\bloaded \S+ in (\d+(?:\.\d+)?) ms/.exec(text)
  return emb === null ? null : Number(emb[1])
}

const knobsOf = (t: TrialRow) =>
  t.stage === 1 ? "defaults" : `kv=${t.kv_bits ?? "unset"} threads=${t.threads ?? "default"} batch=${t.max_batch ?? "default"}`

/**
 * A request cut at the gate before any token (Probe.ts's reason; `pre-warm: …` when the pre-warm's own
 * bound cut it, PreWarm.ts): the provider reported nothing for it. A pre-warm bound may lie past the
 * gate (preWarmBoundMs); the gate is still the least time that proves TTFT > gate, the rest overhead.
 */
const cutAtGate = (notes: string | null) => notes !== null && /^(pre-warm: )?TTFT > \d+ ms gate \(no first token yet\)/.test(notes)

/** When a provider start's phases ended (wall-clock ms): its trial's start, the tuner's time before the spawn, its phases. */
const providerEnd = (m: MeasuredStart): number => m.startMs + m.preLoadMs + m.phasesMs

/** Analyses a tune run; `gateTtftMs` is the gate it ran with. */
export const tuneCost = (run: TuneRun, gateTtftMs: number): TuneCost => {
  const starts = run.trials.map((t) => Date.parse(t.started_at))
  // Each log belongs to the trial whose window [its start, next start) holds the log's creation (10 ms slack for clock rounding).
  const logsOf = (i: number): Array<ProviderLog> =>
    run.logs.filter((l) => l.createdMs + 10 >= starts[i]! && (i + 1 >= starts.length || l.createdMs + 10 < starts[i + 1]!))
  const trials: Array<TrialCost> = run.trials.map((t, i) => {
    const preLoadMs = t.preload_ms ?? 0
    const loadMs = t.load_ms ?? 0
    const preWarmMs = t.prewarm_ms ?? 0
    const probeMs = t.probe_ms ?? 0
    const logs = logsOf(i)
    const logged = logs.map((l) => providerLoadMs(l.file))
    const providerLoad = logs.length > 0 && logged.every((x) => x !== null) ? logged.reduce((a, x) => a + x!, 0) : null
    const serverRequestMs = t.server_request_ms ?? 0
    const gateWaitMs = cutAtGate(t.notes) ? gateTtftMs : 0
    return {
      stage: t.stage,
      model: t.model,
      knobs: knobsOf(t),
      fits: t.fits === 1,
      notes: t.notes,
      startMs: starts[i]!,
      endMs: starts[i]! + preLoadMs + loadMs + preWarmMs + probeMs,
      preLoadMs,
      loadMs,
      preWarmMs,
      probeMs,
      providerLoadMs: providerLoad,
      serverRequestMs,
      gateWaitMs,
      limitMs: (providerLoad ?? loadMs) + serverRequestMs,
      logs: logs.length
    }
  })
  const sum = (f: (t: TrialCost) => number) => trials.reduce((a, t) => a + f(t), 0)
  const first = trials[0]
  const last = trials.at(-1)
  // Providers: the tuner's descendants started on a model (not helpers: `--version` runs, bin/provider-shim.mjs,
  // TuneRun's isHelper). A provider start is one whose parent is not a provider itself (a provider's own workers
  // belong to it), gone when the last process of it was last seen alive (± one sample interval).
  const providers = run.sampling.children.filter((c) => !c.helper && c.argv.some((a) => a.endsWith(".gguf")))
  const providerPids = new Set(providers.map((p) => p.pid))
  const goneAt = (start: ChildSeen) =>
    Math.max(start.lastAlive, ...providers.filter((p) => p.ppid === start.pid && p.firstSeen >= start.firstSeen && p.firstSeen <= start.lastAlive).map((p) => p.lastAlive))
  const providerStarts = providers.filter((p) => !providerPids.has(p.ppid)).sort((a, b) => a.firstSeen - b.firstSeen)
  // A trial's own provider is the first started in its window [its start, the next trial's start) (its start
  // comes before its memory estimate, the spawn after). Its stop: from the trial's end, taken as that start's first
  // sighting (its shim's, where bin/provider-shim.mjs started it) plus the trial's phases, to the provider last
  // seen alive; sightings come every sample interval, so it reads up to one interval short, and a shorter stop
  // as 0. A row merged from two starts (N-2's extra replicates in a later start of the same candidate) sums
  // both starts' phases, so that end lies past its first start's and neither stop is known: it counts 0, as
  // does a trial that started no provider (no load) or whose provider was never seen.
  const byStart = [...trials].sort((x, y) => x.startMs - y.startMs)
  const spawnSeen = (p: ChildSeen) => run.sampling.children.find((c) => c.pid === p.ppid && c.helper && c.firstSeen <= p.firstSeen)?.firstSeen ?? p.firstSeen
  const providerStopMs = byStart.reduce((a, t, i) => {
    if (t.loadMs <= 0) return a
    const mine = providerStarts.find((p) => p.firstSeen >= t.startMs && (i + 1 >= byStart.length || p.firstSeen < byStart[i + 1]!.startMs))
    return mine === undefined ? a : a + Math.max(0, goneAt(mine) - (spawnSeen(mine) + t.loadMs + t.preWarmMs + t.probeMs))
  }, 0)
  // Finish: after the last provider is gone and the last trial ended (the document, SQLite, the process's exit).
  // Between trials: the rest (the parts sum to the wall time). (A trial's end as its start plus its summed
  // phases would misplace a merged row's later start; it is never past the trial's real end.)
  const lastGone = Math.max(...providerStarts.map(goneAt), ...trials.map((t) => t.endMs))
  const startupMs = first === undefined ? run.wallMs : first.startMs - run.spawnedAt
  const phasesMs = sum((t) => t.loadMs + t.preWarmMs + t.probeMs)
  const finishMs = last === undefined ? 0 : Math.max(0, run.exitedAt - lastGone)
  // The tuner waits before each of a disturbed trial's DISTURBED_RERUNS re-runs (QuietGuard.ts), each a start
  // of the same trial key; its last disturbed start is kept, and a start of the same key after that (N-2's
  // extra replicates, the drift check) follows no wait. So of a run of consecutive disturbed starts of one
  // key, all but every (DISTURBED_RERUNS + 1)-th are followed by a wait.
  let disturbedInRow = 0
  const quiet = run.measurements.flatMap((m, i) => {
    const previous = run.measurements[i - 1]
    disturbedInRow = !m.disturbed ? 0 : previous?.disturbed === true && previous.trialKey === m.trialKey ? disturbedInRow + 1 : 1
    const next = run.measurements[i + 1]
    const waited = m.disturbed && next !== undefined && next.trialKey === m.trialKey && disturbedInRow % (DISTURBED_RERUNS + 1) !== 0
    return waited ? [Math.max(0, next.startMs - providerEnd(m))] : []
  })
  // The rows the ledger does not hold (no trial key: capacity steps, SPEC C-4; or a run that kept no ledger).
  const unledgered = run.measurements.length > 0 ? trials.filter((_, i) => run.trials[i]!.trial_key == null) : trials
  const breakdown: WallBreakdown = {
    wallMs: run.wallMs,
    startupMs,
    loadMs: sum((t) => t.loadMs),
    preWarmMs: sum((t) => t.preWarmMs),
    probeMs: sum((t) => t.probeMs),
    betweenMs: last === undefined ? 0 : run.wallMs - startupMs - phasesMs - finishMs,
    preLoadMs: run.measurements.reduce((a, m) => a + m.preLoadMs, 0) + unledgered.reduce((a, t) => a + t.preLoadMs, 0),
    quietWaitMs: quiet.reduce((a, x) => a + x, 0),
    quietWaits: quiet.length,
    finishMs,
    providerStopMs
  }
  const limit = {
    loadMs: sum((t) => t.providerLoadMs ?? t.loadMs),
    requestMs: sum((t) => t.serverRequestMs),
    gateWaitMs: sum((t) => t.gateWaitMs),
    loadFallbacks: trials.filter((t) => t.providerLoadMs === null).length
  }
  const totalMs = limit.loadMs + limit.requestMs
  const totalInclGateMs = totalMs + limit.gateWaitMs
  // Figure 6's probe windows: each provider start's, from the ledger (a row merged from two starts would put
  // its summed probe time after its first start), and from the rows the ledger does not hold, one start each.
  // Each ends at its start + its time before the spawn + its phases (a window of an outcome recorded before
  // that time was, lies early by it: up to ~1 s on a first trial's memory estimate).
  const probeWindows = [
    ...run.measurements.filter((m) => m.probeMs > 0).map((m) => [providerEnd(m) - m.probeMs, providerEnd(m)] as const),
    ...unledgered.filter((t) => t.probeMs > 0).map((t) => [t.endMs - t.probeMs, t.endMs] as const)
  ]
  return {
    exitCode: run.exitCode,
    exitReason: run.doc?.exit_reason ?? null,
    recommendedModel: run.doc?.recommendation?.model ?? null,
    recommendedKnobs: run.doc?.recommendation?.knobs ?? null,
    trials,
    breakdown,
    limit: { ...limit, totalMs, totalInclGateMs },
    overhead: totalMs > 0 ? run.wallMs / totalMs : null,
    overheadInclGate: totalInclGateMs > 0 ? run.wallMs / totalInclGateMs : null,
    overheadExclQuiet: totalMs > 0 ? (run.wallMs - breakdown.quietWaitMs) / totalMs : null,
    loadsPerStage1: trials.filter((t) => t.stage === 1).map((t) => ({ model: t.model, loads: t.logs })),
    strayLogs: run.logs.length - sum((t) => t.logs),
    providerSeconds: sum((t) => t.loadMs + t.preWarmMs + t.probeMs) / 1000,
    tunerPeakRssMb: run.sampling.tunerPeakRssMb,
    probeCpu: cpuInWindows(run.sampling.samples, probeWindows),
    runCpu: {
      tunerCpuS: run.sampling.tunerCpuS,
      helpersCpuS: run.sampling.children.filter((c) => c.helper).reduce((a, c) => a + c.cpuS, 0),
      providersCpuS: run.sampling.children.filter((c) => !c.helper).reduce((a, c) => a + c.cpuS, 0)
    }
  }
}
