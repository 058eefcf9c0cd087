/** Whether a process id, or a process group, is alive (zombies are not). */
import * as fs from "node:fs"

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
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return true // no /proc (macOS): signal 0 is all there is
  }
}

/** `/proc/<pid>/stat` as [state, pgrp], or null (gone, or no /proc). comm may hold spaces: parse after the last ")". */
const statOf = (pid: string): readonly [string, number] | null => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return [fields[0]!, Number(fields[2])]
  } catch {
    return null
  }
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
    const s = statOf(n)
    return s !== null && s[1] === pgid && s[0] !== "Z" ? [Number(n)] : []
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
  const s = statOf("self")
  return s === null || s[1] === process.pid
}
