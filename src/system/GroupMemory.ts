/**
 * The resident memory of a process group (SPEC C-3): what a candidate
 * provider, with every worker it forked, holds in RAM at one moment.
 */
import * as fs from "node:fs"
import { groupMembers } from "./Pids.js"

/**
 * Resident bytes of one process on Linux: `VmRSS` of `/proc/<pid>/status`
 * (proc(5); kB there means KiB), null when it is gone or has no memory (a
 * kernel thread, a zombie). `status` rather than `statm`, whose pages would
 * need the page size (4 KiB on x86-64, 16 or 64 KiB on some ARM64 kernels).
 */
export const procResidentBytes = (pid: number): number | null => {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return m === null ? null : Number(m[1]) * 1024
  } catch {
    return null
  }
}

/**
 * Resident bytes of the live members of process group `pgid` on Linux (the sum
 * of their VmRSS; pages two members share count twice, as `ps` would add them),
 * leaving out the pids in `except` (the launch shim, which is not the
 * provider). Null without /proc or when no member could be read.
 */
export const groupResidentBytes = (pgid: number, except: ReadonlyArray<number> = []): number | null => {
  if (!fs.existsSync("/proc/self/status")) return null
  const sizes = groupMembers(pgid).flatMap((pid) => {
    if (except.includes(pid)) return []
    const b = procResidentBytes(pid)
    return b === null ? [] : [b]
  })
  return sizes.length === 0 ? null : sizes.reduce((a, b) => a + b, 0)
}

/**
 * The same from `ps -axo pid=,pgid=,rss=` text (macOS, no /proc; `rss` in
 * KiB): the sum over the lines of group `pgid`, without the pids in `except`;
 * null when the group has no line.
 */
export const groupResidentBytesFromPs = (text: string, pgid: number, except: ReadonlyArray<number> = []): number | null => {
  let total: number | null = null
  for (const line of text.split("\n")) {
    const [pid, pg, rss] = line.trim().split(/\s+/).map(Number)
    if (pg !== pgid || pid === undefined || except.includes(pid) || rss === undefined || !Number.isFinite(rss)) continue
    total = (total ?? 0) + rss * 1024
  }
  return total
}
