/**
 * The drain (SPEC E-2): stops the operator's running provider for the tune
 * and restores it afterwards, as one scoped resource, so the restore runs
 * exactly once on every exit path.
 */
import * as fs from "node:fs"
import { Console, Duration, Effect, Ref, type Scope } from "effect"
import { ProviderConflict } from "../domain/AutotuneError.js"
import { Exec, stopProcess, waitUntil } from "../services/Exec.js"
import type { ProcessInfo } from "../services/ProcessTable.js"
import { ServiceManager } from "../services/ServiceManager.js"
import { portOpen } from "../system/Ports.js"
import { describeFindings, type Findings } from "./Preflight.js"

/** How long a drained foreground provider gets after SIGTERM before SIGKILL (SPEC E-2 grace period). */
export const DRAIN_GRACE = Duration.seconds(10)

/** How long a drained provider's port may stay open after it exited. */
const PORT_CLOSE_LIMIT = Duration.seconds(10)

/** A drained foreground provider, as needed to restart it: argv, cwd and environment from before the stop. */
interface Stopped {
  readonly pid: number
  readonly argv: ReadonlyArray<string>
  readonly cwd: string | null
  readonly env: Record<string, string> | null
}

/** `--port N` / `--port=N` / `-p N` of a provider's argv, if any. */
const portOf = (argv: ReadonlyArray<string>): number | null => {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const v = a.startsWith("--port=") ? a.slice(7) : (a === "--port" || a === "-p") ? argv[i + 1] : undefined
    if (v !== undefined && /^\d+$/.test(v)) return Number(v)
  }
  return null
}

/** Reads what a restart needs before the process is stopped (Linux /proc; elsewhere cwd and env are unknown). */
const snapshot = (p: ProcessInfo): Stopped => {
  const read = <A>(f: () => A): A | null => {
    try {
      return f()
    } catch {
      return null
    }
  }
  return {
    pid: p.pid,
    argv: p.argv,
    cwd: read(() => fs.readlinkSync(`/proc/${p.pid}/cwd`)),
    env: read(() =>
      Object.fromEntries(
        fs.readFileSync(`/proc/${p.pid}/environ`, "utf8").split("\0").filter((kv) => kv.includes("=")).map((kv) => {
          const i = kv.indexOf("=")
          return [kv.slice(0, i), kv.slice(i + 1)]
        })
      )
    )
  }
}

/** SIGTERM, wait for exit, SIGKILL after DRAIN_GRACE (announced, `stopProcess`), then wait for its port to close (SPEC E-2). */
const stopForeground = (p: ProcessInfo, stopped: Array<Stopped>) =>
  Effect.gen(function*() {
    // Read before the signal (it is gone after), recorded once it has exited, so
    // a drain that fails later still restores it, and one that survived is never doubled.
    const s = snapshot(p)
    yield* Console.error(`autotune: draining foreground provider pid ${p.pid} (SIGTERM)`)
    const result = yield* stopProcess({ pid: p.pid, group: false, name: `provider pid ${p.pid}` }, DRAIN_GRACE)
    if (result === "survived") return yield* Effect.fail(`provider pid ${p.pid} survived SIGKILL`)
    stopped.push(s)
    const port = portOf(p.argv)
    if (port !== null && !(yield* waitUntil(Effect.map(portOpen(port), (open) => !open), PORT_CLOSE_LIMIT))) {
      return yield* Effect.fail(`port ${port} of provider pid ${p.pid} is still open after it exited`)
    }
  })

/** Restarts a drained foreground provider with its original argv, cwd and environment, detached. */
const restartForeground = (s: Stopped) =>
  Effect.flatMap(Exec, (exec) =>
    exec.spawn(s.argv[0]!, s.argv.slice(1), {
      output: "ignore",
      cwd: s.cwd ?? process.cwd(),
      env: s.env ?? process.env,
      ownGroup: true,
      unref: true
    })).pipe(
      Effect.matchEffect({
        onFailure: (e) => Console.error(`autotune: RESTORE FAILED, could not restart the foreground provider (was pid ${s.pid}): ${e.message}`),
        onSuccess: (c) => Console.error(`autotune: restarted the foreground provider (was pid ${s.pid}, now pid ${c.pid})`)
      })
    )

/**
 * Drain and restore as one scoped resource (SPEC E-2). Acquire stops what
 * pre-flight found: the job (`launchctl bootout gui/<uid>/<label>` or
 * `systemctl --user stop <label>`, ServiceManager.stopJob) and each foreground
 * provider (SIGTERM, wait for exit and for its port to close, SIGKILL only
 * after DRAIN_GRACE, announced). Release restores, exactly once even if
 * reached twice: the job (`launchctl bootstrap gui/<uid>
 * ~/Library/LaunchAgents/<label>.plist` or `systemctl --user start`), and
 * drained foreground providers only when `restartForegroundToo`
 * (`--restart-foreground`), with their original argv, cwd and environment,
 * detached. Returns whether anything will come back when the scope closes (a
 * job, or foreground providers being restarted). A drain that fails fails with
 * ProviderConflict (SPEC E-2); what it had stopped is restored when the scope
 * closes. Restore failures are reported on stderr (they cannot fail a release).
 */
export const drain = (
  found: Findings,
  restartForegroundToo: boolean
): Effect.Effect<boolean, ProviderConflict, Scope.Scope | ServiceManager | Exec> =>
  Effect.gen(function*() {
    const manager = yield* ServiceManager
    yield* Console.error(`autotune: draining for the tune: ${describeFindings(found).join("; ")}`)
    const restored = yield* Ref.make(false)
    const stopped: Array<Stopped> = []
    let jobStopped = false
    const restore = Effect.gen(function*() {
      if (yield* Ref.getAndSet(restored, true)) return
      if (jobStopped && found.kind !== "none") {
        yield* manager.startJob(found.kind, found.label).pipe(
          Effect.matchEffect({
            onFailure: (e) => Console.error(`autotune: RESTORE FAILED, start the provider by hand: ${e}`),
            onSuccess: () => Console.error(`autotune: restored ${found.kind} job ${found.label}`)
          })
        )
      }
      for (const s of stopped) {
        yield* restartForegroundToo
          ? restartForeground(s)
          : Console.error(
            `autotune: the drained foreground provider (pid ${s.pid}) was not restarted (pass --restart-foreground); its command was: ${
              s.argv.join(" ")
            }`
          )
      }
    })
    // The restore is registered before anything is stopped, so every exit path
    // (failure, interrupt, budget) restores whatever the drain had stopped.
    yield* Effect.addFinalizer(() => restore)
    // Stopping runs uninterruptibly with bounded waits (≤ 10 s for the job, 10 s grace
    // + 5 s after SIGKILL + 10 s for the port per process): a Ctrl-C or a budget lands
    // after it, never between a SIGTERM and its SIGKILL.
    yield* Effect.uninterruptible(Effect.gen(function*() {
      if (found.jobRunning && found.kind !== "none") {
        // Marked before the command: a stop that outlasts the client's 10 s still
        // completes in the service manager, and starting a running job is a no-op.
        jobStopped = true
        yield* manager.stopJob(found.kind, found.label)
      }
      for (const p of found.foreground) yield* stopForeground(p, stopped)
    })).pipe(Effect.mapError((e) => new ProviderConflict({ message: `drain failed, nothing was tuned: ${e}` })))
    return found.jobRunning || (restartForegroundToo && found.foreground.length > 0)
  })
