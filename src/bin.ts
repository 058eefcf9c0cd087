/**
 * Process entry of `autotune`: provides the live services once (Live.ts `AutotuneLive`), logs to
 * stderr (stdout carries results only) and turns the program's Exit into the
 * exit code of its exit_reason (SPEC H-2; 130 on interrupt, STYLE pitfall 1;
 * 75 for a run lock held by another run, `exitCodeOf`).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, Logger, Schema } from "effect"
import { run } from "./Cli.js"
import { AutotuneError } from "./domain/AutotuneError.js"
import { exitCodeAfter } from "./domain/ExitReason.js"
import { AutotuneLive } from "./Live.js"
import { recordedExitReason } from "./system/RunOutcome.js"

const isAutotuneError = Schema.is(AutotuneError)

run(process.argv).pipe(
  // One place prints a failure, to stderr: a typed error by its message (CLI
  // ValidationErrors were already printed by @effect/cli), a defect in full.
  Effect.tapErrorCause((cause) =>
    Cause.isInterruptedOnly(cause) ? Effect.void : Cause.failureOption(cause).pipe(
      (o) => o._tag === "Some"
        ? (isAutotuneError(o.value) ? Console.error(`autotune: ${o.value.message}`) : Effect.void)
        : Console.error(`autotune: internal error\n${Cause.pretty(cause)}`))),
  Effect.provide([
    AutotuneLive,
    Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true, colors: false }))
  ]),
  NodeRuntime.runMain({
    disablePrettyLogger: true,
    disableErrorReporting: true,
    // A Ctrl-C after a run was recorded (during its clean-up) keeps the recorded outcome's code.
    teardown: (exit, onExit) => onExit(exitCodeAfter(exit, recordedExitReason()))
  })
)
