/**
 * The recommendation (SPEC F-1, F-2): the terminal block and the JSON
 * document of a run, with its recipe hash.
 */
import { bySizeAscending, type Candidate, formatParams } from "../domain/Candidate.js"
import type { ExitReason } from "../domain/ExitReason.js"
import { describeKnobs, type Knobs } from "../domain/Knobs.js"
import { recipeHash } from "../domain/RecipeHash.js"
import { isEstimatedOver, notesOf } from "../domain/Verdict.js"
import type { Capacity } from "./Capacity.js"
import { paretoFront } from "../domain/Pareto.js"
import {
  type CapacityJson,
  type Inputs,
  type KnobsJson,
  type Machine,
  RecommendationJson,
  SPEC_VERSION,
  TuneDocument
} from "../domain/TuneDocument.js"
import type { ProviderAdapter } from "../providers/ProviderAdapter.js"
import type { TrialOutcome } from "../domain/Trial.js"
import { medianCoverage } from "../domain/Stats.js"
import type { Rejected } from "./Stage1.js"
import type { DriftCheck, MeasuredCell } from "./Stage2.js"

/** The recommendation as measured: model, knobs, and the trial that measured them. */
export interface Recommended {
  readonly candidate: Candidate
  readonly knobs: Knobs
  readonly outcome: TrialOutcome
}

/** Knobs under the provider config's YAML keys (SPEC F-2); `threads` only where the provider has it. */
export const knobsJson = (k: Knobs, adapter: ProviderAdapter): KnobsJson => ({
  kv_bits: k.kvBits,
  max_concurrency_override: k.maxBatch,
  max_context_override: k.maxContext,
  ...(adapter.hasThreads ? { threads: k.threads } : {}),
  // Issue 17 part 3: only when searched, so a recipe without them hashes as before (F-2h).
  ...(k.flashAttn === null ? {} : { flash_attn: k.flashAttn ? "on" as const : "off" as const }),
  ...(k.ubatch === null ? {} : { ubatch_size: k.ubatch }),
  ...(k.batch === null ? {} : { batch_size: k.batch })
})

/**
 * The operator's command line for a recommendation (SPEC F-1): no port, no
 * `--no-join`; its context sized for a target-length prompt plus
 * `replyTokens` (F-5). Units: tokens.
 */
export const serveCommandOf = (adapter: ProviderAdapter, rec: Recommended, targetContext: number, replyTokens: number): string =>
  adapter.serveCommand({ model: rec.candidate.model, port: null, knobs: rec.knobs, targetContext, replyTokens })

/** Everything a run's document is built from. */
export interface RunSummary {
  readonly runId: string
  readonly startedAt: string
  readonly endedAt: string | null
  readonly exitReason: ExitReason
  readonly partial: boolean
  readonly machine: Machine
  readonly inputs: Inputs
  readonly adapter: ProviderAdapter
  readonly candidates: ReadonlyArray<Candidate>
  readonly targetContext: number
  /** The reply budget the serve command is sized for (F-5), tokens. */
  readonly replyTokens: number
  readonly recommended: Recommended | null
  readonly rejected: ReadonlyArray<Rejected>
  /** Trials measured while other processes were busy (N-3), whether measured again or not. */
  readonly disturbedTrials: number
  /** Stage 2 cells the noise could not tell from the recommendation at `--max-replicates` (N-2). */
  readonly tiedWithinNoise: ReadonlyArray<MeasuredCell>
  /** Stage 2's drift check of the recommendation (N-2); null when none was made. */
  readonly drift: DriftCheck | null
  /** The Stage 1 trial that chose the model (its marginal and disturbed flags); null without a choice. */
  readonly stage1: TrialOutcome | null
  /** `--max-replicates` and `--max-background-cores` (null: guard off). */
  readonly noisePolicy: { readonly maxReplicates: number; readonly maxBackgroundCores: number | null }
  /** SPEC C-4: the recommendation's capacity, when `--find-max-concurrency` found it (null: not searched or not finished). */
  readonly capacity?: Capacity | null
  /** Every Stage 2 cell measured (its figures over all its replicates), for the Pareto front; absent or empty: none. */
  readonly cells?: ReadonlyArray<MeasuredCell>
}

/** What an interval's coverage is, in words: "95 % interval", or "range of 3 replicates: 75 % interval". */
const coverageText = (coverage: number, n: number): string =>
  coverage >= 0.95 ? `${(coverage * 100).toFixed(0)} % interval` : `range of ${n} replicates: a ${(coverage * 100).toFixed(0)} % interval`

/** A 95 % interval as `[lo–hi]` with `digits` decimals (SPEC N-1); empty when there is none. */
export const formatCi = (ci: readonly [number, number] | null, digits: number): string =>
  ci === null ? "" : `[${ci[0].toFixed(digits)}–${ci[1].toFixed(digits)}]`

/**
 * Builds the F-2 document. Alternates (F-1) are the candidates strictly smaller
 * than the chosen one by parameter count, largest first, names only (they were
 * not measured), leaving out any this run found infeasible; none when the
 * chosen size is unknown. Infeasible candidates
 * keep their 1-based rank and reason.
 */
export const buildDocument = (s: RunSummary): TuneDocument => {
  const rec = s.recommended
  const knobs = rec === null ? null : knobsJson(rec.knobs, s.adapter)
  const chosenSize = rec?.candidate.paramCount ?? null
  const alternates = rec === null || chosenSize === null
    ? []
    : s.candidates
      // Smaller by size and never found infeasible here: a candidate this machine was shown not to serve is no fallback.
      .filter((c) => c.paramCount !== null && c.paramCount < chosenSize && !s.rejected.some((r) => r.candidate.id === c.id))
      .sort((a, b) => b.paramCount! - a.paramCount!)
      .map((c) => c.id)
  const front = rec === null ? [] : paretoJson(s.cells ?? [], rec.knobs, s.adapter)
  return new TuneDocument({
    spec_version: SPEC_VERSION,
    run_id: s.runId,
    started_at: s.startedAt,
    ended_at: s.endedAt,
    partial: s.partial,
    exit_reason: s.exitReason,
    machine: s.machine,
    inputs: s.inputs,
    recommendation: rec === null || knobs === null ? null : new RecommendationJson({
      model: rec.candidate.id,
      target_context: s.targetContext,
      knobs,
      tps_median: rec.outcome.tpsMedian,
      ttft_p95_ms: rec.outcome.ttftP95Ms,
      replicates: rec.outcome.samples.length,
      serve_command: serveCommandOf(s.adapter, rec, s.targetContext, s.replyTokens),
      tps_ci95: rec.outcome.spread.tpsCi95,
      ttft_ci95_ms: rec.outcome.spread.ttftCi95Ms,
      ...(rec.outcome.load === undefined ? {} : {
        load: {
          streams: rec.outcome.load.streams,
          aggregate_tps_median: rec.outcome.load.aggregateTps,
          itl_p95_ms: rec.outcome.load.itlP95Ms,
          peak_rss_bytes: rec.outcome.load.peakRssBytes,
          estimated_bytes: rec.outcome.load.estimatedBytes
        }
      }),
      // The coverage of the tok/s interval: over the replicates that measured a rate.
      ci_coverage: Math.round(medianCoverage(rec.outcome.samples.filter((x) => x.failure === null && x.tps !== null).length) * 1000) / 1000,
      tps_cv: rec.outcome.spread.tpsCv,
      ttft_median_ms: rec.outcome.ttftMedianMs,
      marginal: rec.outcome.marginal,
      disturbed: rec.outcome.background?.disturbed === true,
      stage1_marginal: s.stage1?.marginal === true,
      stage1_disturbed: s.stage1?.background?.disturbed === true,
      tied_within_noise: s.tiedWithinNoise.map((c) => ({
        knobs: knobsJson(c.knobs, s.adapter),
        tps_median: c.outcome.tpsMedian,
        tps_ci95: c.outcome.spread.tpsCi95,
        replicates: c.outcome.samples.length
      })),
      drift_check: s.drift === null ? null : {
        tps_median: s.drift.tpsMedian,
        moved: s.drift.moved,
        remeasured: s.drift.remeasured.map((k) => knobsJson(k, s.adapter))
      }
    }),
    disturbed_trials: s.disturbedTrials,
    ...(front.length === 0 ? {} : { pareto: front }),
    // C-4: only when asked for (the document of a run without the flag is as it was).
    ...(s.inputs.find_max_concurrency === true ? { capacity: rec === null || s.capacity == null ? null : capacityJson(s.capacity) } : {}),
    noise_policy: { max_replicates: s.noisePolicy.maxReplicates, max_background_cores: s.noisePolicy.maxBackgroundCores },
    alternates,
    infeasible: s.rejected.map((r) => ({
      model: r.candidate.id,
      rank: r.candidate.rank,
      reason: notesOf(r.verdict) ?? "",
      marginal: r.outcome?.marginal === true,
      disturbed: r.outcome?.background?.disturbed === true
    })),
    recipe_hash: rec === null || knobs === null ? null : recipeHash({ machine: s.machine, inputs: s.inputs, recommendation: { model: rec.candidate.id, knobs } })
  })
}

/**
 * F-2 `pareto` (issue 17, part 6): the feasible Stage 2 cells no other cell
 * beats on both aggregate tok/s (every stream's decode rate summed) and TTFT
 * p95 (`paretoFront`), in the order measured; `recommended` marks the
 * recommendation's cell.
 */
const paretoJson = (cells: ReadonlyArray<MeasuredCell>, chosen: Knobs, adapter: ProviderAdapter) => {
  const measured = cells.flatMap((c) => {
    const tps = c.outcome.load?.aggregateTps ?? c.outcome.tpsMedian
    const ttft = c.outcome.ttftP95Ms
    return c.outcome.verdict._tag === "Fits" && tps !== null && ttft !== null ? [{ cell: c, tps, ttftP95Ms: ttft }] : []
  })
  return paretoFront(measured).map((i) => {
    const m = measured[i]!
    return {
      knobs: knobsJson(m.cell.knobs, adapter),
      aggregate_tps: m.tps,
      goodput_tps: m.cell.outcome.tpsMedian,
      ttft_p95_ms: m.ttftP95Ms,
      recommended: m.cell.knobs === chosen
    }
  })
}

/** F-2 `capacity` of a finished search (SPEC C-4). */
const capacityJson = (c: Capacity): CapacityJson => ({
  users: c.users,
  missed_at: c.missedAt,
  capped: c.capped,
  objective: { ttft_p95_ms: c.objective.ttftP95Ms, itl_p95_ms: c.objective.itlP95Ms, decode_tps: c.objective.decodeTps },
  steps: c.steps.map(({ outcome: o, streams }) => ({
    users: streams,
    met: o.verdict._tag === "Fits",
    reason: notesOf(o.verdict),
    goodput_tps: o.tpsMedian,
    aggregate_tps: o.load?.aggregateTps ?? null,
    ttft_p95_ms: o.ttftP95Ms,
    itl_p95_ms: o.load?.itlP95Ms ?? null,
    peak_rss_bytes: o.load?.peakRssBytes ?? null
  }))
})

/** The block's capacity line (SPEC C-4): "serves up to N users at TTFT p95 ≤ X ms[, ITL p95 ≤ Y ms]" and what the next step missed. */
const capacityLine = (c: CapacityJson): string => {
  const bounds = [
    `TTFT p95 ≤ ${c.objective.ttft_p95_ms} ms`,
    ...(c.objective.itl_p95_ms === null ? [] : [`ITL p95 ≤ ${c.objective.itl_p95_ms} ms`]),
    ...(c.objective.decode_tps === null ? [] : [`≥ ${c.objective.decode_tps} tok/s per stream`])
  ].join(", ")
  const missed = c.steps.find((x) => x.users === c.missed_at)
  return `capacity:     serves up to ${c.users} user(s) at ${bounds}${
    c.capped ? ` (the search stops at ${c.users})` : missed === undefined ? "" : `; ${c.missed_at}: ${missed.reason}`
  }`
}

const fmt = (n: number | null, digits = 1) => (n === null ? "n/a" : n.toFixed(digits))

const GIB = 1024 ** 3

/**
 * The block's load lines (SPEC C-1, C-3): the objective met at N users with
 * its goodput, and the provider's measured peak memory (with the estimate's
 * ratio to it when one was made); none when nothing was measured.
 */
const loadLines = (rec: RecommendationJson, inputs: Inputs): Array<string> => {
  const l = rec.load
  if (l === undefined) return []
  const objective = [
    `TTFT p95 ≤ ${inputs.slo_ttft_p95_ms ?? inputs.gate_ttft_ms} ms`,
    ...(inputs.slo_itl_p95_ms === undefined ? [] : [`ITL p95 ≤ ${inputs.slo_itl_p95_ms} ms`]),
    ...(inputs.slo_decode_tps === undefined ? [] : [`≥ ${inputs.slo_decode_tps} tok/s per stream`])
  ].join(", ")
  return [
    ...(inputs.concurrency === undefined && inputs.slo_itl_p95_ms === undefined && inputs.slo_decode_tps === undefined &&
        inputs.slo_ttft_p95_ms === undefined
      ? []
      : [
        `load:         ${l.streams} concurrent user(s) met ${objective}; goodput ${fmt(rec.tps_median)} tok/s of ${
          fmt(l.aggregate_tps_median)
        } aggregate; worst stream ITL p95 ${fmt(l.itl_p95_ms, 0)} ms`
      ]),
    ...(l.peak_rss_bytes === null ? [] : [
      `peak memory:  ${(l.peak_rss_bytes / GIB).toFixed(2)} GiB resident under ${l.streams} stream(s)${
        l.estimated_bytes === null ? "" : ` (estimate ${(l.estimated_bytes / GIB).toFixed(2)} GiB, ${(l.estimated_bytes / l.peak_rss_bytes).toFixed(2)}× measured)`
      }`
    ])
  ]
}

/** The terminal block (SPEC F-1): model, knobs (kv-bits `unset` when nil), tok/s, p95 TTFT, serve command, alternates, infeasible. */
export const renderBlock = (doc: TuneDocument, s: RunSummary): string => {
  const lines: Array<string> = []
  const rec = doc.recommendation
  lines.push("", `== llm-autotune recommendation (run ${doc.run_id}, ${doc.exit_reason}${doc.partial ? ", partial" : ""}) ==`)
  if (rec === null || s.recommended === null) {
    lines.push("No recommendation.")
  } else {
    lines.push(
      `model:        ${rec.model} (${formatParams(s.recommended.candidate.paramCount)})`,
      `knobs:        ${describeKnobs(s.recommended.knobs)}`,
      `tok/s median: ${fmt(rec.tps_median)} ${formatCi(rec.tps_ci95, 1)} (${coverageText(rec.ci_coverage, rec.replicates)})${
        rec.tps_cv === null ? "" : `, CV ${(rec.tps_cv * 100).toFixed(0)} %`
      }`,
      `TTFT p95:     ${fmt(rec.ttft_p95_ms, 0)} ms at ${rec.target_context} tokens of context (median ${fmt(rec.ttft_median_ms, 0)} ms ${
        formatCi(rec.ttft_ci95_ms, 0)
      })`,
      `replicates:   ${rec.replicates}`,
      ...loadLines(rec, s.inputs),
      ...(rec.stage1_marginal
        ? [`marginal:     its Stage 1 TTFT was near the ${s.inputs.gate_ttft_ms} ms gate: chosen on the median of ${s.stage1?.samples.length ?? "?"} replicates (SPEC N-2)`]
        : []),
      ...(s.tiedWithinNoise.length === 0 ? [] : [
        `tied:         kept over cells the noise could not tell from it at the replicate cap (SPEC N-2): ${
          s.tiedWithinNoise.map((c) => `${describeKnobs(c.knobs)} ${fmt(c.outcome.tpsMedian)} tok/s ${formatCi(c.outcome.spread.tpsCi95, 1)}`)
            .join("; ")
        }`
      ]),
      ...(rec.drift_check === null ? [] : [
        `drift check:  ${
          rec.drift_check.moved
            ? `moved (${fmt(rec.drift_check.tps_median)} tok/s on a re-measure); ${rec.drift_check.remeasured.length} cell(s) in its tie band measured again`
            : `held (${fmt(rec.drift_check.tps_median)} tok/s on a re-measure)`
        }`
      ]),
      ...(rec.disturbed || rec.stage1_disturbed
        ? ["WARNING:      this recommendation rests on a trial measured while other processes were busy (SPEC N-3); tune again on a quiet machine"]
        : []),
      ...(doc.capacity == null ? [] : [capacityLine(doc.capacity)]),
      `serve:        ${rec.serve_command}`,
      `alternates:   ${doc.alternates.length === 0 ? "none" : doc.alternates.join(", ")} (smaller, not measured)`,
      `recipe hash:  ${doc.recipe_hash}`
    )
  }
  if (doc.disturbed_trials > 0) {
    lines.push(`disturbed:    ${doc.disturbed_trials} trial(s) measured while other processes were busy (over --max-background-cores; re-run when quiet)`)
  }
  // Measured failures and estimate skips are listed apart: the latter were never launched.
  const measured = s.rejected.filter((r) => !isEstimatedOver(r.verdict))
  const estimated = s.rejected.filter((r) => isEstimatedOver(r.verdict))
  for (const [title, rs] of [["infeasible (measured):", measured], ["skipped, estimated not to fit (not launched; --no-estimate to measure):", estimated]] as const) {
    if (rs.length === 0) continue
    lines.push(title)
    for (const r of bySizeAscending(rs)) {
      lines.push(`  #${r.candidate.rank} ${r.candidate.id} (${formatParams(r.candidate.paramCount)}): ${notesOf(r.verdict)}${
        r.outcome?.marginal === true ? ` (marginal: median of ${r.outcome.samples.length} replicates)` : ""
      }${r.outcome?.background?.disturbed === true ? " (WARNING: measured while other processes were busy)" : ""}`)
    }
  }
  return lines.join("\n")
}
