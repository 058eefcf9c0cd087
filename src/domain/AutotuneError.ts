/** The typed, expected failures of llm-autotune; each maps to one exit_reason (SPEC H-2). */
import { Schema } from "effect"

/**
 * Typed, expected failures of llm-autotune. Each one maps to exactly one
 * `exit_reason` in `ExitReason.ts` (SPEC H-2); bugs stay defects.
 */

/** A flag or argument is malformed (SPEC B-1): exit 64, `config_error`. `flag` names the input. */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", {
  flag: Schema.String,
  message: Schema.String
}) {}

/** Every Stage 1 candidate was infeasible (SPEC A-4). `message` leads with the smallest candidate. */
export class AllInfeasible extends Schema.TaggedError<AllInfeasible>()("AllInfeasible", {
  message: Schema.String
}) {}

/** A pre-warm failure classified as an integrity failure aborts the run (SPEC D-2). */
export class PreWarmIntegrityFailure extends Schema.TaggedError<PreWarmIntegrityFailure>()(
  "PreWarmIntegrityFailure",
  { model: Schema.String, message: Schema.String }
) {}

/** Another provider is running and no drain was asked for (SPEC E-1). */
export class ProviderConflict extends Schema.TaggedError<ProviderConflict>()("ProviderConflict", {
  message: Schema.String
}) {}

/**
 * Another live `autotune tune` holds a run lock on the same database or
 * provider (issue "one run at a time"; `system/RunLock.ts`). exit_reason
 * `provider_conflict` (SPEC H-2 has no closer reason), but exit code 75,
 * EX_TEMPFAIL (sysexits.h): retrying later can succeed. `holderPid` is the
 * pid recorded in the lock file at `lockPath`; `message` names both.
 */
export class RunLocked extends Schema.TaggedError<RunLocked>()("RunLocked", {
  holderPid: Schema.Number,
  lockPath: Schema.String,
  message: Schema.String
}) {}

/** The `--max-duration` budget ran out (SPEC H-3). */
export class BudgetExhausted extends Schema.TaggedError<BudgetExhausted>()("BudgetExhausted", {
  budgetMs: Schema.Number,
  message: Schema.String
}) {}

/** Writing the provider config failed; the original is untouched (SPEC F-3). */
export class ApplyFailed extends Schema.TaggedError<ApplyFailed>()("ApplyFailed", {
  message: Schema.String
}) {}

/** The SQLite trial store failed (open, migrate, insert). */
export class StoreFailed extends Schema.TaggedError<StoreFailed>()("StoreFailed", {
  message: Schema.String
}) {}

/**
 * A candidate provider could not be started or never became ready (SPEC E-4).
 * Inside a trial this is caught and recorded as an infeasible reason; it only
 * escapes when no trial can hold it.
 */
export class ProviderStartFailed extends Schema.TaggedError<ProviderStartFailed>()("ProviderStartFailed", {
  model: Schema.String,
  message: Schema.String,
  exitCode: Schema.NullOr(Schema.Number),
  stderrTail: Schema.String
}) {}

/** The embedded provider (`autotune serve`) could not load its model or bind its port. */
export class ServeFailed extends Schema.TaggedError<ServeFailed>()("ServeFailed", {
  message: Schema.String
}) {}

/** `autotune synth` could not write the synthetic GGUF file. */
export class SynthFailed extends Schema.TaggedError<SynthFailed>()("SynthFailed", {
  message: Schema.String
}) {}

/**
 * `autotune verify` (SPEC R-3): the recipe no longer holds — `regressed`
 * (exit 1: a figure moved out of its recorded interval, or the model, provider
 * or machine is not the one measured) or `infeasible` (exit 2: it fails the
 * gate now, or its model is gone). Verify records no run; its exit codes are
 * decided in `exitCodeOf`.
 */
export class RecipeMiss extends Schema.TaggedError<RecipeMiss>()("RecipeMiss", {
  verdict: Schema.Literal("regressed", "infeasible"),
  message: Schema.String
}) {}

/** Every expected failure of the CLI, as one schema (used for the exhaustive exit mapping). */
export const AutotuneError = Schema.Union(
  UsageError,
  AllInfeasible,
  PreWarmIntegrityFailure,
  ProviderConflict,
  RunLocked,
  BudgetExhausted,
  ApplyFailed,
  StoreFailed,
  ProviderStartFailed,
  ServeFailed,
  SynthFailed,
  RecipeMiss
)
export type AutotuneError = typeof AutotuneError.Type
