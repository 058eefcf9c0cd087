/** Signal listeners held for a run's life (SPEC H-4): a second Ctrl-C cannot skip a stop or a restore. */
import { Effect } from "effect"

/**
 * Keeps a no-op SIGINT/SIGTERM listener installed for the whole scope it is
 * acquired in (removed when that scope closes, after the finalizers acquired
 * later). Used by `serve` and `tune`. node-llama-cpp loads
 * `signal-exit` v3, whose listener re-raises the signal when it finds itself
 * the only listener left; runMain removes its own listener on the first
 * signal, so without this one the process dies of the re-raised SIGTERM
 * (exit 143) before any finalizer runs. It also makes a second signal harmless
 * while finalizers run (STYLE pitfall 2): a second Ctrl-C cannot skip the
 * stop of a candidate provider. Each finalizer is time-bounded.
 */
/**
 * SIGHUP (the terminal or SSH session went away) is handled as SIGTERM: the
 * run is interrupted and every finalizer runs (stop the candidate, restore a
 * drained provider) instead of Node's default of dying on the spot.
 */
const hangup = () => {
  // The terminal is gone: writes to it fail (EIO/EPIPE); never let that kill the cleanup.
  process.stdout.on("error", () => {})
  process.stderr.on("error", () => {})
  process.kill(process.pid, "SIGTERM")
}

export const holdSignals = Effect.acquireRelease(
  Effect.sync(() => {
    const noop = () => {}
    process.on("SIGINT", noop)
    process.on("SIGTERM", noop)
    process.on("SIGHUP", hangup)
    return noop
  }),
  (noop) =>
    Effect.sync(() => {
      process.removeListener("SIGINT", noop)
      process.removeListener("SIGTERM", noop)
      process.removeListener("SIGHUP", hangup)
    })
)
