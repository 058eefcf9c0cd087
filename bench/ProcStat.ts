/**
 * Linux `/proc` readings the bench measures with: CPU time of a process (and
 * of the children it has reaped), memory high-water marks, the process tree,
 * and the whole machine's busy CPU time. Units: seconds of CPU time (clock
 * ticks ÷ CLK_TCK, which is 100 on Linux), MB = 2^20 bytes. Every reader
 * returns null for a process that has exited (or vanished while being read).
 */
import * as fs from "node:fs"
import { procStat } from "../src/system/Pids.js"

/** Clock ticks per second of `/proc/<pid>/stat` times (sysconf(_SC_CLK_TCK); 100 on every Linux build Node runs on). */
const CLK_TCK = 100

/** One `/proc/<pid>/stat` line, the fields the bench uses. */
export interface PidStat {
  readonly pid: number
  readonly ppid: number
  /** `R`, `S`, `D`, `Z` (zombie: exited, not yet reaped), … */
  readonly state: string
  /** utime + stime of the process itself, s. */
  readonly cpuS: number
  /** cutime + cstime: CPU of the children it has waited for (and of theirs), s. */
  readonly childrenCpuS: number
}

/** `/proc/<pid>/stat` (the project's own reader, src/system/Pids.ts `procStat`), with CPU times in seconds. */
export const readPidStat = (pid: number | "self"): PidStat | null => {
  const s = procStat(pid)
  return s === null ? null : {
    pid: pid === "self" ? process.pid : pid,
    ppid: s.ppid,
    state: s.state,
    cpuS: s.cpuTicks / CLK_TCK,
    childrenCpuS: s.childrenCpuTicks / CLK_TCK
  }
}

/** VmRSS and VmHWM (peak resident set) of a process from `/proc/<pid>/status`, MB. */
export const readMemory = (pid: number): { readonly rssMb: number; readonly hwmMb: number } | null => {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN)
    return { rssMb: kb("VmRSS") / 1024, hwmMb: kb("VmHWM") / 1024 }
  } catch {
    return null
  }
}

/** argv of a process (`/proc/<pid>/cmdline`), empty when it is gone. */
export const readArgv = (pid: number): ReadonlyArray<string> => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((a) => a !== "")
  } catch {
    return []
  }
}

/** Every process's stat line, keyed by pid. */
export const allPidStats = (): Map<number, PidStat> => {
  const out = new Map<number, PidStat>()
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    const s = readPidStat(Number(name))
    if (s !== null) out.set(s.pid, s)
  }
  return out
}

/** The processes below `root` (not `root` itself), by parent links. */
export const descendants = (table: ReadonlyMap<number, PidStat>, root: number): Array<PidStat> => {
  const inTree = new Set([root])
  const out: Array<PidStat> = []
  let grew = true
  while (grew) {
    grew = false
    for (const p of table.values()) {
      if (!inTree.has(p.pid) && inTree.has(p.ppid)) {
        inTree.add(p.pid)
        out.push(p)
        grew = true
      }
    }
  }
  return out
}

/** Busy CPU time of the whole machine since boot, s: all of `/proc/stat`'s `cpu` line but idle and iowait. */
export const machineBusyS = (): number => {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal (guest time is already inside user)
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f
  return (user + nice + system + irq + softirq + steal) / CLK_TCK
}

/** CPU time of this process and of every child it has reaped (their reaped children included), s. */
export const ownTreeCpuS = (): number => {
  const s = readPidStat("self")
  return s === null ? 0 : s.cpuS + s.childrenCpuS
}
