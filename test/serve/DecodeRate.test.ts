/**
 * The decode rate the embedded provider reports (`predicted_per_second`, src/serve/Engine.ts) and bench
 * figure 8's loop computes: tokens after the first over the time from the first to the last.
 */
import { describe, expect, it } from "@effect/vitest"
import { decodeTokensPerSecond } from "../../src/serve/Engine.js"

describe("decodeTokensPerSecond (the provider's predicted_per_second)", () => {
  it("issue 14 counts the tokens after the first (prefill's) over the time from the first to the last", () => {
    // 65 tokens, the first at 100 ms, the last at 164 ms: 64 decoded in 64 ms = 1000 tok/s.
    expect(decodeTokensPerSecond(65, 100, 164)).toBe(1000)
  })
  it("issue 14 is 0 with fewer than two tokens or no time between them", () => {
    expect(decodeTokensPerSecond(1, 100, 100)).toBe(0)
    expect(decodeTokensPerSecond(0, 0, 0)).toBe(0)
    expect(decodeTokensPerSecond(3, 50, 50)).toBe(0)
  })
})
