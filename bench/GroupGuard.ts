/**
 * A process group the bench started (`detached: true`: a server, the
 * node-llama-cpp loop) taken down with the bench. A terminal's Ctrl-C reaches
 * the bench's own process group, not a detached child's, so without this a
 * SIGINT would end the bench and leave its children running.
 */

/** The signals a terminal (or a session's end) sends to the foreground group. */
const SIGNALS: ReadonlyArray<NodeJS.Signals> = ["SIGINT", "SIGTERM", "SIGHUP"]

/**
 * An installed guard. `watch(pgid)` names the group (the detached child's pid, right after its
 * spawn); `release()` removes the guard once its leader has exited (idempotent); `kill(signal)`
 * sends the group `signal` (default SIGKILL) now (nothing before `watch`, nothing to a group gone).
 */
export interface GroupGuard {
  readonly watch: (pgid: number) => void
  readonly release: () => void
  readonly kill: (signal?: NodeJS.Signals) => void
}

/**
 * Installs a guard, before the child is spawned (a signal between the spawn and the guard would
 * otherwise end the bench by its default action and leave the new group running): a SIGINT,
 * SIGTERM or SIGHUP to this process SIGKILLs the watched group, removes the guard, then ends this
 * process by the same signal if no other listener for it is left. Where one is left, ending the
 * process is that listener's: another guard (one Ctrl-C takes every guarded group, and the last
 * guard ends the bench), or one installed before (signal-exit's, once node-llama-cpp is imported in
 * the bench, which re-raises the signal when it finds itself alone: the guard runs first for that). Any other exit of this
 * process (a `process.exit` elsewhere) SIGKILLs the group too. SIGKILL, not SIGTERM: the bench is
 * going away and nothing it would wait for is measured. The group is released when its leader has
 * exited: a member that outlived the leader is not taken then.
 */
export const guardGroup = (): GroupGuard => {
  let pgid: number | null = null
  const kill = (signal: NodeJS.Signals = "SIGKILL") => {
    if (pgid === null) return
    try {
      process.kill(-pgid, signal)
    } catch { /* already gone */ }
  }
  const killOnExit = () => kill()
  const release = () => {
    for (const sig of SIGNALS) process.removeListener(sig, onSignal)
    process.removeListener("exit", killOnExit)
  }
  const onSignal = (signal: NodeJS.Signals) => {
    kill()
    release()
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  }
  // First in line: a listener already there that re-raises only when it is alone (signal-exit, which
  // node-llama-cpp's import installs) then finds the guard gone, and ends the process as it would have.
  for (const sig of SIGNALS) process.prependOnceListener(sig, onSignal)
  process.once("exit", killOnExit)
  return { watch: (g) => void (pgid = g), release, kill }
}
