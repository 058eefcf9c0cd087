/**
 * The quiet-machine guard (SPEC N-3): a trial measured while other processes
 * used more than `--max-background-cores` is disturbed, and measured again
 * once the machine is quiet.
 */
import { Console, Effect } from "effect"
import type { TrialOutcome } from "../domain/Trial.js"
import { CpuMeter } from "../services/CpuMeter.js"

/** SPEC N-3: how many times a disturbed trial is measured again (its first run not counted). */
export const DISTURBED_RERUNS = 2

/** How long a re-run waits for a quiet machine before it runs anyway, ms. */
export const QUIET_WAIT_MS = 60_000

/**
 * Runs `trial`; while its outcome is disturbed (N-3) and fewer than
 * DISTURBED_RERUNS re-runs were made, hands the disturbed outcome to
 * `superseded` (the caller records it: every trial is a row, S-1), waits up to
 * QUIET_WAIT_MS for the machine to be quiet (`CpuMeter.awaitQuiet`, 1 s
 * windows at `maxBackgroundCores`) and runs it again. Returns the last
 * outcome, which is still disturbed when the machine never got quiet (the
 * recommendation then says it rests on a disturbed trial). With the guard off
 * (`maxBackgroundCores` null) nothing is ever disturbed. When the re-run
 * will be replayed from a resumed run's ledger (SPEC R-2, `replayedNext`),
 * nothing waits: the parent made and kept it.
 */
export const measureQuietly = <E, R, E2, R2>(
  trial: Effect.Effect<TrialOutcome, E, R>,
  maxBackgroundCores: number | null,
  superseded: (o: TrialOutcome) => Effect.Effect<void, E2, R2>,
  replayedNext: () => boolean = () => false
): Effect.Effect<TrialOutcome, E | E2, R | R2 | CpuMeter> =>
  Effect.gen(function*() {
    let outcome = yield* trial
    for (let rerun = 1; maxBackgroundCores !== null && outcome.background?.disturbed === true && rerun <= DISTURBED_RERUNS; rerun++) {
      yield* superseded(outcome)
      if (!replayedNext()) {
        yield* Console.error(
          `autotune: other processes used ${outcome.background.othersCores.toFixed(2)} cores during that trial (over --max-background-cores ${maxBackgroundCores}): disturbed; waiting for a quiet machine, then measuring it again (${rerun}/${DISTURBED_RERUNS})`
        )
        const quiet = yield* (yield* CpuMeter).awaitQuiet(maxBackgroundCores, QUIET_WAIT_MS)
        if (!quiet) yield* Console.error(`autotune: the machine stayed busy for ${QUIET_WAIT_MS / 1000} s; measuring anyway`)
      }
      // A re-run a resumed run's parent made is replayed: no wait for a machine it does not measure.
      outcome = yield* trial
    }
    return outcome
  })
