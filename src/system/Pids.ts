/** Whether a process id is alive (zombies are not). */
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
