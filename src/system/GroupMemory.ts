/**
 * The resident memory of a process group (SPEC C-3): what a candidate
 * provider, with every worker it forked, holds in RAM at one moment.
 */
import * as fs from "node:fs/promises"
import { parseProcStat } from "./Pids.js"

/** `VmRSS` of a `/proc/<pid>/status` text in bytes (proc(5): kB there means KiB); null when it has none. */
export const vmRssBytes = (status: string): number | null => {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  return m === null ? null : Number(m[1]) * 1024
}

/**
 * Resident bytes of the live members of process group `pgid` on Linux: the
 * sum of their `VmRSS` (`/proc/<pid>/status`; `status` rather than `statm`,
 * whose pages would need the page size: 4 KiB on x86-64, 16 or 64 KiB on some
 * ARM64 kernels). Pages two members share count twice, as `ps` would add
 * them. The pids in `except` (the launch shim, which is not the provider) are
 * left out. Null without /proc or when no member could be read. Reads
 * asynchronously: a trial samples it while its requests are being timed, and
 * a synchronous scan of /proc would hold the event loop that timestamps them.
 * Never rejects.
 */
export const groupResidentBytes = async (pgid: number, except: ReadonlyArray<number> = []): Promise<number | null> => {
  let names: Array<string>
  try {
    names = (await fs.readdir("/proc")).filter((n) => /^\d+$/.test(n))
  } catch {
    return null
  }
  const sizes = await Promise.all(names.map(async (n) => {
    const pid = Number(n)
    if (except.includes(pid)) return null
    try {
      const { pgrp, state } = parseProcStat(await fs.readFile(`/proc/${pid}/stat`, "utf8"))
      if (pgrp !== pgid || state === "Z") return null
      return vmRssBytes(await fs.readFile(`/proc/${pid}/status`, "utf8"))
    } catch {
      return null
    }
  }))
  const found = sizes.filter((b): b is number => b !== null)
  return found.length === 0 ? null : found.reduce((a, b) => a + b, 0)
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
