import { describe, expect, it } from "vitest"
import { LADDER, ladderOf, rungPath } from "../../src/gguf/DemoLadder.js"

describe("the demo ladder (SPEC A-1, R-2)", () => {
  const dir = "/cache/models"
  const paths = (labels: ReadonlyArray<string>) => labels.map((l) => `${dir}/synth-${l}-q4_0.gguf`)

  it("A-1 is largest first: 3B, 42M, 15M (issue 14: the 1.1B came within 15 % of the demo's gate), written under the cache as synth-<label>-q4_0.gguf", () => {
    expect(LADDER.map((r) => r.label)).toEqual(["3B", "42M", "15M"])
    expect(LADDER.map((r) => r.params)).toEqual([...LADDER.map((r) => r.params)].sort((a, b) => b - a))
    expect(LADDER.map((r) => rungPath(dir, r))).toEqual(paths(["3b", "42m", "15m"]))
  })

  it("R-2 a resumed demo run made with the earlier ladder (1.1B top rung) is recognised, so its own files are written where missing; otherwise that list, another order or another directory is not a ladder", () => {
    for (const earlier of [false, true]) expect(ladderOf(paths(["3b", "42m", "15m"]), dir, earlier)).toBe(LADDER)
    expect(ladderOf(paths(["1.1b", "42m", "15m"]), dir, true)?.map((r) => [r.label, r.params])).toEqual([["1.1B", 1.1e9], ["42M", 42e6], ["15M", 15e6]])
    expect(ladderOf(paths(["1.1b", "42m", "15m"]), dir, false)).toBeNull()
    expect(ladderOf(paths(["42m", "3b", "15m"]), dir, true)).toBeNull()
    expect(ladderOf(paths(["3b", "42m"]), dir, true)).toBeNull()
    expect(ladderOf(paths(["3b", "42m", "15m"]), "/elsewhere", true)).toBeNull()
  })
})
