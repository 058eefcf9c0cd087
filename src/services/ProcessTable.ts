/**
 * The process table, as pre-flight reads it (SPEC E-1): who runs, with which
 * argv, under which parent.
 */
import * as fs from "node:fs"
import { Effect, Layer } from "effect"
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

/** `ps -axo pid=,ppid=,command=` output as processes (its command column split on spaces). */
const fromPs = (stdout: string): Array<ProcessInfo> =>
  stdout.split("\n").flatMap((line) => {
    const m = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line)
    return m === null ? [] : [{ pid: Number(m[1]), ppid: Number(m[2]), argv: m[3]!.split(/\s+/) }]
  })

/**
 * The process table. `list`: on Linux it reads `/proc/<pid>/cmdline`
 * (NUL-separated argv, exact) and `/proc/<pid>/stat` (ppid); elsewhere (macOS)
 * it runs `ps -axo pid=,ppid=,command=` (5 s at most), whose command column is
 * split on spaces (an argument with spaces is split too). Processes that vanish
 * while being read are skipped. Never fails: an unreadable table is empty.
 * Tests replace it with `ProcessTable.Stub(table)`.
 */
export class ProcessTable extends Effect.Service<ProcessTable>()("llm-autotune/ProcessTable", {
  effect: Effect.gen(function*() {
    const exec = yield* Exec
    const list: Effect.Effect<ReadonlyArray<ProcessInfo>> = process.platform === "linux"
      ? Effect.sync(fromProc)
      : Effect.map(exec.run("ps", ["-axo", "pid=,ppid=,command="], { timeoutMs: 5000 }), (r) => r.code === 0 ? fromPs(r.stdout) : [])
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
