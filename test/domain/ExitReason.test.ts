import { HelpDoc, ValidationError } from "@effect/cli"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Exit, FiberId } from "effect"
import { AllInfeasible, BudgetExhausted, ProviderConflict, UsageError } from "../../src/domain/AutotuneError.js"
import { exitCode, ExitReason, fromExit } from "../../src/domain/ExitReason.js"

describe("exit_reason mapping (SPEC H-2)", () => {
  it("H-2 success, interruption, usage errors, typed errors and defects each map to one reason", () => {
    expect(fromExit(Exit.void)).toBe("ok")
    expect(fromExit(Exit.failCause(Cause.interrupt(FiberId.none)))).toBe("interrupted")
    expect(fromExit(Exit.fail(ValidationError.invalidValue(HelpDoc.p("bad"))))).toBe("config_error")
    expect(fromExit(Exit.fail(new UsageError({ flag: "x", message: "m" })))).toBe("config_error")
    expect(fromExit(Exit.fail(new AllInfeasible({ message: "m" })))).toBe("all_infeasible")
    expect(fromExit(Exit.fail(new ProviderConflict({ message: "m" })))).toBe("provider_conflict")
    expect(fromExit(Exit.fail(new BudgetExhausted({ budgetMs: 1, message: "m" })))).toBe("budget_exhausted")
    expect(fromExit(Exit.die(new Error("bug")))).toBe("internal_error")
    expect(fromExit(Exit.fail("not a typed error"))).toBe("internal_error")
  })
  it("H-2 the reason set is exactly the SPEC's nine, with 64 for usage and 130 for interrupt", () => {
    expect([...ExitReason.literals].sort()).toEqual([
      "all_infeasible", "apply_failed", "budget_exhausted", "config_error", "internal_error", "interrupted", "ok",
      "pre_warm_integrity_failure", "provider_conflict"
    ])
    expect(exitCode.config_error).toBe(64)
    expect(exitCode.interrupted).toBe(130)
    expect(exitCode.ok).toBe(0)
  })
})
