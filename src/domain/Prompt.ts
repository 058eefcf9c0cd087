/**
 * Probe prompts padded to a target context (SPEC P-1). The text is a fixed,
 * deterministic sequence of common English words, so the same word count gives
 * the same prompt on every run; the words-per-token ratio of the provider's
 * tokenizer is measured at pre-warm (see PreWarm.ts) rather than assumed.
 */
import { MAX_TARGET_CONTEXT } from "./Limits.js"

const WORDS = (
  "time person year way day thing man world life hand part child eye woman place work week case point " +
  "government company number group problem fact be have do say get make go know take see come think look " +
  "want give use find tell ask seem feel try leave call good new first last long great little own other " +
  "old right big high different small large next early young important few public bad same able to of in " +
  "for on with at by from up about into over after the and a that I it not he as you this but his they her"
).split(" ")

/**
 * The plausible tokens per word of a tokenizer on this prompt's common English
 * words (about 1–2 in practice; byte-fallback tokenizers a few more). A
 * provider whose reported prompt counts imply a ratio outside this range
 * reports nonsense (0 tokens, a negative count): its trial fails with a
 * reason instead of a prompt sized from it (SPEC P-1).
 */
export const PLAUSIBLE_TOKENS_PER_WORD = { min: 0.2, max: 20 } as const

/** The most words a prompt ever has: the largest target context at the fewest plausible tokens per word. */
export const MAX_PROMPT_WORDS = Math.ceil(MAX_TARGET_CONTEXT / PLAUSIBLE_TOKENS_PER_WORD.min)

/**
 * Whether `tokens` is a prompt-token count a provider could report for a
 * prompt of `words` words: a whole number from `words` × the smallest
 * plausible tokens per word (at least 1) to `words` × the largest plus 4096
 * tokens of chat template (SPEC P-1).
 */
export const plausiblePromptTokens = (words: number, tokens: number): boolean =>
  Number.isSafeInteger(tokens) &&
  tokens >= Math.max(1, Math.floor(words * PLAUSIBLE_TOKENS_PER_WORD.min)) &&
  tokens <= words * PLAUSIBLE_TOKENS_PER_WORD.max + 4096

/**
 * A prompt of exactly `n` words (1 ≤ n ≤ MAX_PROMPT_WORDS; `n` is clamped
 * into that range, so no caller can make it loop or build gigabytes),
 * deterministic for (n, variant). Each
 * `variant` starts at another point of the sequence, so requests that must not
 * share a cached prompt prefix (a server with prompt caching, such as
 * llama-server, would otherwise skip the prefill of a repeated prompt and
 * report a TTFT the operator will never see) differ from their first word.
 */
export const promptOfWords = (n: number, variant = 0): string => {
  const words = Number.isFinite(n) ? Math.min(MAX_PROMPT_WORDS, Math.max(1, Math.floor(n))) : 1
  const out: Array<string> = []
  for (let j = 0; j < words; j++) {
    const i = j + variant * 13
    out.push(WORDS[(i * 7 + Math.floor(i / WORDS.length)) % WORDS.length]!)
  }
  return out.join(" ")
}

/**
 * Linear tokenizer calibration from two pre-warm requests: prompt tokens =
 * overheadTokens + tokensPerWord × words (chat template overhead + text).
 */
export interface Calibration {
  readonly overheadTokens: number
  readonly tokensPerWord: number
}

/** Words needed for a prompt of `targetTokens` under a calibration (1 … MAX_PROMPT_WORDS). */
export const wordsForTokens = (c: Calibration, targetTokens: number): number => {
  const perWord = Math.max(PLAUSIBLE_TOKENS_PER_WORD.min, c.tokensPerWord)
  const words = Math.round((targetTokens - c.overheadTokens) / perWord)
  return Number.isFinite(words) ? Math.min(MAX_PROMPT_WORDS, Math.max(1, words)) : 1
}

/** Calibration from two (words, prompt tokens) points; falls back to 1 token/word when degenerate. */
export const calibrate = (a: readonly [number, number], b: readonly [number, number]): Calibration => {
  const tokensPerWord = (b[1] - a[1]) / (b[0] - a[0])
  if (!Number.isFinite(tokensPerWord) || tokensPerWord <= 0) return { overheadTokens: 0, tokensPerWord: 1 }
  return { overheadTokens: Math.max(0, a[1] - tokensPerWord * a[0]), tokensPerWord }
}

/** SPEC P-1: a probe prompt must be the target context within 5 % (as a fraction). */
export const PROMPT_TOLERANCE = 0.05

/**
 * SPEC F-5: the default reply budget, tokens — room every candidate's and
 * every recipe's context leaves after a target-length prompt, so a production
 * reply is not cut at the probe's length.
 */
export const DEFAULT_REPLY_TOKENS = 1024

/**
 * The context one request occupies, in tokens: its prompt (`contextCap`, the
 * max-context knob or else the target context, plus P-1's 5 % tolerance, so a
 * prompt the tokenizer made slightly longer than the target still fits) and
 * room for its reply (`replyTokens`). What each provider's per-slot context is
 * sized from, as llama.cpp sizes `-c` (issue "llama-server", E-5).
 */
export const requestContextTokens = (contextCap: number, replyTokens: number): number =>
  Math.ceil(contextCap * (1 + PROMPT_TOLERANCE)) + replyTokens
