/**
 * Which process, on which machine and since which boot: what a lock file or a
 * drain journal records of its writer, so a later reader can tell a live
 * holder from a dead one whose pid was reused (SPEC L-2; issue "lifecycle
 * round 2": a lock from another host is never taken over as stale).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import { Schema } from "effect"
import { procStat } from "./Pids.js"

/**
 * A process's identity: its pid, the host name, the kernel's boot id
 * (`/proc/sys/kernel/random/boot_id`, null where there is none) and its start
 * time in clock ticks since boot (`/proc/<pid>/stat` field 22, null where
 * there is no /proc). Fields other than `pid` are optional so files written
 * before they existed still decode.
 */
export class ProcessIdentity extends Schema.Class<ProcessIdentity>("ProcessIdentity")({
  pid: Schema.Int.pipe(Schema.positive()),
  host: Schema.optional(Schema.String),
  boot_id: Schema.optional(Schema.NullOr(Schema.String)),
  start_ticks: Schema.optional(Schema.NullOr(Schema.Number))
}) {}

const readOr = <A>(f: () => A, fallback: A): A => {
  try {
    return f()
  } catch {
    return fallback
  }
}

/** This boot's id (Linux), else null. */
export const bootId = (): string | null => readOr(() => fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim(), null)

/** `pid`'s start time in clock ticks since boot (Linux), else null (gone, or no /proc). */
export const startTicks = (pid: number): number | null => {
  const n = procStat(pid)?.startTicks
  return n !== undefined && Number.isFinite(n) ? n : null
}

/** This process's identity. */
export const selfIdentity = (): ProcessIdentity =>
  new ProcessIdentity({ pid: process.pid, host: os.hostname(), boot_id: bootId(), start_ticks: startTicks(process.pid) })

/**
 * What can be said of the process `id` from here:
 * - `Alive`: same host and boot, its pid runs and (where known) started when
 *   it did — the very process;
 * - `Gone`: same host, and a reboot since, or its pid is not running, or it
 *   runs but started at another time (the pid was reused);
 * - `Elsewhere`: written on another host (a shared directory): nothing can be
 *   known, so it is never treated as gone.
 * `alive(pid)` is the caller's liveness test (system/Pids.ts `pidAlive`).
 */
export const liveness = (id: ProcessIdentity, alive: (pid: number) => boolean): "Alive" | "Gone" | "Elsewhere" => {
  if (id.host !== undefined && id.host !== os.hostname()) return "Elsewhere"
  const boot = bootId()
  if (id.boot_id != null && boot !== null && id.boot_id !== boot) return "Gone"
  if (!alive(id.pid)) return "Gone"
  const ticks = id.start_ticks == null ? null : startTicks(id.pid)
  return ticks !== null && ticks !== id.start_ticks ? "Gone" : "Alive"
}
