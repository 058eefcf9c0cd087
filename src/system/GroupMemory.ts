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

/** A live member's VmRSS (bytes), or null when `pid` is gone, a zombie, not in group `pgid`, or unreadable. */
const memberRss = async (pid: number, pgid: number): Promise<number | null> => {
  try {
    const { pgrp, state } = parseProcStat(await fs.readFile(`/proc/${pid}/stat`, "utf8"))
    if (pgrp !== pgid || state === "Z") return null
    return vmRssBytes(await fs.readFile(`/proc/${pid}/status`, "utf8"))
  } catch {
    return null
  }
}

/** The members found and the sum of their VmRSS (bytes); null when none could be read. */
interface GroupRss {
  readonly members: ReadonlyArray<number>
  readonly bytes: number | null
}

const sumOf = async (pids: ReadonlyArray<number>, pgid: number): Promise<GroupRss> => {
  const sizes = await Promise.all(pids.map(async (pid) => ({ pid, rss: await memberRss(pid, pgid) })))
  const found = sizes.filter((x): x is { pid: number; rss: number } => x.rss !== null)
  return { members: found.map((x) => x.pid), bytes: found.length === 0 ? null : found.reduce((a, x) => a + x.rss, 0) }
}

/** Every pid in /proc but those in `except`; null without /proc. */
const allPids = async (except: ReadonlyArray<number>): Promise<ReadonlyArray<number> | null> => {
  try {
    return (await fs.readdir("/proc")).filter((n) => /^\d+$/.test(n)).map(Number).filter((pid) => !except.includes(pid))
  } catch {
    return null
  }
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
  const pids = await allPids(except)
  return pids === null ? null : (await sumOf(pids, pgid)).bytes
}

/**
 * How often a `groupResidentSampler` scans the whole of /proc for the group's
 * members: every RESCAN_EVERY-th sample (with the trial's 500 ms sampling,
 * every 2 s). A scan reads two files per process on the machine: ~10 ms of
 * CPU with 69 processes (2026-12-07), 2 % of a core at two samples a second,
 * all of it while the provider's requests are timed; the members alone are
 * 1–3 processes.
 */
export const RESCAN_EVERY = 4

/** What `groupResidentSampler` gives: a cheap sample, and one that always looks through all of /proc. */
export interface GroupResidentSampler {
  /** The members known read alone, all of /proc scanned at the first call, every `rescanEvery`-th and when none is left. */
  readonly sample: () => Promise<number | null>
  /** All of /proc scanned for the members (the last sample of a trial: a worker forked since the last scan counts). */
  readonly scan: () => Promise<number | null>
}

/**
 * A sampler of `groupResidentBytes(pgid, except)` for repeated use (SPEC C-3:
 * a trial samples its provider's group every MEMORY_SAMPLE_MS): `sample`'s
 * first call, every `rescanEvery`-th after it (≥ 1), and any call that finds
 * none of the members it knew alive, scan /proc for the members; the others
 * read only the members found last (each still checked to be a live member of
 * the group, so a pid reused by another process is not counted). A member
 * forked between two scans counts from the next scan on; `scan` always scans
 * (a trial's last sample). What a look finds replaces `known` only if no
 * later look has begun, and a read of the known members only if no look began
 * or ended while it ran. Never rejects; null as
 * `groupResidentBytes`. `scanPids` is for tests (default: every pid in /proc).
 */
export const groupResidentSampler = (
  pgid: number,
  except: ReadonlyArray<number> = [],
  rescanEvery: number = RESCAN_EVERY,
  scanPids: (except: ReadonlyArray<number>) => Promise<ReadonlyArray<number> | null> = allPids
): GroupResidentSampler => {
  let known: ReadonlyArray<number> = []
  let calls = 0
  // Looks through /proc begun and ended: what an older look or a read overlapping a look found does not replace `known`.
  let begun = 0
  let ended = 0
  const scan = async (): Promise<number | null> => {
    const mine = ++begun
    const pids = await scanPids(except)
    const r = pids === null ? null : await sumOf(pids, pgid)
    ended++
    if (r === null) return null
    if (mine === begun) known = r.members
    return r.bytes
  }
  const sample = async (): Promise<number | null> => {
    const rescan = calls % Math.max(1, Math.floor(rescanEvery)) === 0 || known.length === 0
    calls++
    if (rescan) return scan()
    const [b, e] = [begun, ended]
    const r = await sumOf(known, pgid)
    if (r.bytes === null) return scan()
    if (b === begun && e === ended) known = r.members
    return r.bytes
  }
  return { sample, scan }
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
