/**
 * A process group the bench started (`detached: true`: a server, the
 * node-llama-cpp loop) taken down with the bench. A terminal's Ctrl-C reaches
 * the bench's own process group, not a detached child's, so without this a
 * SIGINT would end the bench and leave its children running.
 */

/** The signals a terminal (or a session's end) sends to the foreground group. */
const SIGNALS: ReadonlyArray<NodeJS.Signals> = ["SIGINT", "SIGTERM", "SIGHUP"]

/** An installed guard: `release()` removes it once the group is gone (idempotent); `kill()` SIGKILLs the group now. */
export interface GroupGuard {
  readonly release: () => void
  readonly kill: () => void
}

/**
 * Guards the process group `pgid` (the detached child's pid) while it runs: a
 * SIGINT, SIGTERM or SIGHUP to this process SIGKILLs the group, then ends this
 * process by the same signal unless another listener handles that signal (one
 * Ctrl-C stays one Ctrl-C: a second guard, or the bench's own handler, sees the
 * same signal and does its part); any other exit of this process (a
 * `process.exit` elsewhere) SIGKILLs the group too. SIGKILL, not SIGTERM: the
 * bench is going away and nothing it would wait for is measured.
 */
export const guardGroup = (pgid: number): GroupGuard => {
  const kill = () => {
    try {
      process.kill(-pgid, "SIGKILL")
    } catch { /* already gone */ }
  }
  const release = () => {
    for (const sig of SIGNALS) process.removeListener(sig, onSignal)
    process.removeListener("exit", kill)
  }
  const onSignal = (signal: NodeJS.Signals) => {
    kill()
    release()
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  }
  for (const sig of SIGNALS) process.once(sig, onSignal)
  process.once("exit", kill)
  return { release, kill }
}
