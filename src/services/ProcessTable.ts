/**
 * The process table, as pre-flight reads it (SPEC E-1): who runs, with which
 * argv, under which parent.
 */
import * as fs from "node:fs"
import { Effect, Layer } from "effect"
import { procStat } from "../system/Pids.js"
import { Exec } from "./Exec.js"

/** One process: its pid, parent pid and argv (as the OS reports them). */
export interface ProcessInfo {
  readonly pid: number
  readonly ppid: number
  readonly argv: ReadonlyArray<string>
}

const fromProc = (): Array<ProcessInfo> => {
  const out: Array<ProcessInfo> = []
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").filter((a, i, all) =>
        !(a === "" && i === all.length - 1)
      )
      const stat = procStat(Number(name))
      if (stat !== null && argv.length > 0) out.push({ pid: Number(name), ppid: stat.ppid, argv })
    } catch {
      // the process exited while we read it
    }
  }
  return out
}

/**
 * Processes from two `ps` listings (macOS, where there is no /proc): `ps -axo
 * pid=,ppid=,comm=` (the executable's path, spaces and all, to the end of the
 * line) and `ps -axo pid=,args=` (the command line, whose words ps joins with
 * spaces). argv[0] is the executable's path as `comm` gives it, so a path with
 * spaces stays whole; the arguments after it are split on spaces (an argument
 * that holds a space is split: ps does not say where it ended).
 */
export const fromPs = (commOut: string, argsOut: string): Array<ProcessInfo> => {
  const args = new Map<number, string>()
  for (const line of argsOut.split("\n")) {
    const m = /^\s*(\d+)\s(.*)$/.exec(line)
    if (m !== null) args.set(Number(m[1]), m[2]!.trim())
  }
  return commOut.split("\n").flatMap((line) => {
    const m = /^\s*(\d+)\s+(\d+)\s(.*)$/.exec(line)
    if (m === null) return []
    const pid = Number(m[1])
    const exe = m[3]!.trim()
    const full = args.get(pid) ?? exe
    const rest = full.startsWith(exe) ? full.slice(exe.length) : full.slice(full.split(/\s+/)[0]!.length)
    return [{ pid, ppid: Number(m[2]), argv: [exe, ...rest.split(/\s+/).filter((a) => a !== "")] }]
  })
}

/**
 * The process table. `list`: on Linux it reads `/proc/<pid>/cmdline`
 * (NUL-separated argv, exact) and `/proc/<pid>/stat` (ppid); elsewhere (macOS)
 * it runs `ps` twice (5 s at most each; see `fromPs`: the executable's path
 * stays whole, later arguments are split on spaces). Processes that vanish
 * while being read are skipped. Never fails: an unreadable table is empty.
 * Tests replace it with `ProcessTable.Stub(table)`.
 */
export class ProcessTable extends Effect.Service<ProcessTable>()("llm-autotune/ProcessTable", {
  effect: Effect.gen(function*() {
    const exec = yield* Exec
    const list: Effect.Effect<ReadonlyArray<ProcessInfo>> = process.platform === "linux"
      ? Effect.sync(fromProc)
      : Effect.zipWith(
        exec.run("ps", ["-axww", "-o", "pid=,ppid=,comm="], { timeoutMs: 5000 }),
        exec.run("ps", ["-axww", "-o", "pid=,args="], { timeoutMs: 5000 }),
        (comm, args) => (comm.code === 0 ? fromPs(comm.stdout, args.code === 0 ? args.stdout : "") : [])
      )
    return { list }
  }),
  dependencies: [Exec.Default]
}) {
  /** A process table that always reads `table` (tests: a machine where nothing, or exactly this, runs). */
  static readonly Stub = (table: ReadonlyArray<ProcessInfo>): Layer.Layer<ProcessTable> =>
    Layer.succeed(ProcessTable, ProcessTable.make({ list: Effect.succeed(table) }))
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
