import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import { Effect } from "effect"

/** One process: its pid, parent pid and argv (as the OS reports them). */
export interface ProcessInfo {
  readonly pid: number
  readonly ppid: number
  readonly argv: ReadonlyArray<string>
}

/**
 * The process table. On Linux it reads `/proc/<pid>/cmdline` (NUL-separated
 * argv, exact) and `/proc/<pid>/stat` (ppid); elsewhere (macOS) it runs
 * `ps -axo pid=,ppid=,command=`, whose command column is split on spaces (an
 * argument with spaces is split too). Processes that vanish while being read
 * are skipped. Never fails: an unreadable table is empty.
 */
export const listProcesses: Effect.Effect<ReadonlyArray<ProcessInfo>> = Effect.sync(() =>
  process.platform === "linux" ? fromProc() : fromPs()
)

const fromProc = (): Array<ProcessInfo> => {
  const out: Array<ProcessInfo> = []
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").filter((a, i, all) =>
        !(a === "" && i === all.length - 1)
      )
      // stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses, so parse after the last ")".
      const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      if (argv.length > 0) out.push({ pid: Number(name), ppid, argv })
    } catch {
      // the process exited while we read it
    }
  }
  return out
}

const fromPs = (): Array<ProcessInfo> => {
  try {
    return ChildProcess.execFileSync("ps", ["-axo", "pid=,ppid=,command="], { encoding: "utf8", timeout: 5000 })
      .split("\n")
      .flatMap((line) => {
        const m = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line)
        return m === null ? [] : [{ pid: Number(m[1]), ppid: Number(m[2]), argv: m[3]!.split(/\s+/) }]
      })
  } catch {
    return []
  }
}

/** Is `pid` a live process? `process.kill(pid, 0)` probes without signalling; EPERM means alive but not ours; a zombie (Linux /proc state Z) is not alive. */
export const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
  // A zombie (exited, not yet reaped by its parent or init) answers signal 0 but holds nothing.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return true // no /proc (macOS): signal 0 is all there is
  }
}

/** `root` and every process below it, by parent links. */
export const descendantsOf = (table: ReadonlyArray<ProcessInfo>, root: number): Set<number> => {
  const out = new Set([root])
  let grew = true
  while (grew) {
    grew = false
    for (const p of table) {
      if (!out.has(p.pid) && out.has(p.ppid)) {
        out.add(p.pid)
        grew = true
      }
    }
  }
  return out
}
