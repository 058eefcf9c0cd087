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

/** Words of the first, short pre-warm request: one calibration point. */
const SHORT_WORDS = 16

/** Pre-warm outcome: a calibration on success, else how the request failed (phase `pre-warm`). */
export type PreWarmResult =
  | { readonly _tag: "Warm"; readonly calibration: Calibration }
  | { readonly _tag: "Failed"; readonly failure: ProbeFailure }

/** What a pre-warm needs. Units: tokens, ms. */
export interface PreWarmSpec {
  readonly targetContext: number
  /** Requests decoded in parallel by the provider (the max-batch knob; 1 when unset). */
  readonly concurrent: number
  /** Bound of each request (not the TTFT gate: first-load time is excluded from it, D-1). */
  readonly timeoutMs: number
  /** Calibration of the same model from an earlier trial, if any. */
  readonly known: Calibration | null
}

const failed = (s: ProbeSample): PreWarmResult | null =>
  s.failure !== null && s.ttftMs === null ? { _tag: "Failed", failure: inPreWarm(s.failure) } : null

/**
 * Pre-warms a started provider (SPEC D-1) so first-use costs stay out of the
 * measurement: the start loaded the model, and here requests with 1 reply token
 * run its first inference at the full target context, `concurrent` at once
 * (measured: the first 2048-token prefill of a fresh 130M context took 6.8 s,
 * the next 2.0 s; short requests alone did not warm it).
 *
 * Without a `known` calibration, a short request (16 words) comes first; its
 * `usage.prompt_tokens` sizes the full-length request, and the two points
 * calibrate words → tokens for this provider's tokenizer and template (SPEC P-1).
 * A prompt-token count no tokenizer gives (0, negative, absurd: see
 * `plausiblePromptTokens`) fails the pre-warm with that reason instead of
 * sizing a prompt from it. Never fails: a failed request is a `Failed` result
 * with its failure.
 */
export const preWarm = (
  server: RunningServer,
  spec: PreWarmSpec
): Effect.Effect<PreWarmResult, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const send = (words: number) =>
      probeOnce(server, {
        prompt: promptOfWords(words),
        maxTokens: 1,
        gateTtftMs: spec.timeoutMs,
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
    let calibration = spec.known
    let shortPoint: readonly [number, number] | null = null
    if (calibration === null) {
      const a = yield* send(SHORT_WORDS)
      const bad = failed(a) ?? implausible(SHORT_WORDS, a.promptTokens)
      if (bad !== null) return bad
      // First guess: all of the short prompt's tokens were text (overhead ignored).
      calibration = { overheadTokens: 0, tokensPerWord: a.promptTokens === null ? 1 : a.promptTokens / SHORT_WORDS }
      if (a.promptTokens !== null) shortPoint = [SHORT_WORDS, a.promptTokens]
    }
    const words = wordsForTokens(calibration, spec.targetContext)
    const full = yield* Effect.forEach(Array.from({ length: spec.concurrent }), () => send(words), {
      concurrency: "unbounded"
    })
    for (const s of full) {
      const bad = failed(s) ?? implausible(words, s.promptTokens)
      if (bad !== null) return bad
    }
    const tokens = full[0]?.promptTokens ?? null
    if (spec.known === null && shortPoint !== null && tokens !== null) {
      calibration = calibrate(shortPoint, [words, tokens])
    }
    return { _tag: "Warm", calibration } as const
  })
