/** `searchCapacity` (src/steps/Capacity.ts, SPEC C-4): doubling, then bisection, over a stand-in measurement. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { MAX_CAPACITY_USERS, searchCapacity } from "../../src/steps/Capacity.js"

/** Searches with users up to `limit` meeting the objective; returns the answer and the users measured, in order. */
const search = (start: number, limit: number, known = false) => {
  const asked: Array<number> = []
  const found = Effect.runSync(searchCapacity(start, (n) => Effect.sync(() => (asked.push(n), n <= limit)), known))
  return { ...found, asked }
}

describe("searchCapacity (SPEC C-4)", () => {
  it("C-4 doubles until the objective fails, then bisects to the largest N met, N + 1 missed", () => {
    expect(search(1, 5)).toEqual({ users: 5, missedAt: 6, capped: false, asked: [1, 2, 4, 8, 6, 5] })
    expect(search(4, 4)).toEqual({ users: 4, missedAt: 5, capped: false, asked: [4, 8, 6, 5] })
    expect(search(3, 100).users).toBe(100)
  })

  it("C-4 a start already measured is not measured again; a first step that misses bisects below it, down to 0 users", () => {
    expect(search(4, 9, true).asked).toEqual([8, 16, 12, 10, 9])
    expect(search(8, 2)).toEqual({ users: 2, missedAt: 3, capped: false, asked: [8, 4, 2, 3] })
    expect(search(1, 0)).toEqual({ users: 0, missedAt: 1, capped: false, asked: [1] })
  })

  it("C-4 the cap is measured itself and stops the search; a start above it starts at it", () => {
    expect(search(100, 10_000)).toEqual({ users: MAX_CAPACITY_USERS, missedAt: null, capped: true, asked: [100, 200, MAX_CAPACITY_USERS] })
    expect(search(1000, 10_000).asked).toEqual([MAX_CAPACITY_USERS])
    expect(search(200, 230)).toMatchObject({ users: 230, missedAt: 231, capped: false })
  })
})
