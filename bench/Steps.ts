/**
 * The bench's step runner: each step waits for a quiet machine, runs, and is
 * measured (wall time, CPU of other processes and of the bench itself); a step
 * that throws is recorded and its figures become "n/a: <reason>", while the
 * other steps still run.
 */
import * as os from "node:os"
import { startCpuMeter, type StepMeasure, waitForQuiet } from "./Machine.js"

/** A step's outcome: its value, or (it threw) why there is none: "<step>: <first line of the error>". */
export type Outcome<A> = { readonly value: A; readonly reason: null } | { readonly value: null; readonly reason: string }

/**
 * One step's record: wall time (s), other processes' and the bench's own CPU
 * during it (cores), the wait for a quiet machine before it (s; whether it got
 * quiet), the 1-min load average when it began, and why it failed (null when it did not).
 */
export type StepRecord = StepMeasure & {
  readonly step: string
  readonly waitedS: number
  readonly quiet: boolean
  readonly loadavg1: number
  readonly error: string | null
}

/**
 * A step runner. `wait` false (`--no-wait`) skips the waits for a quiet
 * machine. `step(name, f, first)` waits (≤ 300 s and a 1-min load average ≤
 * 1.5 before the first step; ≤ 120 s before later ones, whose load average
 * holds the bench's own previous step), runs `f`, and records it in `steps`.
 */
export const stepRunner = (wait: boolean, log: (line: string) => void) => {
  const steps: Array<StepRecord> = []
  const quietWait = (timeoutS: number, maxLoadavg: number) =>
    wait ? waitForQuiet({ maxCores: 0.3, maxLoadavg, timeoutS }, log) : Promise.resolve({ quiet: true, waitedS: 0 })
  const step = async <A>(name: string, f: () => Promise<A> | A, first = false): Promise<Outcome<A>> => {
    const q = first ? await quietWait(300, 1.5) : await quietWait(120, Infinity)
    const loadavg1 = os.loadavg()[0]!
    log(`bench: ${name}…`)
    const meter = startCpuMeter()
    let out: Outcome<A>
    try {
      out = { value: await f(), reason: null }
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e)
      out = { value: null, reason: `${name}: ${(message.trim().split("\n")[0] ?? "").slice(0, 200) || "failed"}` }
      log(`bench: ${name} FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
    }
    const m = meter.stop()
    steps.push({ step: name, ...m, waitedS: q.waitedS, quiet: q.quiet, loadavg1, error: out.reason })
    log(`bench: ${name}: ${m.seconds.toFixed(1)} s (other processes: ${m.foreignCores.toFixed(2)} cores; the bench itself: ${m.benchCores.toFixed(3)} cores)`)
    return out
  }
  return { step, steps: steps as ReadonlyArray<StepRecord> }
}
