/** exit_reason and exit codes (SPEC H-2): the one place a typed error becomes them. */
import { ValidationError } from "@effect/cli"
import { Cause, Exit, Option, Schema } from "effect"
import { AutotuneError, RecipeMiss, RunLocked } from "./AutotuneError.js"

/** The closed set of run outcomes (SPEC H-2). */
export const ExitReason = Schema.Literal(
  "ok",
  "all_infeasible",
  "budget_exhausted",
  "interrupted",
  "provider_conflict",
  "pre_warm_integrity_failure",
  "config_error",
  "apply_failed",
  "internal_error"
)
export type ExitReason = typeof ExitReason.Type

/** The one place a typed error becomes an exit_reason (SPEC H-2): an unmapped tag does not compile. */
const byTag: { readonly [K in AutotuneError["_tag"]]: ExitReason } = {
  UsageError: "config_error",
  AllInfeasible: "all_infeasible",
  PreWarmIntegrityFailure: "pre_warm_integrity_failure",
  ProviderConflict: "provider_conflict",
  RunLocked: "provider_conflict",
  BudgetExhausted: "budget_exhausted",
  ApplyFailed: "apply_failed",
  StoreFailed: "internal_error",
  ProviderStartFailed: "internal_error",
  ServeFailed: "internal_error",
  SynthFailed: "internal_error",
  // verify records no run row; the run outcome nearest "the recipe no longer holds" (exit codes: exitCodeOf).
  RecipeMiss: "all_infeasible"
}

const isAutotuneError = Schema.is(AutotuneError)

/** exit_reason of a typed error (SPEC H-2). */
export const fromError = (e: AutotuneError): ExitReason => byTag[e._tag]

/**
 * exit_reason of a finished program: success is `ok`, interruption alone is
 * `interrupted`, a CLI ValidationError is `config_error`, a typed error maps by
 * tag, anything else (a defect) is `internal_error`.
 */
export const fromExit = (exit: Exit.Exit<unknown, unknown>): ExitReason =>
  Exit.isSuccess(exit)
    ? "ok"
    : Cause.isInterruptedOnly(exit.cause)
    ? "interrupted"
    : Option.match(Cause.failureOption(exit.cause), {
      onNone: () => "internal_error",
      onSome: (e): ExitReason =>
        ValidationError.isValidationError(e)
          ? "config_error"
          : isAutotuneError(e)
          ? byTag[e._tag]
          : "internal_error"
    })

/** Process exit code per exit_reason: 64 is EX_USAGE (sysexits.h), 130 is 128+SIGINT. */
export const exitCode: { readonly [K in ExitReason]: number } = {
  ok: 0,
  internal_error: 1,
  all_infeasible: 2,
  budget_exhausted: 3,
  provider_conflict: 4,
  pre_warm_integrity_failure: 5,
  apply_failed: 6,
  config_error: 64,
  interrupted: 130
}

/** EX_TEMPFAIL (sysexits.h): a temporary failure, the operator is invited to retry. */
const EX_TEMPFAIL = 75

/**
 * Process exit code of a finished program: `exitCode[fromExit(exit)]`, except
 * a RunLocked failure (another run holds the database or provider lock), which
 * keeps exit_reason `provider_conflict` (SPEC H-2 allows only nine reasons) but
 * exits 75, EX_TEMPFAIL (sysexits.h), because waiting for the other run and
 * retrying can succeed; and `verify`'s RecipeMiss, which exits 1 (regressed)
 * or 2 (infeasible now) as SPEC R-3 says. The exit code is decided here and nowhere else.
 */
export const exitCodeOf = (exit: Exit.Exit<unknown, unknown>): number => {
  const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
  if (Option.exists(failure, Schema.is(RunLocked))) return EX_TEMPFAIL
  const miss = Option.filter(failure, Schema.is(RecipeMiss))
  // SPEC R-3: verify exits 1 when the recipe regressed, 2 when it is infeasible now.
  if (Option.isSome(miss)) return miss.value.verdict === "regressed" ? 1 : 2
  return exitCode[fromExit(exit)]
}

/**
 * The process exit code of a program that may have recorded a run (SPEC
 * H-2): `exitCodeOf(exit)`, except that a program interrupted after its run
 * was recorded exits with the code of what the run row says (`recorded`): the
 * outcome was decided before the interrupt, which only cut the clean-up short.
 */
export const exitCodeAfter = (exit: Exit.Exit<unknown, unknown>, recorded: ExitReason | null): number =>
  recorded !== null && Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) ? exitCode[recorded] : exitCodeOf(exit)
