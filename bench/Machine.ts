/**
 * The machine a bench ran on, and how busy other work kept it.
 *
 * Disturbance is measured, not guessed: over an interval, the machine's busy
 * CPU time (`/proc/stat`) less the CPU time of the bench's own process tree
 * (this process and every process below it: the tuner, providers, shims,
 * llama-bench) is other processes' work (other engineers' tests), reported in
 * cores (CPU-seconds per second of wall time). The tree is sampled, not taken
 * from the reaped-children counters, because a provider below a shim that is
 * killed is reparented and never reaped by us.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { machineBusyS, ownTreeCpuS, readPidStat } from "./ProcStat.js"
import { sampleTree } from "./TreeSampler.js"

/** Where and with what a bench ran (baseline.json's `machine`). RAM in GiB. */
export interface MachineInfo {
  readonly cpu_model: string
  readonly cores: number
  readonly ram_gib: number
  readonly os: string
  readonly node_version: string
  /** llama.cpp commit of the tools used: `COMMIT` beside their `bin/` (../shared/llama.cpp), else null. */
  readonly llama_cpp_commit: string | null
}

/** Facts about this machine; `binDir` is the llama.cpp tools' directory. */
export const machineInfo = (binDir: string): MachineInfo => {
  let commit: string | null = null
  try {
    commit = fs.readFileSync(path.join(path.dirname(binDir), "COMMIT"), "utf8").trim() || null
  } catch { /* an operator's own build has no COMMIT file */ }
  return {
    cpu_model: os.cpus()[0]?.model.trim() ?? os.arch(),
    cores: os.availableParallelism(),
    ram_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()}`,
    node_version: process.version,
    llama_cpp_commit: commit
  }
}

/** A CPU-accounting checkpoint: wall ms, machine busy s, own tree CPU s. */
export interface CpuMark {
  readonly t: number
  readonly busyS: number
  readonly ownS: number
}

/** Marks now. Take marks when no child of this process is running (live children are not in `ownS` yet). */
export const cpuMark = (): CpuMark => ({ t: Date.now(), busyS: machineBusyS(), ownS: ownTreeCpuS() })

/** What a step's meter measured: wall time (s), other processes' CPU and the bench process's own CPU (cores). */
export interface StepMeasure {
  readonly seconds: number
  readonly foreignCores: number
  /** This process alone (its /proc sampling, HTTP clients, bookkeeping): the observer's own load. */
  readonly benchCores: number
}

/**
 * Meters a step: call `stop()` at its end. The bench's tree is sampled every
 * 500 ms, so the step must not block the event loop (no *Sync child processes).
 */
export const startCpuMeter = (): { readonly stop: () => StepMeasure } => {
  const t0 = Date.now()
  const busy0 = machineBusyS()
  const self0 = readPidStat("self")?.cpuS ?? 0
  const tree = sampleTree(process.pid, 500)
  return {
    stop: () => {
      const s = tree.stop()
      const seconds = (Date.now() - t0) / 1000
      const self = (readPidStat("self")?.cpuS ?? self0) - self0
      const own = self + s.children.reduce((a, c) => a + c.cpuS, 0)
      return seconds <= 0 ? { seconds, foreignCores: 0, benchCores: 0 } : {
        seconds,
        foreignCores: Math.max(0, (machineBusyS() - busy0 - own) / seconds),
        benchCores: self / seconds
      }
    }
  }
}

/** Other processes' CPU between two marks, in cores (≥ 0; 0 for an empty interval). Only for intervals where no child runs. */
export const foreignCores = (a: CpuMark, b: CpuMark): number => {
  const wallS = (b.t - a.t) / 1000
  return wallS <= 0 ? 0 : Math.max(0, (b.busyS - a.busyS - (b.ownS - a.ownS)) / wallS)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Busy cores of other processes over the next `ms` (this process idles meanwhile). */
export const busyCoresOver = async (ms: number): Promise<number> => {
  const a = cpuMark()
  await sleep(ms)
  return foreignCores(a, cpuMark())
}

/**
 * Waits until the machine is quiet: other processes use under `maxCores`
 * cores over a 5 s window and the 1-minute load average is at most
 * `maxLoadavg` (the "disturbed" line is 1.5), or `timeoutS` passes.
 * Returns whether it got quiet and how long it waited, s.
 */
export const waitForQuiet = async (
  o: { readonly maxCores: number; readonly maxLoadavg: number; readonly timeoutS: number },
  log: (line: string) => void
): Promise<{ readonly quiet: boolean; readonly waitedS: number }> => {
  const t0 = Date.now()
  for (;;) {
    const cores = await busyCoresOver(5000)
    const load1 = os.loadavg()[0]!
    const waitedS = (Date.now() - t0) / 1000
    if (cores < o.maxCores && load1 <= o.maxLoadavg) return { quiet: true, waitedS }
    if (waitedS >= o.timeoutS) return { quiet: false, waitedS }
    log(`bench: waiting for a quiet machine (other processes use ${cores.toFixed(2)} cores, loadavg ${load1.toFixed(2)})`)
  }
}
