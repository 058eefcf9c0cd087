/**
 * A latency objective at a concurrency (SPEC C-1, C-2): how many users a
 * replicate stands for, what each of them must get, and the goodput a
 * replicate delivers under it.
 */
import { percentile } from "./Stats.js"
import type { ProbeSample } from "./Trial.js"
import { Verdict } from "./Verdict.js"

/**
 * `--concurrency N` with its objective (SPEC C-1). Units: ms, tokens/s.
 * - `streams`: concurrent streams per replicate (N ≥ 1).
 * - `ttftP95Ms`: `--slo-ttft-p95-ms`, at most the TTFT gate (its default).
 * - `itlP95Ms`: `--slo-itl-p95-ms`, the bound on every stream's
 *   inter-token latency p95; null for none.
 * - `decodeTps`: `--slo-decode-tps`, the least decode rate of every stream;
 *   null for none.
 */
export interface Objective {
  readonly streams: number
  readonly ttftP95Ms: number
  readonly itlP95Ms: number | null
  readonly decodeTps: number | null
}

/**
 * Whether `o` asks nothing a single-user run does not (SPEC C-1, F-2h): one
 * user, the TTFT bound at the gate, no ITL or decode bound. Such an objective
 * is no objective (`validatePlan` drops it), so a run with it measures and
 * hashes as a plain one.
 */
export const isDefaultObjective = (o: Objective, gateTtftMs: number): boolean =>
  o.streams === 1 && o.ttftP95Ms === gateTtftMs && o.itlP95Ms === null && o.decodeTps === null

/** SPEC C-1: how far apart a replicate's streams start, ms — a pool routes users' requests as they come, not in one burst. */
export const STREAM_STAGGER_MS = 50

/**
 * One stream of a replicate as the objective sees it (SPEC C-1): its TTFT and
 * ITL p95 (ms), its decode rate (tokens/s, P-2), and whether it met every
 * bound of the objective (`met`; a failed request never does).
 */
export interface StreamFigures {
  readonly ttftMs: number | null
  readonly itlP95Ms: number | null
  readonly tps: number | null
  readonly met: boolean
}

/**
 * One replicate of N streams judged against `o` (SPEC C-1, C-2):
 * - `streams`: each stream's figures;
 * - `goodputTps`: the summed decode rate of the streams that met the
 *   objective (one that missed counts zero), tokens/s;
 * - `aggregateTps`: the summed decode rate of every stream that decoded;
 * - `itlP95Ms`: the worst stream's ITL p95 (null when none was timed);
 * - `missed`: the first bound the replicate missed, as a verdict: the p95
 *   over its streams of TTFT (a stream cut off with no first token counts at
 *   `cutoffMs`, where the probe cut it; only when `ttftP95Ms` is below `gateTtftMs`:
 *   at the gate the gate itself judges), the
 *   worst stream's ITL p95, the slowest stream's decode; null when it met them all.
 */
export const judgeReplicate = (
  o: Objective,
  gateTtftMs: number,
  parts: ReadonlyArray<ProbeSample>,
  cutoffMs: number = gateTtftMs
): {
  readonly streams: ReadonlyArray<StreamFigures>
  readonly goodputTps: number
  readonly aggregateTps: number
  readonly itlP95Ms: number | null
  readonly missed: Verdict | null
} => {
  const streams = parts.map((p): StreamFigures => ({
    ttftMs: p.ttftMs,
    itlP95Ms: p.itlP95Ms ?? null,
    tps: p.tps,
    met: p.failure === null && p.ttftMs !== null && p.ttftMs <= o.ttftP95Ms &&
      (o.itlP95Ms === null || (p.itlP95Ms ?? null) === null || p.itlP95Ms! <= o.itlP95Ms) &&
      (o.decodeTps === null || (p.tps !== null && p.tps >= o.decodeTps))
  }))
  const sum = (xs: ReadonlyArray<StreamFigures>) => xs.reduce((a, s) => a + (s.tps ?? 0), 0)
  const itls = streams.flatMap((s) => (s.itlP95Ms === null ? [] : [s.itlP95Ms]))
  const itlP95Ms = itls.length === 0 ? null : Math.max(...itls)
  // A stream cut off without a first token (Stage 1 cuts at the gate + 15 %, N-2) waited at least the cut-off.
  const timed = parts.flatMap((p) => (p.ttftMs !== null ? [p.ttftMs] : p.failure?._tag === "GateMissed" ? [cutoffMs] : []))
  const ttftP95 = percentile(timed, 95)
  // A stream with no decode rate (fewer than 2 tokens) decoded at 0 as far as the bound is concerned.
  const slowest = streams.length === 0 ? null : Math.min(...streams.map((s) => s.tps ?? 0))
  const missed = o.ttftP95Ms < gateTtftMs && ttftP95 !== null && ttftP95 > o.ttftP95Ms
    ? Verdict.ObjectiveMissed({ metric: "ttft_p95", value: ttftP95, limit: o.ttftP95Ms, streams: o.streams })
    : o.itlP95Ms !== null && itlP95Ms !== null && itlP95Ms > o.itlP95Ms
    ? Verdict.ObjectiveMissed({ metric: "itl_p95", value: itlP95Ms, limit: o.itlP95Ms, streams: o.streams })
    : o.decodeTps !== null && slowest !== null && slowest < o.decodeTps
    ? Verdict.ObjectiveMissed({ metric: "decode_tps", value: slowest, limit: o.decodeTps, streams: o.streams })
    : null
  return { streams, goodputTps: sum(streams.filter((s) => s.met)), aggregateTps: sum(streams), itlP95Ms, missed }
}
