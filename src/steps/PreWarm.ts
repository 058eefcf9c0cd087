import type { HttpClient } from "@effect/platform"
import { Effect } from "effect"
import type { RunningServer } from "../domain/RunningServer.js"
import { probeOnce } from "./Probe.js"
import { type Calibration, calibrate, promptOfWords } from "./Prompt.js"

/** Pre-warm prompt sizes, in words: two short points for the tokenizer calibration. */
const SHORT_WORDS = 16
const LONG_WORDS = 64

/** Pre-warm outcome: a calibration on success, else the reason the provider failed. */
export type PreWarmResult =
  | { readonly _tag: "Warm"; readonly calibration: Calibration }
  | { readonly _tag: "Failed"; readonly reason: string }

/**
 * Pre-warms a started provider (SPEC D-1): the model is loaded by the start, and
 * two short requests (16 and 64 words, 1 reply token) run its first inference
 * outside any measurement, so first-load time never counts against the TTFT gate.
 * Their `usage.prompt_tokens` calibrate words → tokens for this provider's
 * tokenizer and chat template (SPEC P-1). With `known` (same model already
 * calibrated) a single request warms it. `timeoutMs` bounds each request.
 * Never fails: a failed request is a `Failed` result with its reason.
 */
export const preWarm = (
  server: RunningServer,
  timeoutMs: number,
  known: Calibration | null
): Effect.Effect<PreWarmResult, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const send = (words: number) =>
      probeOnce(server, { prompt: promptOfWords(words), maxTokens: 1, gateTtftMs: timeoutMs, requestTimeoutMs: timeoutMs })
    const a = yield* send(SHORT_WORDS)
    if (a.reason !== null && a.ttftMs === null) return { _tag: "Failed", reason: `pre-warm: ${a.reason}` } as const
    if (known !== null) return { _tag: "Warm", calibration: known } as const
    const b = yield* send(LONG_WORDS)
    if (b.reason !== null && b.ttftMs === null) return { _tag: "Failed", reason: `pre-warm: ${b.reason}` } as const
    const calibration = a.promptTokens !== null && b.promptTokens !== null
      ? calibrate([SHORT_WORDS, a.promptTokens], [LONG_WORDS, b.promptTokens])
      : { overheadTokens: 0, tokensPerWord: 1 }
    return { _tag: "Warm", calibration } as const
  })
