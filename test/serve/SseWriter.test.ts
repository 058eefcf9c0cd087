/**
 * The SSE writer of a streamed response (issue 14): the first content delta and the events that
 * mark the stream go out at once; later deltas at most once per interval, several to a write.
 * Timers and `performance.now` are vitest's fake ones (the writer is plain Node, not Effect).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest"
import type * as http from "node:http"
import { makeSseWriter } from "../../src/serve/SseWriter.js"

/** A response that records each socket write (the events in it) with the fake time it happened. */
const fakeRes = () => {
  const writes: Array<{ at: number; events: Array<string> }> = []
  const res = {
    destroyed: false,
    writableEnded: false,
    write: (s: string) => {
      writes.push({ at: performance.now(), events: s.split("\n\n").filter((e) => e.length > 0).map((e) => e.replace(/^data: /, "")) })
      return true
    }
  }
  return { res: res as unknown as http.ServerResponse & { destroyed: boolean; writableEnded: boolean }, writes }
}

describe("SseWriter (issue 14: one socket write per token cost 2-thread decode half its speed on 2 cores)", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] })
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it("P-2 the role chunk and the first token go out at once; tokens 2 ms apart are written every 20 ms, each still its own event; the final chunk and [DONE] flush what is held", () => {
    const { res, writes } = fakeRes()
    const sse = makeSseWriter(res, 20)
    sse.event("role")
    vi.advanceTimersByTime(5)
    sse.content("t1", true) // TTFT: never held
    expect(writes.map((w) => w.events)).toEqual([["role"], ["t1"]])
    const t1At = writes[1]!.at
    for (let i = 2; i <= 30; i++) {
      vi.advanceTimersByTime(2)
      sse.content(`t${i}`, true)
    }
    vi.advanceTimersByTime(1)
    sse.event("final")
    sse.event("[DONE]")
    // Every token arrived, in order, once.
    const events = writes.flatMap((w) => w.events)
    expect(events).toEqual(["role", ...Array.from({ length: 30 }, (_, i) => `t${i + 1}`), "final", "[DONE]"])
    // Tokens 2–30 (58 ms of decode) took 2 timed writes, 20 ms apart, and the rest went with the final chunk: 3 writes, not 29.
    const timed = writes.slice(2, -2)
    expect(timed.map((w) => w.at - t1At)).toEqual([20, 40])
    // Tokens at t1 + 2, + 4, … + 18 wait for the write at + 20; the one at + 20 itself comes after it, so it waits for + 40.
    expect(timed.map((w) => w.events)).toEqual([
      Array.from({ length: 9 }, (_, i) => `t${i + 2}`),
      Array.from({ length: 10 }, (_, i) => `t${i + 11}`)
    ])
    expect(writes.at(-2)!.events).toEqual([...Array.from({ length: 10 }, (_, i) => `t${i + 21}`), "final"])
  })

  it("a token slower than the interval is written as it comes; interval 0 writes every token at once", () => {
    const { res, writes } = fakeRes()
    const slow = makeSseWriter(res, 20)
    slow.content("a", true)
    vi.advanceTimersByTime(25)
    slow.content("b", true)
    vi.advanceTimersByTime(30)
    slow.content("c", true)
    expect(writes.map((w) => w.events)).toEqual([["a"], ["b"], ["c"]])
    const { res: res0, writes: writes0 } = fakeRes()
    const each = makeSseWriter(res0, 0)
    for (const t of ["x", "y", "z"]) each.content(t, true)
    expect(writes0.map((w) => w.events)).toEqual([["x"], ["y"], ["z"]])
  })

  it("P-2 an empty delta (text the engine holds back) is not the first token: the first with text still goes out at once, with it", () => {
    // The role chunk, an empty delta `prefillMs` later, the first text 2 ms after it: the writes, timed from the first.
    const emptyThenFirst = (prefillMs: number) => {
      const { res, writes } = fakeRes()
      const sse = makeSseWriter(res, 20)
      sse.event("role")
      vi.advanceTimersByTime(prefillMs)
      sse.content("empty", false)
      vi.advanceTimersByTime(2)
      sse.content("first", true)
      return writes.map((w) => [w.at - writes[0]!.at, w.events])
    }
    expect(emptyThenFirst(1)).toEqual([[0, ["role"]], [3, ["empty", "first"]]])
    // The usual case: a prefill longer than the interval, so the empty delta goes out at once; the first text still does.
    expect(emptyThenFirst(25)).toEqual([[0, ["role"]], [25, ["empty"]], [27, ["first"]]])
  })

  it("flush at the end of generation writes the held tokens at once, and nothing is written after [DONE]", () => {
    const { res, writes } = fakeRes()
    const sse = makeSseWriter(res, 20)
    sse.content("a", true)
    vi.advanceTimersByTime(2)
    sse.content("b", true) // held until + 20
    vi.advanceTimersByTime(3)
    sse.flush() // generation ended at + 5: b goes now, not at + 20
    expect(writes.map((w) => [w.at, w.events])).toEqual([[0, ["a"]], [5, ["b"]]])
    sse.event("[DONE]")
    // A token held when the response has ended (a caller's mistake) is never written after it.
    vi.advanceTimersByTime(1)
    sse.content("late", true)
    res.writableEnded = true
    vi.advanceTimersByTime(100)
    expect(writes.map((w) => w.events)).toEqual([["a"], ["b"], ["[DONE]"]])
  })

  it("nothing is written to a socket that is gone, and a held token's timer then writes nothing", () => {
    const { res, writes } = fakeRes()
    const sse = makeSseWriter(res, 20)
    sse.content("a", true)
    sse.content("b", true) // held
    res.destroyed = true
    vi.advanceTimersByTime(50)
    expect(writes.map((w) => w.events)).toEqual([["a"]])
  })
})
