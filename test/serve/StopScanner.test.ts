import { assert, describe, it } from "@effect/vitest"
import { makeStopScanner } from "../../src/serve/StopScanner.js"

/** Pushes each piece and returns what was emitted per push, the stop flag, and the flush. */
const run = (stops: ReadonlyArray<string>, pieces: ReadonlyArray<string>) => {
  const s = makeStopScanner(stops)
  const emitted: Array<string> = []
  let stopped = false
  for (const p of pieces) {
    const step = s.push(p)
    emitted.push(step.emit)
    if (step.stopped) {
      stopped = true
      break
    }
  }
  return { emitted, stopped, rest: stopped ? "" : s.flush() }
}

describe("StopScanner (E-5 stop strings)", () => {
  it("without stop strings every piece is emitted as is, whitespace included", () => {
    assert.deepStrictEqual(run([], ["a", " ", "\n", "b"]), { emitted: ["a", " ", "\n", "b"], stopped: false, rest: "" })
  })

  it("a stop string inside one piece cuts before it", () => {
    assert.deepStrictEqual(run(["END"], ["ab", "cdENDef"]), { emitted: ["ab", "cd"], stopped: true, rest: "" })
  })

  it("a stop string spanning pieces is never emitted: its prefix is held back", () => {
    assert.deepStrictEqual(run(["END"], ["ab", "cE", "N", "Dxx"]), { emitted: ["ab", "c", "", ""], stopped: true, rest: "" })
  })

  it("a held prefix that does not complete is released, and flushed at the end", () => {
    assert.deepStrictEqual(run(["END"], ["aE", "Nx", "E"]), { emitted: ["a", "ENx", ""], stopped: false, rest: "E" })
  })

  it("the earliest of several stop strings wins", () => {
    assert.deepStrictEqual(run(["zz", "b"], ["azzb"]), { emitted: ["a"], stopped: true, rest: "" })
    assert.deepStrictEqual(run(["zz", "b"], ["abzz"]), { emitted: ["a"], stopped: true, rest: "" })
  })
})
