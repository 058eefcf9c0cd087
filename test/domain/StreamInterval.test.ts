import { describe, expect, it } from "vitest"
import { DEFAULT_STREAM_INTERVAL_MS, streamIntervalForItl } from "../../src/domain/StreamInterval.js"

describe("the embedded provider's stream interval under an ITL objective (SPEC C-1, E-5)", () => {
  it("C-1 E-5 issue 14 an ITL objective under twice the default interval gets half of it, rounded down; none or a looser one keeps the default", () => {
    expect(DEFAULT_STREAM_INTERVAL_MS).toBe(20)
    expect(streamIntervalForItl(null)).toBeNull()
    expect(streamIntervalForItl(40)).toBeNull()
    expect(streamIntervalForItl(250)).toBeNull()
    expect(streamIntervalForItl(39.9)).toBe(19)
    expect(streamIntervalForItl(25)).toBe(12)
    expect(streamIntervalForItl(1)).toBe(0)
    expect(streamIntervalForItl(0.01)).toBe(0)
    expect(streamIntervalForItl(Number.NaN)).toBeNull()
  })
})
