/**
 * Samples a running tuner and its provider processes from `/proc` every
 * `intervalMs` (figure 6, the provider-stop estimate of figure 1, and the
 * bench's own CPU for the disturbance measure).
 *
 * Each sample holds cumulative CPU seconds: the tuner's own (utime + stime of
 * its pid), its helpers' (descendants the `isHelper` test picks by argv: the
 * provider shim, `--version` calls) and the providers' (every other process
 * below the tuner). A descendant counts with its last-seen utime + stime, so
 * one that exited keeps what it used up to its last sample (up to one interval
 * of its last work is missed). Memory is the tuner's VmRSS and VmHWM (the
 * kernel's peak resident set, so a peak between samples is not missed).
 * Providers are also tracked one by one (first and last time seen alive) so
 * their stop time can be compared with the tune's trial timeline.
 */
import { allPidStats, descendants, readArgv, readMemory, readPidStat } from "./ProcStat.js"

/** One sample. `t` is wall-clock ms (Date.now, same clock as the tune's ISO timestamps). */
export interface TreeSample {
  readonly t: number
  readonly tunerCpuS: number
  readonly helpersCpuS: number
  readonly providersCpuS: number
}

/** A process seen below the tuner: when it was first and last seen alive (not a zombie), ms, and its argv. */
export interface ChildSeen {
  readonly pid: number
  readonly ppid: number
  readonly argv: ReadonlyArray<string>
  readonly helper: boolean
  readonly firstSeen: number
  lastAlive: number
  cpuS: number
}

/** What a sampling run collected. */
export interface TreeSampling {
  readonly samples: ReadonlyArray<TreeSample>
  readonly children: ReadonlyArray<ChildSeen>
  /** Peak of the tuner's VmHWM over the samples, MB (its own peak resident set; providers excluded). */
  readonly tunerPeakRssMb: number
  /** The tuner's last-seen CPU (utime + stime), s, and that of its reaped children (cutime + cstime), s. */
  readonly tunerCpuS: number
  readonly tunerReapedChildrenCpuS: number
  readonly intervalMs: number
}

/** Starts sampling `pid` and its descendants; `stop()` ends it and returns what was seen. */
export const sampleTree = (
  pid: number,
  intervalMs = 100,
  isHelper: (argv: ReadonlyArray<string>) => boolean = () => false
): { readonly stop: () => TreeSampling } => {
  const samples: Array<TreeSample> = []
  const children = new Map<number, ChildSeen>()
  let peakMb = 0
  let tunerCpuS = 0
  let reapedS = 0
  const tick = () => {
    const t = Date.now()
    const self = readPidStat(pid)
    if (self === null || self.state === "Z") return
    tunerCpuS = self.cpuS
    reapedS = self.childrenCpuS
    const mem = readMemory(pid)
    if (mem !== null && Number.isFinite(mem.hwmMb)) peakMb = Math.max(peakMb, mem.hwmMb)
    for (const c of descendants(allPidStats(), pid)) {
      let seen = children.get(c.pid)
      if (seen === undefined) {
        const argv = readArgv(c.pid)
        seen = { pid: c.pid, ppid: c.ppid, argv, helper: isHelper(argv), firstSeen: t, lastAlive: t, cpuS: c.cpuS }
        children.set(c.pid, seen)
      }
      if (c.state !== "Z") seen.lastAlive = t
      seen.cpuS = Math.max(seen.cpuS, c.cpuS)
    }
    let providersCpuS = 0
    let helpersCpuS = 0
    for (const c of children.values()) {
      if (c.helper) helpersCpuS += c.cpuS
      else providersCpuS += c.cpuS
    }
    samples.push({ t, tunerCpuS: self.cpuS, helpersCpuS, providersCpuS })
  }
  tick()
  const timer = setInterval(tick, intervalMs)
  return {
    stop: () => {
      clearInterval(timer)
      return {
        samples,
        children: [...children.values()],
        tunerPeakRssMb: peakMb,
        tunerCpuS,
        tunerReapedChildrenCpuS: reapedS,
        intervalMs
      }
    }
  }
}

/** A cumulative counter at time `t`, linearly interpolated between the samples around it. */
const at = (samples: ReadonlyArray<TreeSample>, t: number, f: (s: TreeSample) => number): number => {
  if (samples.length === 0) return 0
  if (t <= samples[0]!.t) return f(samples[0]!)
  for (let i = 1; i < samples.length; i++) {
    const b = samples[i]!
    if (t <= b.t) {
      const a = samples[i - 1]!
      return f(a) + ((f(b) - f(a)) * (t - a.t)) / Math.max(1, b.t - a.t)
    }
  }
  return f(samples.at(-1)!)
}

/**
 * CPU seconds the tuner (its own process plus its helpers) and the providers
 * used inside the given windows ([start, end] wall-clock ms), summed over windows.
 */
export const cpuInWindows = (
  samples: ReadonlyArray<TreeSample>,
  windows: ReadonlyArray<readonly [number, number]>
): { readonly tunerCpuS: number; readonly providersCpuS: number; readonly windowS: number } => {
  let tuner = 0
  let providers = 0
  let span = 0
  const delta = (a: number, b: number, f: (s: TreeSample) => number) => at(samples, b, f) - at(samples, a, f)
  for (const [a, b] of windows) {
    tuner += delta(a, b, (s) => s.tunerCpuS + s.helpersCpuS)
    providers += delta(a, b, (s) => s.providersCpuS)
    span += (b - a) / 1000
  }
  return { tunerCpuS: tuner, providersCpuS: providers, windowS: span }
}
