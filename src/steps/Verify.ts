/**
 * `autotune verify` (SPEC R-3): a recorded recipe re-probed on this machine
 * and compared with what was recorded — after an OS or provider upgrade, a
 * model re-download, or an apply.
 */
import type { HttpClient } from "@effect/platform"
import { Effect } from "effect"
import * as path from "node:path"
import type { Candidate } from "../domain/Candidate.js"
import { Knobs } from "../domain/Knobs.js"
import { DEFAULT_REPLY_TOKENS } from "../domain/Prompt.js"
import { shellWords } from "../domain/Shell.js"
import { identityChanges, machineChanges, type ProviderIdentity, RunIdentity } from "../domain/TrialKey.js"
import type { TrialOutcome } from "../domain/Trial.js"
import type { Inputs, Machine, StoredRecommendation } from "../domain/TuneDocument.js"
import { notesOf } from "../domain/Verdict.js"
import { embedded } from "../providers/Embedded.js"
import { llamaServer, NO_OPTIONAL_FLAGS } from "../providers/LlamaServer.js"
import { macProvider } from "../providers/MacProvider.js"
import { adapterExecutable, type ProviderAdapter } from "../providers/ProviderAdapter.js"
import type { CandidateProvider } from "../services/CandidateProvider.js"
import type { CpuMeter } from "../services/CpuMeter.js"
import type { Exec } from "../services/Exec.js"
import { modelIdentity, providerIdentity } from "./Identity.js"
import { findExecutable, findLlamaServer } from "../system/Executables.js"
import { machineOf } from "../system/MachineInfo.js"
import { AUTOTUNE_VERSION } from "../system/Versions.js"
import { THROUGHPUT_POLICY } from "./Probe.js"
import { measureQuietly } from "./QuietGuard.js"
import { runTrial, type TrialSettings } from "./RunTrial.js"

/** A recipe as recorded: by a run in the database (with its identities) or in a `tune --json` document (without). */
export interface RecordedRecipe {
  readonly recommendation: StoredRecommendation
  readonly inputs: Inputs
  /** What the run's machine was (F-2 `machine`). */
  readonly machine: Machine
  /** The identities its trial keys were made of (R-1); null for a document or a run recorded before them. */
  readonly identity: RunIdentity | null
}

/** Tokens/s and TTFT figures of a recipe, as recorded or as measured now (ms; intervals SPEC N-1). */
export interface RecipeFigures {
  readonly tps_median: number | null
  readonly tps_ci95: readonly [number, number] | null
  readonly ttft_p95_ms: number | null
  readonly ttft_ci95_ms: readonly [number, number] | null
  readonly replicates: number
}

/**
 * What `verify` found (SPEC R-3): `holds` (exit 0), `regressed` (exit 1: a
 * figure moved out of its recorded interval the wrong way by more than the
 * tie band, or the model file is not the one measured), `infeasible` (exit
 * 2: the recipe now fails the gate or its memory estimate, or its model is
 * gone). `changes` names what is not as it was measured (this tool, the
 * machine, the provider binary, the model file): only a changed model file
 * decides by itself; after an upgrade of the rest the figures decide.
 * `regressions` names each figure that regressed and by how much; `reason`
 * the infeasibility; `disturbed` that other processes were busy during the
 * probe even after the quiet guard's re-runs (SPEC N-3). `first_start`: the
 * figures of a first provider start that regressed, and what regressed, when the
 * verdict (and `measured`) come from a second start (R-3, `verifyRecipe`); null
 * when one start decided.
 */
export interface VerifyResult {
  readonly verdict: "holds" | "regressed" | "infeasible"
  readonly model: string
  readonly provider: string
  readonly knobs: StoredRecommendation["knobs"]
  readonly target_context: number
  readonly gate_ttft_ms: number
  readonly changes: ReadonlyArray<string>
  /** What could not be compared with what was measured (a document records no model or binary identity). */
  readonly unchecked: ReadonlyArray<string>
  readonly model_changed: boolean
  readonly regressions: ReadonlyArray<string>
  readonly reason: string | null
  readonly disturbed: boolean
  readonly recorded: RecipeFigures
  readonly measured: RecipeFigures | null
  /** Absent in results made before the second start (R-3): read as null. */
  readonly first_start?: {
    readonly measured: RecipeFigures
    readonly regressions: ReadonlyArray<string>
    readonly disturbed: boolean
  } | null
}

/** The value after the first of `flags` in `words`, if any. */
const after = (words: ReadonlyArray<string>, ...flags: ReadonlyArray<string>) => {
  const i = words.findIndex((w) => flags.includes(w))
  return i >= 0 ? words[i + 1] : undefined
}

/**
 * How a recipe is launched, from its serve command (F-1): the provider
 * (`autotune` → embedded; `llama-server`; a binary given a threads knob →
 * embedded run by `--provider-bin`; else macprovider), the model as the
 * provider got it, and the reply budget (tokens, F-5) its context was sized
 * for (ceil(cap × 1.05) + reply per request, × slots for llama-server),
 * DEFAULT_REPLY_TOKENS when it cannot be told. An embedded adapter carries
 * the `--stream-interval-ms` it was started with (`adapter.streamIntervalMs`,
 * ms; null: none, its default).
 */
export const launchOf = (rec: StoredRecommendation): {
  readonly adapter: ProviderAdapter
  readonly model: string
  readonly replyTokens: number
} => {
  const words = shellWords(rec.serve_command)
  const binary = words[0]!
  const name = path.basename(binary)
  const interval = after(words, "--stream-interval-ms")
  const streamIntervalMs = interval !== undefined && /^\d+$/.test(interval) ? Number(interval) : null
  const adapter: ProviderAdapter = name === "autotune"
    ? embedded(null, streamIntervalMs)
    : name === "llama-server"
    ? llamaServer(binary, NO_OPTIONAL_FLAGS)
    : rec.knobs.threads !== undefined
    ? embedded(binary, streamIntervalMs)
    : macProvider(binary)
  const model = after(words, "--model", "-m") ?? rec.model
  const cap = rec.knobs.max_context_override ?? rec.target_context
  const perRequest = name === "llama-server"
    ? Number(after(words, "--ctx-size")) / Number(after(words, "--parallel") ?? 1)
    : adapter.name === "embedded"
    ? Number(after(words, "--max-context"))
    : Number.NaN
  const derived = perRequest - Math.ceil(cap * 1.05)
  return { adapter, model, replyTokens: Number.isInteger(derived) && derived > 0 ? derived : DEFAULT_REPLY_TOKENS }
}

/**
 * The provider to verify a run's recipe with, found as a tune finds it today
 * (SPEC R-3: after an upgrade the build that serves is the one to check): its
 * kind from the recorded identity (not guessed from a file name); the
 * executable the operator gave the run (`givenBin`, `--provider-bin`), else
 * the one a tune would find now (`$LLAMA_SERVER`, `$LLAMA_CPP_BIN_DIR`, PATH;
 * `macprovider-cli` on PATH; this tool's own serve), else the recorded
 * absolute executable when it still exists, else `fallback` (from the serve
 * command). The identity comparison then names a new build. An embedded
 * provider is started with the serve command's `--stream-interval-ms`
 * (`fallback.streamIntervalMs`, ms; null: none).
 */
export const adapterOfIdentity = (
  p: ProviderIdentity,
  givenBin: string | null,
  fallback: ProviderAdapter
): ProviderAdapter => {
  const streamIntervalMs = fallback.streamIntervalMs ?? null
  const recorded = p.executable !== null && path.isAbsolute(p.executable) && findExecutable(p.executable) !== null ? p.executable : null
  switch (p.name) {
    case "embedded":
      return givenBin !== null
        ? embedded(givenBin, streamIntervalMs)
        : p.executable === null
        ? embedded(null, streamIntervalMs)
        : recorded !== null
        ? embedded(recorded, streamIntervalMs)
        : fallback
    case "llama-server": {
      const found = givenBin ?? findLlamaServer(null).found ?? recorded
      return found === null ? fallback : llamaServer(found, NO_OPTIONAL_FLAGS)
    }
    case "macprovider":
      return macProvider(givenBin ?? (findExecutable("macprovider-cli") !== null ? "macprovider-cli" : recorded ?? "macprovider-cli"))
    default:
      return fallback
  }
}

/** The recipe's knobs as a Stage 2 cell. */
export const knobsOfRecipe = (rec: StoredRecommendation): Knobs =>
  new Knobs({
    kvBits: rec.knobs.kv_bits,
    maxContext: rec.knobs.max_context_override,
    maxBatch: rec.knobs.max_concurrency_override,
    threads: rec.knobs.threads ?? null,
    flashAttn: rec.knobs.flash_attn === undefined ? null : rec.knobs.flash_attn === "on",
    ubatch: rec.knobs.ubatch_size ?? null,
    batch: rec.knobs.batch_size ?? null
  })

const figuresOf = (o: TrialOutcome): RecipeFigures => ({
  tps_median: o.tpsMedian,
  tps_ci95: o.spread.tpsCi95,
  ttft_p95_ms: o.ttftP95Ms,
  ttft_ci95_ms: o.spread.ttftCi95Ms,
  replicates: o.samples.length
})

const pct = (now: number, then: number) => `${((now / then - 1) * 100).toFixed(1)} %`

/** The fewest replicates on both sides for their intervals to be compared (one replicate's interval is a point; SPEC N-1). */
export const MIN_COMPARED_REPLICATES = 3

/**
 * SPEC R-3: how far a figure must move, as a fraction, before verify calls it
 * a regression by default — 20 %, the trial-to-trial throughput variance
 * SPEC §4 reports. A recipe's interval comes from replicates of one trial, and
 * a trial measured on another day (another provider start, another page
 * cache) moves further than that interval says; the tie band alone (10 %)
 * raised false alarms here between two runs minutes apart.
 */
export const DEFAULT_VERIFY_TOLERANCE = 0.2

/**
 * The figures that regressed (SPEC R-3, N-1): tokens/s whose median fell
 * by more than `tolerance` (a fraction) and, where both sides have intervals
 * over at least MIN_COMPARED_REPLICATES replicates, whose new interval lies
 * wholly below the recorded one; TTFT p95 that rose by more than `tolerance`
 * with the new interval of its median wholly above the recorded one (no TTFT
 * call without intervals: the gate judges it). A move the noise or the
 * tolerance can explain is no regression.
 */
export const regressionsOf = (then: RecipeFigures, now: RecipeFigures, tolerance: number): Array<string> => {
  const out: Array<string> = []
  const compared = then.replicates >= MIN_COMPARED_REPLICATES && now.replicates >= MIN_COMPARED_REPLICATES
  if (then.tps_median !== null && now.tps_median !== null && now.tps_median < then.tps_median * (1 - tolerance)) {
    const apart = !compared || then.tps_ci95 === null || now.tps_ci95 === null || now.tps_ci95[1] < then.tps_ci95[0]
    if (apart) out.push(`tok/s ${then.tps_median.toFixed(1)} → ${now.tps_median.toFixed(1)} (${pct(now.tps_median, then.tps_median)})`)
  }
  if (
    compared && then.ttft_p95_ms !== null && now.ttft_p95_ms !== null && then.ttft_ci95_ms !== null && now.ttft_ci95_ms !== null &&
    now.ttft_ci95_ms[0] > then.ttft_ci95_ms[1] && now.ttft_p95_ms > then.ttft_p95_ms * (1 + tolerance)
  ) {
    out.push(`TTFT p95 ${then.ttft_p95_ms.toFixed(0)} ms → ${now.ttft_p95_ms.toFixed(0)} ms (${pct(now.ttft_p95_ms, then.ttft_p95_ms)})`)
  }
  return out
}

/**
 * Verifies `recipe` (SPEC R-3): the model (`candidate`, null when its file is
 * gone: infeasible) and the provider (`settings.adapter`, probed) are
 * compared with the identities recorded (R-1: this tool, machine, provider
 * binary, model size and header hash; for a document only the machine), then
 * the recipe's launch is probed over `replicates` requests at its target
 * context under `settings` (gate, memory estimate and quiet guard included:
 * a disturbed probe is measured again when the machine is quiet, N-3) and
 * compared with the recorded figures (`regressionsOf` at `tolerance`, a
 * fraction; never below the recipe's tie band); figures that regressed are
 * measured again in a second provider start, whose figures and verdict are the
 * result (`first_start` keeps the first's). Never fails: every finding is in
 * the result.
 */
export const verifyRecipe = (
  settings: TrialSettings,
  recipe: RecordedRecipe,
  candidate: Candidate | null,
  replicates: number,
  tolerance: number = DEFAULT_VERIFY_TOLERANCE
): Effect.Effect<VerifyResult, never, CandidateProvider | CpuMeter | HttpClient.HttpClient | Exec> =>
  Effect.gen(function*() {
    const rec = recipe.recommendation
    const version = yield* settings.adapter.version
    const base = {
      model: rec.model,
      provider: settings.adapter.name,
      knobs: rec.knobs,
      target_context: settings.targetContext,
      gate_ttft_ms: settings.gateTtftMs,
      recorded: {
        tps_median: rec.tps_median,
        tps_ci95: rec.tps_ci95 ?? null,
        ttft_p95_ms: rec.ttft_p95_ms,
        ttft_ci95_ms: rec.ttft_ci95_ms ?? null,
        replicates: rec.replicates
      }
    }
    if (candidate === null) {
      return {
        ...base,
        verdict: "infeasible",
        changes: [],
        unchecked: [],
        model_changed: false,
        regressions: [],
        reason: `the model ${rec.model} is not here any more`,
        disturbed: false,
        measured: null,
        first_start: null
      } as const
    }
    const machine = machineOf(version)
    const before = recipe.identity
    const modelBefore = before?.models[rec.model] ?? null
    const modelNow = yield* modelIdentity(candidate)
    const modelChanged = modelBefore !== null && (modelBefore.bytes !== modelNow.bytes || modelBefore.header_sha256 !== modelNow.header_sha256)
    const changes = before === null ? machineChanges(recipe.machine, machine) : identityChanges(
      new RunIdentity({ ...before, models: modelBefore === null ? {} : { [rec.model]: modelBefore } }),
      new RunIdentity({
        ...before,
        tool_version: AUTOTUNE_VERSION,
        // How this check takes a request's throughput (P-2): a recipe measured otherwise is said to be.
        policy: { ...before.policy, throughput: THROUGHPUT_POLICY },
        machine,
        provider: providerIdentity(settings.adapter.name, adapterExecutable(settings.adapter), version),
        models: { [rec.model]: modelNow }
      })
    )
    const unchecked = [
      ...(modelBefore === null ? [`the model file (no identity of ${rec.model} was recorded)`] : []),
      ...(before === null ? ["the provider binary (no identity recorded: a tune --json document, or a run from before identities)"] : [])
    ]
    // One provider start, measured and compared.
    const start = (first_start: VerifyResult["first_start"]) =>
      Effect.gen(function*() {
        const outcome = yield* measureQuietly(
          runTrial(settings, candidate, knobsOfRecipe(rec), replicates, null),
          settings.maxBackgroundCores,
          () => Effect.void
        )
        const measured = figuresOf(outcome)
        const found = { changes, unchecked, model_changed: modelChanged, disturbed: outcome.background?.disturbed === true, measured, first_start }
        if (outcome.verdict._tag !== "Fits") {
          return { ...base, ...found, verdict: "infeasible", regressions: [], reason: notesOf(outcome.verdict) } as const
        }
        const regressions = regressionsOf(base.recorded, measured, Math.max(tolerance, recipe.inputs.tps_tie_epsilon))
        return {
          ...base,
          ...found,
          verdict: modelChanged || regressions.length > 0 ? "regressed" : "holds",
          regressions,
          reason: null
        } as const
      })
    const first = yield* start(null)
    // A regression of the figures is called only when a second provider start shows it too (R-3): one
    // process of the same model and knobs can decode well outside the tolerance of another (the embedded
    // provider's 15M at 1 thread: 172–320 tok/s between processes, 2 cores, 2026-12-06), while the
    // recipe's interval comes from one process. A changed model file decides without figures.
    // An infeasible start is not measured again: the gate's own rules (G-1, N-2's extra replicates near it) judged it.
    if (first.verdict !== "regressed" || modelChanged || first.measured === null) return first
    return yield* start({ measured: first.measured, regressions: first.regressions, disturbed: first.disturbed })
  })

/** What a recipe that does not hold missed, in one line: why it is infeasible, or what regressed. */
export const verifyMissText = (r: VerifyResult): string =>
  r.verdict === "infeasible"
    ? `infeasible now: ${r.reason}`
    : [...r.model_changed ? ["the model file is not the one measured"] : [], ...r.regressions].join("; ")

/** The terminal lines of a verify result: then, now, what changed, and the verdict with its reasons. */
export const renderVerify = (r: VerifyResult): string => {
  const f = (x: RecipeFigures | null) =>
    x === null
      ? "not measured"
      : `${x.tps_median?.toFixed(1) ?? "n/a"} tok/s${x.tps_ci95 === null ? "" : ` [${x.tps_ci95[0].toFixed(1)}–${x.tps_ci95[1].toFixed(1)}]`}, TTFT p95 ${
        x.ttft_p95_ms?.toFixed(0) ?? "n/a"
      } ms over ${x.replicates} replicate(s)`
  return [
    `recipe ${r.model} on ${r.provider} at ${r.target_context} tokens, gate ${r.gate_ttft_ms} ms`,
    `  then: ${f(r.recorded)}`,
    ...(r.first_start == null ? [] : [
      `  first start: ${f(r.first_start.measured)}${r.first_start.disturbed ? " (disturbed, SPEC N-3)" : ""}, regressed (${
        r.first_start.regressions.join("; ")}): measured again in a second provider start`
    ]),
    `  now:  ${f(r.measured)}${r.disturbed ? " (other processes were busy: disturbed, SPEC N-3)" : ""}`,
    ...r.changes.map((c) => `  changed: ${c}`),
    ...r.unchecked.map((c) => `  not compared: ${c}`),
    ...r.regressions.map((c) => `  regressed: ${c}`),
    r.verdict === "holds"
      ? `holds: the recipe still passes the gate, within the noise of what was recorded${r.changes.length > 0 ? " (after the changes above)" : ""}`
      : r.verdict === "infeasible"
      ? verifyMissText(r)
      : `regressed: ${verifyMissText(r)}`
  ].join("\n")
}
