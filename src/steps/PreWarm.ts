/**
 * The pre-warm (SPEC D-1): the process's first use, before anything is
 * measured (short requests, then a full-length one where the provider needs
 * it or the prompt could not be sized without it, bounded in Stage 1 by twice
 * the gate); it also sizes the probe prompt (P-1), with the provider's own
 * tokenizer where it has one.
 */
import type { HttpClient } from "@effect/platform"
import { Effect } from "effect"
import type { RunningServer } from "../domain/RunningServer.js"
import { inPreWarm, type ProbeFailure, Verdict } from "../domain/Verdict.js"
import type { ProbeSample } from "../domain/Trial.js"
import { probeOnce } from "./Probe.js"
import { countTokens } from "./TokenCount.js"
import {
  type Calibration,
  calibrate,
  plausiblePromptTokens,
  PROMPT_TOLERANCE,
  promptOfWords,
  wordsForTokens
} from "../domain/Prompt.js"

/** Words of the first, short pre-warm request: a process's first use, and one calibration point. */
const SHORT_WORDS = 16

/** Words of the second short request (every trial): past llama.cpp's 32-token batched path, and the second calibration point. */
const SECOND_WORDS = 64

/** Bound of one `/tokenize` call, ms: a count takes milliseconds (no inference); a provider silent this long cannot count. */
const TOKEN_COUNT_TIMEOUT_MS = 15_000

/**
 * The prompt calibration from the provider's tokenizer (issue 14 part 4),
 * without a prefill: the chat template's tokens are the first short
 * request's `usage.prompt_tokens` (`shortPoint`: [words, tokens]) minus
 * `/tokenize`'s count of its text (the same for 16 to 1000 words on
 * llama-server and embedded, measured 2026-12-07 on a synthetic model's
 * tokenizer and each provider's template); the tokens per word come from
 * counting that text and a text of about `targetContext` tokens (probe
 * variant 1; at least twice the short text's words), counted again (once,
 * where the first count missed) until the count is on the target within
 * half of P-1's tolerance. Null when the provider cannot count (no route, an
 * error, a count no tokenizer gives, a text counted longer than its whole
 * request) or the last count is still off a target above twice the short
 * text: the caller fits from requests' usage instead. Units: words, tokens,
 * ms.
 */
const tokenizerCalibration = (
  server: RunningServer,
  shortPoint: readonly [number, number],
  targetContext: number,
  timeoutMs: number
): Effect.Effect<Calibration | null, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const [shortWords, shortTokens] = shortPoint
    const shortText = yield* countTokens(server, promptOfWords(shortWords), timeoutMs)
    if (shortText === null || !plausiblePromptTokens(shortWords, shortText) || shortText > shortTokens) return null
    const templateTokens = shortTokens - shortText
    const onTarget = (tokens: number) => Math.abs(tokens - targetContext) <= (PROMPT_TOLERANCE / 2) * targetContext
    let calibration: Calibration = { overheadTokens: templateTokens, tokensPerWord: shortText / shortWords }
    let counted: { readonly words: number; readonly tokens: number } | null = null
    for (let round = 0; round < 2; round++) {
      // At least twice the short text, so the two counts are apart (a small target is sized between them).
      const words = Math.max(wordsForTokens(calibration, targetContext), 2 * shortWords)
      if (counted !== null && words === counted.words) break
      const text: number | null = yield* countTokens(server, promptOfWords(words, 1), timeoutMs)
      if (text === null || !plausiblePromptTokens(words, text) || text <= shortText) return null
      counted = { words, tokens: text + templateTokens }
      calibration = calibrate(shortPoint, [words, counted.tokens])
      if (onTarget(counted.tokens)) return calibration
    }
    // The last count missed the target: good only where the target lies between the two counted texts (one
    // below twice the short text's words, sized between two exact counts); else not known to be on it.
    return wordsForTokens(calibration, targetContext) <= 2 * shortWords ? calibration : null
  })

/**
 * The pre-warm's policy in a run's identity (SPEC R-1 `policy.prewarm`) for
 * a provider whose adapter says short requests warm it or not
 * (`ProviderAdapter.shortWarmUpSuffices`) and that counts tokens or not
 * (`countsTokens`): changed whenever what a pre-warm sends or bounds changes,
 * so a resume does not replay trials pre-warmed otherwise (a run recorded
 * before 2026-12-06's switch of embedded and llama-server to true, with one
 * slot, or before 2026-12-07's sizing by `/tokenize`, is measured again).
 */
export const preWarmPolicy = (shortWarmUpSuffices: boolean, countsTokens: boolean): string =>
  `two short first-use requests, ${countsTokens ? "the prompt sized by the provider's /tokenize where it counts, " : ""}` +
  (shortWarmUpSuffices
    ? "then full-length only to calibrate from usage with one slot (else always), bounded at the gate + 5 % where a probe's equal, else twice the gate in Stage 1, where the first probe is so bounded when no full-length request ran (issue 14)"
    : "then full-length bounded at twice the gate in Stage 1 (issue 14)")

/** Pre-warm outcome: a calibration on success, else how the request failed (phase `pre-warm`). */
export type PreWarmResult =
  | {
    readonly _tag: "Warm"
    readonly calibration: Calibration
    /**
     * Whether a full-length request ran: false where the first probe is the
     * trial's first full-length request (a sized prompt on a provider the
     * short requests warm), which Stage 1 then bounds as it would have
     * bounded the pre-warm's (RunTrial).
     */
    readonly fullLength: boolean
  }
  | {
    readonly _tag: "Failed"
    readonly failure: ProbeFailure
    /**
     * A full-length request cut at its bound (`GateMissed`): the known calibration, else the one the
     * tokenizer counted or the two short requests fitted (null when neither), so a later trial of the same model sizes its
     * full-length request from it (the tune never reuses an infeasible trial's; the bench's exhaustive
     * 1.1B cells do).
     */
    readonly calibration?: Calibration | null
    /**
     * Failed in the process's first use (the first short requests), none of which was answered (an
     * HTTP error counts as no answer): the provider served nothing yet. With its exit soon after
     * ready, the start's failure (SPEC E-4, RunTrial).
     */
    readonly firstUse?: boolean
  }

/** What a pre-warm needs. Units: tokens, ms. */
export interface PreWarmSpec {
  readonly targetContext: number
  /** Requests decoded in parallel by the provider (the max-batch knob; 1 when unset). */
  readonly concurrent: number
  /**
   * Bound of each short request, and of the full-length one's whole
   * request (not the TTFT gate: first-use time is excluded from it, D-1).
   */
  readonly timeoutMs: number
  /**
   * The full-length request's TTFT bound, ms (issue 14 part 4): a
   * request with no first token by then is cut, and the pre-warm fails
   * with a `GateMissed` naming `gateTtftMs`. At least the gate: the caller
   * picks it (`preWarmBoundMs`); null: bounded by `timeoutMs` only.
   */
  readonly boundMs: number | null
  /** The TTFT gate (G-1), ms: what a cut full-length request's reason names. */
  readonly gateTtftMs: number
  /** Calibration of the same model from an earlier trial, if any. */
  readonly known: Calibration | null
  /**
   * Whether the provider counts tokens (`ProviderAdapter.countsTokens`):
   * without a `known` calibration the prompt is then sized with its
   * tokenizer (`/tokenize`), falling back to usage counts where that fails.
   * Absent: false.
   */
  readonly countsTokens?: boolean
  /**
   * Whether a trial whose prompt is sized (a `known` calibration, or one
   * counted by the tokenizer) still sends the full-length request (false
   * where the short requests warm the provider: its adapter's
   * `shortWarmUpSuffices` and one slot, RunTrial). With a prompt fitted from
   * usage counts it is always sent: it refines the calibration (P-1).
   */
  readonly fullLength: boolean
  /**
   * Run right before the full-length requests are sent (not when none is): the caller opens its
   * measurement window there (SPEC N-3 judges a cut over those requests alone, not over first use).
   */
  readonly onFullLength?: Effect.Effect<void>
}

/**
 * The pre-warm bound in Stage 1 (not under an objective), as a multiple of
 * the gate (issue 14 part 4): there N-2 calls a candidate near the gate on
 * the median of several replicates, so one request just over the gate must
 * not decide it, and where the short requests are not known to warm the
 * provider (macprovider; several slots) the full-length request
 * may still carry first-use costs. A full-length prefill past twice the
 * gate is no candidate N-2 could call feasible. Kept at twice the gate even
 * where the request is a probe's equal: of three full-length requests in
 * one process after the short ones, on a quiet 2-core machine, one read up
 * to 38 % above another (2026-12-06, 16 processes: 1.1B and 130M, both
 * providers, default knobs; the 1.1B on llama-server 17.7 s, then 14.0 and
 * 12.8 s; the first was not slower as a rule: first ÷ median of the next
 * two 0.85–1.34, median 1.00), so a bound at the probes' cut-off + 5 %
 * (tried, and withdrawn) would let one such request reject a candidate N-2
 * calls feasible on its median. (Under an objective, C-1,
 * whose probes start their streams STREAM_STAGGER_MS apart while the
 * pre-warm's start at once, only the timeouts bound it: `preWarmBoundMs`.)
 */
export const PRE_WARM_LOOSE_BOUND = 2

/**
 * The full-length pre-warm request's TTFT bound, ms, or null for none but
 * the timeouts (issue 14 part 4): `gateMs` × (1 + PROMPT_TOLERANCE) where
 * that request is a probe's equal (`probeEqual`: a provider the short
 * requests warm, no N-2 median call, no objective; the tolerance covers a
 * prompt sized from the two short points); else PRE_WARM_LOOSE_BOUND ×
 * `gateMs` in Stage 1 (`stage1`: N-2 calls on a median); else null — its
 * first-use cost is unmeasured and the first probe is cut at the gate anyway.
 */
export const preWarmBoundMs = (gateMs: number, o: { readonly probeEqual: boolean; readonly stage1: boolean }): number | null =>
  o.probeEqual ? Math.ceil(gateMs * (1 + PROMPT_TOLERANCE)) : o.stage1 ? PRE_WARM_LOOSE_BOUND * gateMs : null

const failed = (s: ProbeSample): PreWarmResult | null =>
  s.failure !== null && s.ttftMs === null ? { _tag: "Failed", failure: inPreWarm(s.failure) } : null

/**
 * Pre-warms a started provider (SPEC D-1) so first-use costs stay out of the
 * measurement: the start loaded the model; `concurrent` short requests at
 * once (16 words, 1 reply token) are the process's first use (page faults of
 * the weights, a first graph, a JIT) and are bounded only by `timeoutMs`;
 * then `concurrent` requests at the full target context at once run the
 * first inference at that length — unless the prompt is sized (a `known`
 * calibration, or one counted by the provider's tokenizer) and `fullLength`
 * is false (a provider the short requests warm,
 * `ProviderAdapter.shortWarmUpSuffices`, with one slot: embedded and
 * llama-server, measured 2026-12-06; macprovider and several slots,
 * unmeasured, keep it). Then the result says `fullLength: false` and the
 * first probe is the trial's first full-length request.
 *
 * A second short request (64 words, every trial: past the 32 tokens where
 * llama.cpp switches to its batched matrix path) follows the first. Sizing
 * the prompt (SPEC P-1) without a `known` calibration: where the provider
 * counts tokens (`countsTokens`: llama-server's `/tokenize`, which embedded
 * serves too), the first request's `usage.prompt_tokens` gives the chat
 * template's tokens and `/tokenize` the text's, with no prefill (issue 14
 * part 4); else, or where that fails, the two requests' `usage.prompt_tokens`
 * counts calibrate words → tokens before any full-length prefill, so that
 * request is sized to the target, and the first point and the full-length one
 * then refine it (a wider baseline). A prompt-token count no tokenizer gives
 * (0, negative, absurd: see `plausiblePromptTokens`) in a request's usage
 * fails the pre-warm with that reason instead of sizing a prompt from it.
 *
 * Bounded by the gate (issue 14 part 4): a full-length request with no
 * first token by `boundMs` (or a first token later than it) is cut, and the
 * pre-warm fails with `GateMissed` (phase `pre-warm`, the gate named): a
 * candidate whose pre-warm alone exceeds the gate is infeasible without a
 * probe. Never fails: a failed request is a `Failed` result with its failure.
 */
export const preWarm = (
  server: RunningServer,
  spec: PreWarmSpec
): Effect.Effect<PreWarmResult, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    // `boundMs` null: no TTFT bound of its own (twice the timeout, which ends the request first), so a hung
    // first use reads as a timeout, classified as any failure is (D-2), never as the gate's call.
    const send = (words: number, boundMs: number | null) =>
      probeOnce(server, {
        prompt: promptOfWords(words),
        maxTokens: 1,
        gateTtftMs: boundMs ?? 2 * spec.timeoutMs,
        requestTimeoutMs: spec.timeoutMs
      })
    // A count no tokenizer gives (0, negative, absurd) must never size a prompt (SPEC P-1).
    const implausible = (words: number, tokens: number | null): PreWarmResult | null =>
      tokens === null || plausiblePromptTokens(words, tokens) ? null : {
        _tag: "Failed",
        failure: Verdict.RequestFailed({
          phase: "pre-warm",
          detail: `the provider counted ${tokens} prompt tokens for a ${words}-word prompt, which no tokenizer gives (SPEC P-1)`,
          status: null
        })
      }
    // The process's first use, in every trial (a known calibration too), every slot at once: what it warms is
    // not paid again (on embedded and llama-server with one slot, measured: D-1; otherwise a full-length warm-up follows).
    const first = yield* Effect.forEach(Array.from({ length: spec.concurrent }), () => send(SHORT_WORDS, null), {
      concurrency: "unbounded"
    })
    // None of them answered (every one failed before a first token): the process served nothing yet (E-4, RunTrial).
    const noneAnswered = first.every((s) => s.failure !== null && s.ttftMs === null)
    for (const s of first) {
      const bad = failed(s)
      if (bad !== null) return noneAnswered ? { ...bad, firstUse: true } : bad
      const miscounted = implausible(SHORT_WORDS, s.promptTokens)
      if (miscounted !== null) return miscounted
    }
    const a = first[0]!
    const shortPoint: readonly [number, number] | null = a.promptTokens === null ? null : [SHORT_WORDS, a.promptTokens]
    // The second short request, in every trial too: a prompt past 32 tokens, where llama.cpp's batched matrix
    // path (and a GPU build's GEMM library) takes over from the single-token one; the two together are the
    // first use measured to warm embedded and llama-server (D-1). Its prompt extends the first's (same words,
    // same template), so the difference of the two counts is the 48 added words' tokens alone.
    const b = yield* send(SECOND_WORDS, null)
    const badB = failed(b) ?? implausible(SECOND_WORDS, b.promptTokens)
    if (badB !== null) return badB
    let calibration = spec.known
    // Sized by the provider's own tokenizer (issue 14 part 4), no prefill: no full-length request needs to
    // refine it.
    const counted = calibration === null && spec.countsTokens === true && shortPoint !== null
      ? yield* tokenizerCalibration(server, shortPoint, spec.targetContext, Math.min(spec.timeoutMs, TOKEN_COUNT_TIMEOUT_MS))
      : null
    // Fitted from the two short requests' counts (the longer prompt more tokens), else 1 token a word, which the
    // full-length request's count corrects below.
    const fitted = shortPoint !== null && b.promptTokens !== null && b.promptTokens > shortPoint[1]
    calibration ??= counted ?? (shortPoint !== null && b.promptTokens !== null
      ? calibrate(shortPoint, [SECOND_WORDS, b.promptTokens])
      : { overheadTokens: 0, tokensPerWord: 1 })
    // A sized prompt on a provider the short requests warmed: its first probe is its first full-length request.
    if ((spec.known !== null || counted !== null) && !spec.fullLength) return { _tag: "Warm", calibration, fullLength: false } as const
    const words = wordsForTokens(calibration, spec.targetContext)
    if (spec.onFullLength !== undefined) yield* spec.onFullLength
    // Short of the request timeout, so a cut there reads as the bound's, never as a timeout (a race otherwise).
    const boundMs = spec.boundMs === null ? null : Math.min(spec.boundMs, spec.timeoutMs - 1)
    const full = yield* Effect.forEach(Array.from({ length: spec.concurrent }), () => send(words, boundMs), {
      concurrency: "unbounded"
    })
    // A request that failed outright (an error, a death) is named before one cut at the bound: the cut must not
    // hide it (nor its D-2 classification).
    for (const s of full) {
      const bad = s.failure?._tag === "GateMissed" ? null : failed(s) ?? implausible(words, s.promptTokens)
      if (bad !== null) return bad
    }
    // A TTFT past the bound (cut before its first token, or later than it) is the gate's call, not a failure.
    const cut = full.find((s) => s.failure?._tag === "GateMissed")
    if (cut !== undefined) {
      return {
        _tag: "Failed",
        failure: Verdict.GateMissed({ phase: "pre-warm", gateTtftMs: spec.gateTtftMs, ttftMs: cut.ttftMs }),
        // A counted or fitted one (two counts, the longer prompt more tokens), never calibrate's 1-token-a-word fallback.
        calibration: spec.known ?? counted ?? (fitted ? calibration : null)
      } as const
    }
    const tokens = full[0]?.promptTokens ?? null
    if (spec.known === null && counted === null && shortPoint !== null && tokens !== null) {
      calibration = calibrate(shortPoint, [words, tokens])
    }
    return { _tag: "Warm", calibration, fullLength: true } as const
  })
