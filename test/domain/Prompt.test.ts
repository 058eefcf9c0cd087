import { describe, expect, it } from "@effect/vitest"
import { paramCountFromId, parseParamCount } from "../../src/gguf/ParamCount.js"
import { Option } from "effect"
import { calibrate, MAX_PROMPT_WORDS, plausiblePromptTokens, promptOfWords, wordsForTokens } from "../../src/domain/Prompt.js"

describe("probe prompt padding (SPEC P-1)", () => {
  it("P-1 a prompt of n words has exactly n words and is the same every time", () => {
    expect(promptOfWords(500).split(" ")).toHaveLength(500)
    expect(promptOfWords(37)).toBe(promptOfWords(37))
  })
  it("P-1 two pre-warm points calibrate template overhead and tokens per word", () => {
    // 16 words → 37 tokens, 64 words → 117 tokens: 5/3 tokens per word, 10.33 overhead
    const c = calibrate([16, 37], [64, 117])
    expect(c.tokensPerWord).toBeCloseTo(5 / 3)
    expect(c.overheadTokens).toBeCloseTo(37 - 16 * (5 / 3))
    const words = wordsForTokens(c, 512)
    expect(Math.abs(c.overheadTokens + c.tokensPerWord * words - 512)).toBeLessThan(2)
  })
  it("P-1 a degenerate calibration falls back to one token per word", () => {
    expect(calibrate([16, 20], [64, 20])).toEqual({ overheadTokens: 0, tokensPerWord: 1 })
    expect(wordsForTokens({ overheadTokens: 0, tokensPerWord: 1 }, 0)).toBe(1)
  })
})

describe("bounded prompts (SPEC P-1; issue: lifecycle round 2, item 3)", () => {
  it("P-1 a calibration from nonsense counts (0 or negative tokens per word) never sizes an endless prompt", () => {
    const words = wordsForTokens({ overheadTokens: 0, tokensPerWord: 0 }, 2048)
    expect(Number.isFinite(words)).toBe(true)
    expect(words).toBeLessThanOrEqual(MAX_PROMPT_WORDS)
    expect(wordsForTokens({ overheadTokens: 0, tokensPerWord: -3 }, 2048)).toBeLessThanOrEqual(MAX_PROMPT_WORDS)
    expect(promptOfWords(Infinity).split(" ").length).toBe(1)
    expect(promptOfWords(MAX_PROMPT_WORDS * 10).split(" ").length).toBe(MAX_PROMPT_WORDS)
  })
  it("P-1 a prompt-token count is plausible only as a whole number from 1 to 20 per word plus a template", () => {
    expect(plausiblePromptTokens(16, 21)).toBe(true)
    expect(plausiblePromptTokens(16, 0)).toBe(false)
    expect(plausiblePromptTokens(16, -5)).toBe(false)
    expect(plausiblePromptTokens(16, 2.5)).toBe(false)
    expect(plausiblePromptTokens(16, 16 * 20 + 4096 + 1)).toBe(false)
  })
})

describe("parameter size from an id (SPEC A-4)", () => {
  it("A-4 reads a \\d+(\\.\\d+)?[BbMm] token from ids and file names", () => {
    expect(paramCountFromId("mlx-community/Llama-3.2-1B-Instruct-4bit")).toEqual(Option.some(1e9))
    expect(paramCountFromId("synth-130m-q4_0.gguf")).toEqual(Option.some(130e6))
    expect(paramCountFromId("Qwen2.5-0.5B")).toEqual(Option.some(5e8))
    expect(paramCountFromId("phi-3.5-mini-4bit")).toEqual(Option.none())
    expect(parseParamCount("1.1B")).toEqual(Option.some(1.1e9))
    expect(parseParamCount("0M")).toEqual(Option.none())
  })
})
