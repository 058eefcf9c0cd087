import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Console, Duration, Effect, Ref, type Scope } from "effect"
import { ProviderConflict } from "../domain/AutotuneError.js"
import { pidAlive, type ProcessInfo } from "../services/ProcessTable.js"
import { portOpen } from "../services/Ports.js"
import { type ServiceManagerKind } from "../services/ServiceManager.js"
import { describeFindings, type Findings } from "./Preflight.js"

/** How long a drained foreground provider gets after SIGTERM before SIGKILL (SPEC E-2 grace period). */
export const DRAIN_GRACE = Duration.seconds(10)

/** A drained foreground provider, as needed to restart it: argv, cwd and environment from before the stop. */
interface Stopped {
  readonly pid: number
  readonly argv: ReadonlyArray<string>
  readonly cwd: string | null
  readonly env: Record<string, string> | null
}

/** Runs a service-manager command through PATH (10 s at most); fails with its stderr when it exits non-zero. */
const manager = (command: string, args: ReadonlyArray<string>) =>
  Effect.async<void, string>((resume) => {
    const child = ChildProcess.execFile(command, [...args], { timeout: 10_000 }, (err, _stdout, stderr) =>
      resume(err === null ? Effect.void : Effect.fail(`${command} ${args.join(" ")}: ${String(stderr).trim() || err.message}`)))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** The commands that stop and start a job (SPEC E-2): launchd bootout/bootstrap, systemd user stop/start. */
const jobCommands = (kind: ServiceManagerKind, label: string) => {
  const uid = process.getuid?.() ?? 0
  return kind === "launchd"
    ? {
      stop: ["launchctl", ["bootout", `gui/${uid}/${label}`]] as const,
      start: ["launchctl", ["bootstrap", `gui/${uid}`, path.join(os.homedir(), "Library", "LaunchAgents", `${label}.plist`)]] as const
    }
    : { stop: ["systemctl", ["--user", "stop", label]] as const, start: ["systemctl", ["--user", "start", label]] as const }
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

/**
 * Waits (polling every 100 ms) until `cond` holds, at most `limitMs`; true if
 * it did. A plain deadline loop, no race: run uninterruptibly (the drain is),
 * it always finishes its bounded wait, so the escalation after it always comes.
 */
const waitUntil = (cond: Effect.Effect<boolean>, limitMs: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + limitMs
    while (Date.now() < deadline) {
      if (yield* cond) return true
      yield* Effect.sleep("100 millis")
    }
    return yield* cond
  })

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

/** SIGTERM, wait for exit, SIGKILL after DRAIN_GRACE (announced), then wait for its port to close (SPEC E-2). */
const stopForeground = (p: ProcessInfo, stopped: Array<Stopped>) =>
  Effect.gen(function*() {
    // Read before the signal (it is gone after), recorded once it has exited, so
    // a drain that fails later still restores it, and one that survived is never doubled.
    const s = snapshot(p)
    yield* Console.error(`autotune: draining foreground provider pid ${p.pid} (SIGTERM)`)
    yield* Effect.try(() => process.kill(p.pid, "SIGTERM")).pipe(Effect.ignore) // gone already: fine
    const exited = yield* waitUntil(Effect.sync(() => !pidAlive(p.pid)), Duration.toMillis(DRAIN_GRACE))
    if (!exited) {
      yield* Console.error(
        `autotune: provider pid ${p.pid} did not exit within ${Duration.format(DRAIN_GRACE)} of SIGTERM; sending SIGKILL`
      )
      yield* Effect.try(() => process.kill(p.pid, "SIGKILL")).pipe(Effect.ignore)
      if (!(yield* waitUntil(Effect.sync(() => !pidAlive(p.pid)), 5_000))) {
        return yield* Effect.fail(`provider pid ${p.pid} survived SIGKILL`)
      }
    }
    stopped.push(s)
    const port = portOf(p.argv)
    if (port !== null && !(yield* waitUntil(Effect.map(portOpen(port), (open) => !open), 10_000))) {
      return yield* Effect.fail(`port ${port} of provider pid ${p.pid} is still open after it exited`)
    }
  })

/** Restarts a drained foreground provider with its original argv, cwd and environment, detached. */
const restartForeground = (s: Stopped) =>
  Effect.sync(() => {
    const child = ChildProcess.spawn(s.argv[0]!, s.argv.slice(1), {
      cwd: s.cwd ?? process.cwd(),
      env: s.env ?? process.env,
      detached: true,
      stdio: "ignore"
    })
    child.on("error", () => {})
    child.unref()
    return child.pid
  }).pipe(Effect.flatMap((pid) => Console.error(`autotune: restarted the foreground provider (was pid ${s.pid}, now pid ${pid})`)))

/**
 * Drain and restore as one scoped resource (SPEC E-2). Acquire stops what
 * pre-flight found: the job (`launchctl bootout gui/<uid>/<label>` or
 * `systemctl --user stop <label>`) and each foreground provider (SIGTERM,
 * wait for exit and for its port to close, SIGKILL only after DRAIN_GRACE,
 * announced). Release restores, exactly once even if reached twice: the job
 * (`launchctl bootstrap gui/<uid> ~/Library/LaunchAgents/<label>.plist` or
 * `systemctl --user start`), and drained foreground providers only when
 * `restartForeground` (`--restart-foreground`), with their original argv, cwd
 * and environment, detached. A drain that fails fails with ProviderConflict
 * (SPEC E-2); what it had stopped is restored when the scope closes. Restore failures are reported on
 * stderr (they cannot fail a release).
 */
export const drain = (found: Findings, restartForegroundToo: boolean): Effect.Effect<void, ProviderConflict, Scope.Scope> =>
  Effect.gen(function*() {
    yield* Console.error(`autotune: draining for the tune: ${describeFindings(found).join("; ")}`)
    const restored = yield* Ref.make(false)
    const stopped: Array<Stopped> = []
    let jobStopped = false
    const cmds = jobCommands(found.kind, found.label)
    const restore = Effect.gen(function*() {
      if (yield* Ref.getAndSet(restored, true)) return
      if (jobStopped) {
        yield* manager(cmds.start[0], cmds.start[1]).pipe(
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
    // Stopping runs uninterruptibly with bounded waits (≤ 10 s grace + 5 s after
    // SIGKILL + 10 s for the port): a Ctrl-C or a budget lands after it, never
    // between a SIGTERM and its SIGKILL.
    yield* Effect.uninterruptible(Effect.gen(function*() {
      if (found.jobRunning) {
        // Marked before the command: a stop that outlasts the client's 10 s still
        // completes in the service manager, and starting a running job is a no-op.
        jobStopped = true
        yield* manager(cmds.stop[0], cmds.stop[1])
      }
      for (const p of found.foreground) yield* stopForeground(p, stopped)
    })).pipe(Effect.mapError((e) => new ProviderConflict({ message: `drain failed, nothing was tuned: ${e}` })))
  })
