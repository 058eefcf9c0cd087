/**
 * A trial's verdict (SPEC B-2, D-2, G-1, P-1): fits, or why not, as data.
 * Stage 1, the recommendation, the report and the error count match on
 * `_tag`; the human-readable `notes` column (S-1) and F-2
 * `infeasible[].reason` are written from it by `notesOf`, in one place.
 */
import { Data } from "effect"

/** Where a request-level failure happened: the pre-warm (D-1, not measured) or a measured probe (P). */
export type Phase = "pre-warm" | "probe"

/**
 * Why a trial is infeasible, or that it fits:
 * - `Fits`: every replicate was feasible (B-2).
 * - `GateMissed`: TTFT over `--gate-ttft-ms` (G-1); `ttftMs` null when no
 *   first token had come by the gate (the request was cut there).
 * - `RequestFailed`: a non-2xx answer (`status`), a request error, a timeout,
 *   an error payload or a stream with no content or cut short (G-1, P-3);
 *   `detail` says which, e.g. "HTTP 503: busy".
 * - `ProviderDied`: the provider process ended during a request (G-1, often
 *   out of memory); `exit` is its signal or "exit code N", `tail` an excerpt of its output.
 * - `StopTokenLeak`: a special token (`token`) in the reply text (G-1).
 * - `PromptMiss`: the provider counted `promptTokens` prompt tokens, more than
 *   5 % off `targetContext` (P-1).
 * - `StartFailed`: the provider could not be started, or exited or never
 *   became ready while starting (E-4), or its model file could not be read;
 *   `message` and `detail` (the provider's error lines, "" when none), and the
 *   exit code when it exited.
 * - `EstimatedOver`: never launched: its memory estimate, `neededBytes`,
 *   exceeds `availableBytes` (issue "llama-server", item 4).
 * - `MemoryOver`: measured, but the provider's process group held
 *   `peakBytes` resident at its peak, over `headroom` (a fraction) of
 *   `limitBytes` (`--memory-headroom` of `--memory-limit` or the memory
 *   available, SPEC C-3) with `streams` concurrent requests.
 * - `ObjectiveMissed`: a replicate missed the latency objective at
 *   `streams` concurrent streams (SPEC C-1): `metric` (TTFT p95 or ITL p95
 *   in ms, or the slowest stream's decode in tokens/s) was `value` against
 *   the objective's `limit`.
 * - `Integrity`: a pre-warm failure classified as integrity (D-2): corrupt or
 *   incomplete weights; aborts the run. `reason` is the failure as reported,
 *   `line` the provider's output line carrying the marker when the reason
 *   does not already quote it.
 */
export type Verdict = Data.TaggedEnum<{
  Fits: {}
  GateMissed: { readonly phase: Phase; readonly gateTtftMs: number; readonly ttftMs: number | null }
  RequestFailed: { readonly phase: Phase; readonly detail: string; readonly status: number | null }
  ProviderDied: { readonly phase: Phase; readonly exit: string; readonly tail: string }
  StopTokenLeak: { readonly phase: Phase; readonly token: string }
  PromptMiss: { readonly promptTokens: number; readonly targetContext: number }
  StartFailed: { readonly message: string; readonly detail: string; readonly exitCode: number | null }
  EstimatedOver: { readonly neededBytes: number; readonly availableBytes: number }
  Integrity: { readonly reason: string; readonly line: string | null }
  MemoryOver: { readonly peakBytes: number; readonly limitBytes: number; readonly headroom: number; readonly streams: number }
  ObjectiveMissed: {
    readonly metric: ObjectiveMetric
    readonly value: number
    readonly limit: number
    readonly streams: number
  }
}>

/** What a latency objective bounds (SPEC C-1): TTFT p95 and ITL p95 from above (ms), the slowest stream's decode rate from below (tokens/s). */
export type ObjectiveMetric = "ttft_p95" | "itl_p95" | "decode_tps"

/** Constructors and matchers of `Verdict` (`Verdict.GateMissed({...})`, `Verdict.$match`). */
export const Verdict = Data.taggedEnum<Verdict>()

/** The `_tag` of a verdict: what the `tune_trials.verdict` column stores. */
export type VerdictTag = Verdict["_tag"]

/** Every verdict tag, in the order above (a tag missing here fails to compile below). */
export const VERDICT_TAGS = [
  "Fits",
  "GateMissed",
  "RequestFailed",
  "ProviderDied",
  "StopTokenLeak",
  "PromptMiss",
  "StartFailed",
  "EstimatedOver",
  "Integrity",
  "MemoryOver",
  "ObjectiveMissed"
] as const satisfies ReadonlyArray<VerdictTag>
const everyTagListed: Exclude<VerdictTag, typeof VERDICT_TAGS[number]> extends never ? true : false = true
void everyTagListed

/** A request-level failure, as one probe request reports it (SPEC G-1, P-3). */
export type ProbeFailure = Extract<Verdict, { readonly phase: Phase }>

/** The same request-level failure, as the pre-warm's (D-1): its text then starts "pre-warm: ". */
export const inPreWarm = (f: ProbeFailure): ProbeFailure => {
  switch (f._tag) {
    case "GateMissed":
      return Verdict.GateMissed({ ...f, phase: "pre-warm" })
    case "RequestFailed":
      return Verdict.RequestFailed({ ...f, phase: "pre-warm" })
    case "ProviderDied":
      return Verdict.ProviderDied({ ...f, phase: "pre-warm" })
    case "StopTokenLeak":
      return Verdict.StopTokenLeak({ ...f, phase: "pre-warm" })
  }
}

/** Bytes in one GiB (2^30). */
const GIB = 1024 ** 3

/**
 * The F-1 text of a memory-estimate skip: exactly `estimated <X> GiB > <Y>
 * GiB available`, X rounded up and Y rounded down to one decimal so the text
 * never contradicts the decision (e.g. "estimated 1.6 GiB > 1.0 GiB available").
 */
const estimatedText = (neededBytes: number, availableBytes: number): string =>
  `estimated ${(Math.ceil((neededBytes / GIB) * 10 - 1e-9) / 10).toFixed(1)} GiB > ${
    (Math.floor((availableBytes / GIB) * 10 + 1e-9) / 10).toFixed(1)
  } GiB available`

const inPhase = (phase: Phase, text: string) => (phase === "pre-warm" ? `pre-warm: ${text}` : text)

/**
 * The human-readable reason of a verdict (S-1 `notes`, F-2
 * `infeasible[].reason`), null for `Fits`. The texts are the ones the
 * tool has always written (tests and operators grep them), e.g.
 * "TTFT 5234 ms > 5000 ms gate", "HTTP 503: busy",
 * "estimated 1.6 GiB > 1.0 GiB available", "integrity: …".
 */
export const notesOf = (v: Verdict): string | null =>
  Verdict.$match(v, {
    Fits: () => null,
    GateMissed: (g) =>
      inPhase(
        g.phase,
        g.ttftMs === null ? `TTFT > ${g.gateTtftMs} ms gate (no first token yet)` : `TTFT ${Math.round(g.ttftMs)} ms > ${g.gateTtftMs} ms gate`
      ),
    RequestFailed: (r) => inPhase(r.phase, r.detail),
    ProviderDied: (d) =>
      inPhase(d.phase, `provider process died during the request (${d.exit}; possibly out of memory)${d.tail ? `: ${d.tail}` : ""}`),
    StopTokenLeak: (l) => inPhase(l.phase, `stop-token leak: ${l.token} in the reply`),
    PromptMiss: (p) => `prompt was ${p.promptTokens} tokens, target ${p.targetContext} (more than 5 % off, SPEC P-1)`,
    StartFailed: (s) => `${s.message}${s.detail ? `: ${s.detail}` : ""}`,
    EstimatedOver: (e) => estimatedText(e.neededBytes, e.availableBytes),
    Integrity: (i) => `integrity: ${i.reason}${i.line === null ? "" : ` (${i.line})`}`,
    MemoryOver: (m) =>
      `peak ${gib(m.peakBytes)} GiB under ${usersText(m.streams)} > ${Math.round(m.headroom * 100)} % of ${gib(m.limitBytes)} GiB (SPEC C-3)`,
    ObjectiveMissed: (o) =>
      o.metric === "decode_tps"
        ? `slowest stream decoded ${o.value.toFixed(1)} tok/s < ${o.limit} tok/s objective at ${usersText(o.streams)}`
        : `${o.metric === "ttft_p95" ? "TTFT" : "ITL"} p95 ${Math.round(o.value)} ms > ${o.limit} ms objective at ${usersText(o.streams)}`
  })

/** `1 user`, `4 users`. */
const usersText = (n: number) => `${n} user${n === 1 ? "" : "s"}`

/** Bytes in GiB with one decimal (`21.7`); two below 1 GiB, so a small process does not read as 0.0. */
const gib = (bytes: number) => (bytes / GIB).toFixed(bytes < GIB ? 2 : 1)

/** Whether a verdict is a skip on the memory estimate: never launched, so no measurement (listed apart, F-1). */
export const isEstimatedOver = (v: Verdict): boolean => v._tag === "EstimatedOver"
