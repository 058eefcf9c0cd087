/**
 * The pre-warm (SPEC D-1): the model's first inference, at the full target
 * context, before anything is measured; it also calibrates the prompt builder.
 */
import type { HttpClient } from "@effect/platform"
import { Effect } from "effect"
import type { RunningServer } from "../domain/RunningServer.js"
import { inPreWarm, type ProbeFailure, Verdict } from "../domain/Verdict.js"
import type { ProbeSample } from "../domain/Trial.js"
import { probeOnce } from "./Probe.js"
import { type Calibration, calibrate, plausiblePromptTokens, promptOfWords, wordsForTokens } from "../domain/Prompt.js"

/** Words of the first, short pre-warm request: a process's first use, and one calibration point. */
const SHORT_WORDS = 16

/** Words of the second short request, sent only without a known calibration: the second calibration point. */
const SECOND_WORDS = 64

/** Pre-warm outcome: a calibration on success, else how the request failed (phase `pre-warm`). */
export type PreWarmResult =
  | { readonly _tag: "Warm"; readonly calibration: Calibration }
  | { readonly _tag: "Failed"; readonly failure: ProbeFailure }

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
   * with a `GateMissed` naming `gateTtftMs`. At least the gate (the
   * caller's choice: the gate, or PRE_WARM_STAGE1_BOUND × it where N-2 may
   * still call a candidate near the gate feasible); null: bounded by
   * `timeoutMs` only.
   */
  readonly boundMs: number | null
  /** The TTFT gate (G-1), ms: what a cut full-length request's reason names. */
  readonly gateTtftMs: number
  /** Calibration of the same model from an earlier trial, if any. */
  readonly known: Calibration | null
  /**
   * Whether a trial with a `known` calibration still sends the full-length
   * request (the adapter's `shortWarmUpSuffices`, negated). Without a known
   * calibration it is always sent: it calibrates the prompt (P-1).
   */
  readonly fullLength: boolean
}

/**
 * Stage 1's pre-warm bound, as a multiple of the gate (issue 14 part 4). N-2
 * calls a Stage 1 candidate near the gate on the median of several
 * replicates, so one request just over the gate must not decide it; a
 * full-length prefill past twice the gate is no candidate the median could
 * call feasible.
 */
export const PRE_WARM_STAGE1_BOUND = 2

const failed = (s: ProbeSample): PreWarmResult | null =>
  s.failure !== null && s.ttftMs === null ? { _tag: "Failed", failure: inPreWarm(s.failure) } : null

/**
 * Pre-warms a started provider (SPEC D-1) so first-use costs stay out of the
 * measurement: the start loaded the model; `concurrent` short requests at
 * once (16 words, 1 reply token) are the process's first use (page faults of
 * the weights, a first graph, a JIT) and are bounded only by `timeoutMs`;
 * then `concurrent` requests at the full target context at once run the
 * first inference at that length — unless the trial has a `known`
 * calibration and `fullLength` is false (a provider a short request warms,
 * `ProviderAdapter.shortWarmUpSuffices`): its first probe is then its first
 * full-length request (measured on 130M after the libuv fix: the first
 * full-length prefill is within 5 % of the later ones on both llama-server
 * and the embedded provider, so it is as good a TTFT as a probe's).
 *
 * Without a `known` calibration, a second short request (64 words) follows
 * the first: the two `usage.prompt_tokens` counts calibrate words → tokens
 * for this provider's tokenizer and chat template (SPEC P-1) before any
 * full-length prefill, so that request is sized to the target; the first
 * point and the full-length one then refine it (a wider baseline).
 * A prompt-token count no tokenizer gives (0, negative, absurd: see
 * `plausiblePromptTokens`) fails the pre-warm with that reason instead of
 * sizing a prompt from it.
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
    // `boundMs` null: no TTFT bound of its own (one past the timeout), so only the request timeout ends it
    // and a hung first use reads as a timeout, classified as any failure is (D-2), never as the gate's call.
    const send = (words: number, boundMs: number | null) =>
      probeOnce(server, {
        prompt: promptOfWords(words),
        maxTokens: 1,
        gateTtftMs: boundMs ?? spec.timeoutMs + 1,
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
    // The process's first use, in every trial (a known calibration too), every slot at once: nothing after it
    // pays first-use costs.
    const first = yield* Effect.forEach(Array.from({ length: spec.concurrent }), () => send(SHORT_WORDS, null), {
      concurrency: "unbounded"
    })
    for (const s of first) {
      const bad = failed(s) ?? implausible(SHORT_WORDS, s.promptTokens)
      if (bad !== null) return bad
    }
    const a = first[0]!
    const shortPoint: readonly [number, number] | null = a.promptTokens === null ? null : [SHORT_WORDS, a.promptTokens]
    let calibration = spec.known
    if (calibration === null) {
      // First guess: all of the short prompt's tokens were text (overhead ignored); a second point corrects it.
      calibration = { overheadTokens: 0, tokensPerWord: a.promptTokens === null ? 1 : a.promptTokens / SHORT_WORDS }
      if (shortPoint !== null) {
        const b = yield* send(SECOND_WORDS, null)
        const badB = failed(b) ?? implausible(SECOND_WORDS, b.promptTokens)
        if (badB !== null) return badB
        if (b.promptTokens !== null) calibration = calibrate(shortPoint, [SECOND_WORDS, b.promptTokens])
      }
    }
    // A calibrated trial on a provider the short request warmed: its first probe is its first full-length request.
    if (spec.known !== null && !spec.fullLength) return { _tag: "Warm", calibration } as const
    const words = wordsForTokens(calibration, spec.targetContext)
    const boundMs = spec.boundMs === null ? null : Math.min(spec.boundMs, spec.timeoutMs)
    const full = yield* Effect.forEach(Array.from({ length: spec.concurrent }), () => send(words, boundMs), {
      concurrency: "unbounded"
    })
    for (const s of full) {
      // A TTFT past the bound (cut before its first token, or later than it) is the gate's call, not a failure.
      if (spec.boundMs !== null && s.failure?._tag === "GateMissed") {
        return {
          _tag: "Failed",
          failure: Verdict.GateMissed({ phase: "pre-warm", gateTtftMs: spec.gateTtftMs, ttftMs: s.ttftMs })
        } as const
      }
      const bad = failed(s) ?? implausible(words, s.promptTokens)
      if (bad !== null) return bad
    }
    const tokens = full[0]?.promptTokens ?? null
    if (spec.known === null && shortPoint !== null && tokens !== null) {
      calibration = calibrate(shortPoint, [words, tokens])
    }
    return { _tag: "Warm", calibration } as const
  })
