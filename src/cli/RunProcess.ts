/**
 * Runs a command's Effect as the process: logs to stderr (stdout carries results only), prints a
 * failure once, and turns the Exit into the exit code of its exit_reason (SPEC H-2; 130 on
 * interrupt, STYLE pitfall 1; 75 for a run lock held by another run, `exitCodeOf`). Shared by the
 * process entries bin.ts (every command) and serveBin.ts (`serve` alone).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, type Layer, Logger, Schema } from "effect"
import { AutotuneError } from "../domain/AutotuneError.js"
import { exitCodeAfter } from "../domain/ExitReason.js"
import { recordedExitReason } from "../system/RunOutcome.js"
import { plainWhereNotShown } from "./PlainText.js"

const isAutotuneError = Schema.is(AutotuneError)

/**
 * Runs `program` with `layer` as the process's main fiber; never returns (the process exits with
 * the code of the program's exit_reason). A typed error is printed by its message (@effect/cli
 * ValidationErrors were already printed by @effect/cli), a defect in full.
 */
export const runAsProcess = <E, R>(program: Effect.Effect<void, E, R>, layer: Layer.Layer<R>): void =>
  program.pipe(
    Effect.tapErrorCause((cause) =>
      Cause.isInterruptedOnly(cause) ? Effect.void : Cause.failureOption(cause).pipe(
        (o) => o._tag === "Some"
          ? (isAutotuneError(o.value) ? Console.error(`autotune: ${o.value.message}`) : Effect.void)
          : Console.error(`autotune: internal error\n${Cause.pretty(cause)}`))),
    Effect.provide([layer, Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true, colors: false }))]),
    // @effect/cli styles its help whatever the output: every Console write is plain where no terminal shows it (PlainText.ts).
    (self) => Effect.consoleWith((console) => Effect.withConsole(self, plainWhereNotShown(console))),
    NodeRuntime.runMain({
      disablePrettyLogger: true,
      disableErrorReporting: true,
      // A Ctrl-C after a run was recorded (during its clean-up) keeps the recorded outcome's code.
      teardown: (exit, onExit) => onExit(exitCodeAfter(exit, recordedExitReason()))
    })
  )
