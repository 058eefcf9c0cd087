/**
 * The quiet-machine guard's meter (SPEC N-3): how much CPU processes other
 * than this tuner and the candidate's process group used over a window.
 */
import { Clock, Effect, Layer } from "effect"
import * as fs from "node:fs"
import { groupMembers, procStat } from "../system/Pids.js"
import { Exec } from "./Exec.js"

/**
 * CPU counters at one moment, all in one unit (Linux: clock ticks; elsewhere
 * ms): `busy` used by every process on the machine, `own` by this tuner (with
 * the children it reaped), `group` by the live members of the measured process
 * group, and `capacity` the wall time one core had (so Δbusy ÷ Δcapacity is
 * cores in use).
 */
export interface CpuSnapshot {
  readonly busy: number
  readonly own: number
  readonly group: number
  readonly capacity: number
}

/**
 * Average cores used by other processes between two snapshots (SPEC N-3):
 * (Δbusy − Δown − Δgroup) ÷ Δcapacity, never below 0; null when no time passed.
 */
export const othersCores = (a: CpuSnapshot, b: CpuSnapshot): number | null => {
  const span = b.capacity - a.capacity
  if (!(span > 0)) return null
  return Math.max(0, (b.busy - a.busy - (b.own - a.own) - (b.group - a.group)) / span)
}

/**
 * Linux, from /proc (proc(5)): the first line of /proc/stat gives every CPU's
 * time by kind; busy = user + nice + system + irq + softirq (guest time is
 * inside user). Idle and iowait are not busy, and steal (a hypervisor running
 * other guests) is left out too: it is not a process on this machine, and a VM
 * with steady steal would otherwise never look quiet. Capacity is the total
 * of every kind ÷ the CPU count. Null without /proc.
 */
const fromProc = (pgid: number | null): CpuSnapshot | null => {
  try {
    const lines = fs.readFileSync("/proc/stat", "utf8").split("\n")
    const cpus = lines.filter((l) => /^cpu\d+ /.test(l)).length
    const f = lines[0]!.trim().split(/\s+/).slice(1).map(Number)
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f
    const self = procStat("self")
    if (cpus === 0 || self === null) return null
    const group = pgid === null ? 0 : groupMembers(pgid).reduce((a, pid) => a + (procStat(pid)?.cpuTicks ?? 0), 0)
    return {
      busy: user + nice + system + irq + softirq,
      own: self.cpuTicks + self.childrenCpuTicks,
      group,
      capacity: (user + nice + system + idle + iowait + irq + softirq + steal) / cpus
    }
  } catch {
    return null
  }
}

/** `ps` TIME (`[[dd-]hh:]mm:ss[.cc]`) in ms; null when unreadable. */
export const psTimeMs = (t: string): number | null => {
  const m = /^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$/.exec(t.trim())
  if (m === null) return null
  const [, d = "0", h = "0", min, s] = m
  return ((Number(d) * 24 + Number(h)) * 60 + Number(min)) * 60_000 + Number(s) * 1000
}

/**
 * macOS (no /proc), from `ps -axo pid=,pgid=,time=` (cumulative CPU time of
 * every live process): busy is their sum, so a process that started and ended
 * inside the window is missed — what ps gives. `nowMs` is the wall clock.
 */
export const fromPsTimes = (text: string, selfPid: number, pgid: number | null, nowMs: number): CpuSnapshot => {
  let busy = 0
  let own = 0
  let group = 0
  for (const line of text.split("\n")) {
    const [pid, pg, time] = line.trim().split(/\s+/)
    const ms = time === undefined ? null : psTimeMs(time)
    if (ms === null) continue
    busy += ms
    if (Number(pid) === selfPid) own += ms
    else if (pgid !== null && Number(pg) === pgid) group += ms
  }
  return { busy, own, group, capacity: nowMs }
}

/**
 * Reads CPU snapshots (SPEC N-3) and waits for a quiet machine. Live: /proc on
 * Linux, `ps` elsewhere; `snapshot` gives null where neither works (the guard
 * is then off: nothing is marked disturbed). Never fails.
 * Tests replace it with `CpuMeter.Stub`.
 */
export class CpuMeter extends Effect.Service<CpuMeter>()("llm-autotune/CpuMeter", {
  effect: Effect.gen(function*() {
    const exec = yield* Exec
    const snapshot = (pgid: number | null): Effect.Effect<CpuSnapshot | null> =>
      process.platform === "linux"
        ? Effect.sync(() => fromProc(pgid))
        : exec.run("ps", ["-axo", "pid=,pgid=,time="], { timeoutMs: 5000 }).pipe(
          Effect.flatMap((r) => Effect.map(Clock.currentTimeMillis, (now) => fromPsTimes(r.stdout, process.pid, pgid, now))),
          Effect.orElseSucceed(() => null)
        )
    return {
      snapshot,
      /**
       * Waits until other processes use at most `maxCores` over a 1 s window,
       * or `maxWaitMs` has passed (on the Effect clock). Returns whether the
       * machine was found quiet (true at once where nothing can be measured).
       */
      awaitQuiet: (maxCores: number, maxWaitMs: number): Effect.Effect<boolean> =>
        Effect.gen(function*() {
          const deadline = (yield* Clock.currentTimeMillis) + maxWaitMs
          while (true) {
            const a = yield* snapshot(null)
            if (a === null) return true
            yield* Effect.sleep("1 second")
            const b = yield* snapshot(null)
            const cores = b === null ? null : othersCores(a, b)
            if (cores === null || cores <= maxCores) return true
            if ((yield* Clock.currentTimeMillis) >= deadline) return false
          }
        })
    }
  }),
  dependencies: [Exec.Default]
}) {
  /**
   * A meter whose measured windows see the background load `load(i)` (cores)
   * for the i-th window (0-based; a window ends at every second snapshot: a
   * trial's full-length pre-warm requests are one when it sends them, its
   * replicates the next), and
   * whose `awaitQuiet` answers at once with `quiet()` (default true), counting
   * its calls in `waits`. For tests of the guard without real load.
   */
  static readonly Stub = (load: (window: number) => number, quiet: () => boolean = () => true, waits: { n: number } = { n: 0 }) => {
    let calls = 0
    let busy = 0
    return Layer.succeed(
      CpuMeter,
      CpuMeter.make({
        snapshot: () =>
          Effect.sync(() => {
            const window = Math.floor(calls / 2)
            calls++
            // The first snapshot of a window opens it; the second adds the window's load.
            if (calls % 2 === 0) busy += 1000 * load(window)
            return { busy, own: 0, group: 0, capacity: calls * 1000 }
          }),
        awaitQuiet: () => Effect.sync(() => (waits.n++, quiet()))
      })
    )
  }
}
