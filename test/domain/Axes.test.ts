import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { cells, parseKvBitsAxis, parseMaxBatchAxis, parseMaxContextAxis, parseThreadsAxis } from "../../src/domain/Axes.js"

const err = <A, E extends { message: string; flag: string }>(e: Effect.Effect<A, E>) =>
  Effect.runSync(Effect.either(e)).pipe(Either.match({ onLeft: (x) => x, onRight: () => null }))

describe("strict axis parsing (SPEC B-1)", () => {
  it("B-1 --max-context-axis: empty cell names the flag and stray commas", () => {
    const e = err(parseMaxContextAxis("4000,,8000", 2000))
    expect(e?.flag).toBe("max-context-axis")
    expect(e?.message).toContain("empty cell")
    expect(e?.message).toContain("stray commas")
    expect(err(parseMaxContextAxis("4000,", 2000))?.message).toContain("empty cell")
  })
  it("B-1 --max-context-axis: cells sorted ascending, below-target, duplicates and non-integers rejected", () => {
    expect(Effect.runSync(parseMaxContextAxis("8000,4000", 2000))).toEqual([4000, 8000])
    expect(Effect.runSync(parseMaxContextAxis("", 2000))).toEqual([2000])
    expect(err(parseMaxContextAxis("1000,4000", 2000))?.message).toContain("below --target-context")
    expect(err(parseMaxContextAxis("4000,4000", 2000))?.message).toContain("duplicate")
    expect(err(parseMaxContextAxis("4k", 2000))?.message).toContain("bad cell")
    expect(err(parseMaxContextAxis("4000.5", 2000))?.message).toContain("bad cell")
    expect(err(parseMaxContextAxis("-4000", 2000))?.message).toContain("bad cell")
  })
  it("B-1 --kv-bits-axis accepts 4, 8, unset only", () => {
    expect(Effect.runSync(parseKvBitsAxis("unset,8,4"))).toEqual([null, 8, 4])
    expect(err(parseKvBitsAxis("16"))?.flag).toBe("kv-bits-axis")
    expect(err(parseKvBitsAxis("8,8"))?.message).toContain("duplicate")
  })
  it("B-1 --max-batch-axis and --threads-axis take positive integers; 0 is rejected", () => {
    expect(Effect.runSync(parseMaxBatchAxis("1,2"))).toEqual([1, 2])
    expect(err(parseMaxBatchAxis("0"))?.flag).toBe("max-batch-axis")
    expect(err(parseThreadsAxis("2,,4"))?.flag).toBe("threads-axis")
  })
  it("B-2 cells are the Cartesian product in axis order", () => {
    const cs = cells({ kvBits: [null, 8], maxContext: [512], maxBatch: [1, 2], threads: [2] })
    expect(cs.map((c) => [c.kvBits, c.maxContext, c.maxBatch, c.threads])).toEqual([
      [null, 512, 1, 2],
      [null, 512, 2, 2],
      [8, 512, 1, 2],
      [8, 512, 2, 2]
    ])
  })

  it("B-2 issue 17 part 3: flash attention, ubatch and batch come last; kv-bits with flash attention off and ubatch above batch are left out", () => {
    const cs = cells({ kvBits: [null, 8], maxContext: [512], maxBatch: [2], threads: [2], flashAttn: [true, false], ubatch: [128, 1024], batch: [512] })
    expect(cs.map((c) => [c.kvBits, c.flashAttn, c.ubatch, c.batch])).toEqual([
      [null, true, 128, 512],
      [null, false, 128, 512],
      [8, true, 128, 512]
    ])
    // Not searched: null, and the cells are exactly those of before.
    expect(cells({ kvBits: [null], maxContext: [512], maxBatch: [1], threads: [] }).map((c) => [c.flashAttn, c.ubatch, c.batch])).toEqual([
      [null, null, null]
    ])
  })
})
