/** Whether a process id, or a process group, is alive (zombies are not). */
import * as fs from "node:fs"

/**
 * What `/proc/<pid>/stat` says of a process (Linux): its state letter (`R`,
 * `S`, `Z` for a zombie, …), parent, process group, start time, and CPU time
 * (utime + stime) of itself and of the children it has reaped (cutime +
 * cstime); times in clock ticks (since boot for the start).
 */
export interface ProcStat {
  readonly state: string
  readonly ppid: number
  readonly pgrp: number
  readonly startTicks: number
  readonly cpuTicks: number
  readonly childrenCpuTicks: number
}

/**
 * `/proc/<pid>/stat` parsed (proc(5)): null when the process is gone or there
 * is no /proc (macOS). `comm` may hold spaces and parentheses, so the fields
 * are read after its last ")": state (field 3), ppid (4), pgrp (5), utime,
 * stime, cutime, cstime (14–17), starttime (22).
 */
export const procStat = (pid: number | "self"): ProcStat | null => {
  try {
    return parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return null
  }
}

/** The text of a `/proc/<pid>/stat` parsed as `procStat` describes (fields read after `comm`'s last ")"). */
export const parseProcStat = (stat: string): ProcStat => {
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return {
    state: f[0]!,
    ppid: Number(f[1]),
    pgrp: Number(f[2]),
    startTicks: Number(f[19]),
    cpuTicks: Number(f[11]) + Number(f[12]),
    childrenCpuTicks: Number(f[13]) + Number(f[14])
  }
}

/**
 * Is `pid` a live process? `kill(pid, 0)` probes without signalling; EPERM
 * means alive but not ours; a zombie (Linux /proc state Z: exited, not yet
 * reaped) is not alive. Never throws.
 */
export const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
  // No /proc (macOS): signal 0 is all there is.
  return procStat(pid)?.state !== "Z"
}

/**
 * The live members of process group `pgid` (zombies excluded), by pid. On
 * Linux from /proc; elsewhere `kill(-pgid, 0)` can only say whether any
 * member exists, so the answer is `[pgid]` or `[]`. Never throws.
 */
export const groupMembers = (pgid: number): ReadonlyArray<number> => {
  if (!Number.isSafeInteger(pgid) || pgid <= 1) return []
  let names: Array<string>
  try {
    names = fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n))
  } catch {
    try {
      process.kill(-pgid, 0)
      return [pgid]
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === "EPERM" ? [pgid] : []
    }
  }
  return names.flatMap((n) => {
    const s = procStat(Number(n))
    return s !== null && s.pgrp === pgid && s.state !== "Z" ? [Number(n)] : []
  })
}

/**
 * Whether this process leads its own process group: the tuner starts every
 * candidate so (`AUTOTUNE_GROUP_LEADER=1`), and on Linux /proc confirms it.
 * Only then may it signal its whole group (`kill(0)`) without reaching the
 * shell or terminal that started it.
 */
export const leadsOwnGroup = (): boolean => {
  if (process.env["AUTOTUNE_GROUP_LEADER"] !== "1") return false
  const s = procStat("self")
  return s === null || s.pgrp === process.pid
}
