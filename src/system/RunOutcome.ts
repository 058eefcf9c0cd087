/**
 * The exit reason a tune recorded in its run row (SPEC H-1, H-2), kept for
 * the process's exit code: once a run is recorded, a Ctrl-C that lands while
 * it cleans up (a drained provider being restored, locks released) must not
 * turn a recorded `ok` into exit 130. Process-wide on purpose: cli/RunProcess.ts
 * reads it after the program ended.
 */
import type { ExitReason } from "../domain/ExitReason.js"

let recorded: ExitReason | null = null

/** Notes the exit reason the run row now says. */
export const noteRecorded = (reason: ExitReason): void => {
  recorded = reason
}

/** The exit reason the last recorded run ended with, or null when no run was recorded. */
export const recordedExitReason = (): ExitReason | null => recorded
