/**
 * The process seam: the one module of llm-autotune that starts operating-system
 * processes (`node:child_process`), and the one place that signals and stops
 * them. Everything else — the candidate providers, the service managers'
 * commands, `--version` and `--help` probes, the process table on macOS, the
 * drain of the operator's provider — goes through the `Exec` service, so a
 * test can replace it (`Exec.make({...})`) and drive the waits with TestClock.
 */
import * as ChildProcess from "node:child_process"
import { Clock, Console, Data, Deferred, Duration, Effect } from "effect"
import type { ProcessExit } from "../domain/RunningServer.js"
import { groupMembers, pidAlive } from "../system/Pids.js"

/**
 * What a finished command printed and how it ended. `code` is its exit code,
 * null when it could not be started, was killed by a signal or timed out;
 * `error` says why in that case (the spawn error, "timed out after N ms", the
 * signal), null when it exited by itself.
 */
export interface RunResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly error: string | null
}

/** Options of `Exec.run`. `timeoutMs`: the command is SIGKILLed after it (every run is bounded). */
export interface RunOptions {
  readonly timeoutMs: number
  readonly cwd?: string
  readonly env?: NodeJS.ProcessEnv
  /**
   * Run it in a process group of its own, so a terminal's Ctrl-C (sent to the
   * tuner's foreground group) does not reach it; default false.
   */
  readonly ownGroup?: boolean
}

/** Options of `Exec.spawn`. */
export interface SpawnOptions {
  /** Where stdout and stderr go: an open file descriptor (both), or nowhere. */
  readonly output: number | "ignore"
  readonly cwd?: string
  readonly env?: NodeJS.ProcessEnv
  /**
   * The child leads a process group of its own (`setsid`-like, Node's
   * `detached`): a terminal's Ctrl-C does not reach it, and stopping its
   * group (`signal(pid, s, { group: true })`) reaches its workers too.
   */
  readonly ownGroup: boolean
  /** Let this process exit while the child runs (a restarted operator provider outlives the tune). Default false. */
  readonly unref?: boolean
}

/** A spawned process: its pid, and its exit as Effects that never fail. */
export interface Child {
  readonly pid: number
  /** Completes with how the process ended, when it ends. */
  readonly exited: Effect.Effect<ProcessExit>
  /** Whether the process has ended (its exit event came). */
  readonly hasExited: Effect.Effect<boolean>
}

/** A process could not be started (missing binary, not executable, …). `message` is the system's reason. */
export class SpawnFailed extends Data.TaggedError("SpawnFailed")<{
  readonly command: string
  readonly message: string
}> {}

/** Options of `Exec.signal`. */
export interface SignalOptions {
  /** Signal the process group led by `pid` (`kill(-pid)`). */
  readonly group: boolean
  /**
   * With `group`: when there is no such group, signal `pid` itself; default
   * true. False when the leader is known to have exited (its pid may be reused).
   */
  readonly leaderToo?: boolean
}

/** Sends `signal`; true when it was delivered (false: no such process or group). Never throws. */
const sendSignal = (pid: number, signal: NodeJS.Signals, o: SignalOptions): boolean => {
  // 0 and negative pids address process groups or every process (kill(2)): never a target here.
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  const kill = (target: number) => {
    try {
      process.kill(target, signal)
      return true
    } catch {
      return false
    }
  }
  if (!o.group) return kill(pid)
  return kill(-pid) || (o.leaderToo !== false && kill(pid))
}

/** Bytes of stdout and of stderr kept from a `run` (the rest is dropped). */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024

const run = (command: string, args: ReadonlyArray<string>, o: RunOptions): Effect.Effect<RunResult> =>
  Effect.async<RunResult>((resume) => {
    const stdout: Array<Buffer> = []
    const stderr: Array<Buffer> = []
    const keep = (into: Array<Buffer>) => (b: Buffer) => {
      if (into.reduce((n, x) => n + x.length, 0) < MAX_OUTPUT_BYTES) into.push(b)
    }
    let timedOut = false
    let done = false
    const cp = ChildProcess.spawn(command, [...args], {
      stdio: ["ignore", "pipe", "pipe"],
      detached: o.ownGroup === true,
      ...(o.cwd === undefined ? {} : { cwd: o.cwd }),
      ...(o.env === undefined ? {} : { env: o.env })
    })
    // Stops the command and stops reading its output: a child the command left behind may
    // hold the pipes open, and `close` waits for them (Node's execFile does the same on its
    // timeout). With ownGroup the whole group goes, leftovers included, while it has members
    // (the kernel keeps a group's id from reuse only while it has any); otherwise the command
    // alone, and its pid is never signalled once it has exited (it may be reused).
    const kill = () => {
      if (cp.pid !== undefined) {
        const running = cp.exitCode === null && cp.signalCode === null
        if (o.ownGroup === true && (running || groupMembers(cp.pid).length > 0)) {
          sendSignal(cp.pid, "SIGKILL", { group: true, leaderToo: false })
        } else if (running) cp.kill("SIGKILL")
      }
      cp.stdout?.destroy()
      cp.stderr?.destroy()
    }
    const timer = setTimeout(() => {
      timedOut = true
      kill()
    }, o.timeoutMs)
    const finish = (r: RunResult) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resume(Effect.succeed(r))
    }
    cp.stdout!.on("data", keep(stdout))
    cp.stderr!.on("data", keep(stderr))
    cp.once("error", (err) => finish({ code: null, stdout: "", stderr: "", error: err.message }))
    cp.once("close", (code, signal) =>
      finish({
        code: timedOut ? null : code,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
        error: timedOut ? `timed out after ${o.timeoutMs} ms` : signal !== null ? `killed by ${signal}` : null
      }))
    // Interrupted (Ctrl-C, a budget): the command goes too.
    return Effect.sync(() => {
      clearTimeout(timer)
      kill()
    })
  })

const spawn = (command: string, args: ReadonlyArray<string>, o: SpawnOptions): Effect.Effect<Child, SpawnFailed> =>
  Effect.gen(function*() {
    const exited = yield* Deferred.make<ProcessExit>()
    return yield* Effect.async<Child, SpawnFailed>((resume) => {
      const cp = ChildProcess.spawn(command, [...args], {
        stdio: o.output === "ignore" ? "ignore" : ["ignore", o.output, o.output],
        detached: o.ownGroup,
        ...(o.cwd === undefined ? {} : { cwd: o.cwd }),
        ...(o.env === undefined ? {} : { env: o.env })
      })
      cp.once("error", (err) => {
        Deferred.unsafeDone(exited, Effect.succeed({ code: null, signal: null }))
        resume(Effect.fail(new SpawnFailed({ command, message: err.message })))
      })
      cp.once("exit", (code, signal) => Deferred.unsafeDone(exited, Effect.succeed({ code, signal })))
      cp.once("spawn", () => {
        if (o.unref === true) cp.unref()
        resume(Effect.succeed({ pid: cp.pid!, exited: Deferred.await(exited), hasExited: Deferred.isDone(exited) }))
      })
      // Interrupted before it was running: it must not run on unowned.
      return Effect.sync(() => {
        if (cp.exitCode === null && cp.signalCode === null) cp.kill("SIGKILL")
      })
    })
  })

/**
 * Starts, signals and watches operating-system processes (the process seam).
 * - `run(command, args, options)`: runs a command to its end and returns what it
 *   printed (`RunResult`); never fails (a command that cannot run has `code`
 *   null and an `error`); SIGKILLed after `timeoutMs` and when interrupted.
 * - `spawn(command, args, options)`: starts a long-running process; succeeds
 *   once it is running, fails with SpawnFailed when it cannot start. Nothing
 *   stops it for the caller: see `stopProcess`.
 * - `signal(pid, signal, options)`: true when delivered; never fails.
 * - `alive(pid)`: `pidAlive`.
 * - `groupAlive(pgid)`: whether any live (non-zombie) process is left in the group.
 */
export class Exec extends Effect.Service<Exec>()("llm-autotune/Exec", {
  succeed: {
    run,
    spawn,
    signal: (pid: number, signal: NodeJS.Signals, o: SignalOptions): Effect.Effect<boolean> =>
      Effect.sync(() => sendSignal(pid, signal, o)),
    alive: (pid: number): Effect.Effect<boolean> => Effect.sync(() => pidAlive(pid)),
    groupAlive: (pgid: number): Effect.Effect<boolean> => Effect.sync(() => groupMembers(pgid).length > 0)
  }
}) {}

/** What to stop, and how to tell it has gone. */
export interface StopTarget {
  readonly pid: number
  /**
   * Stop its whole process group (a candidate leads its own, SPEC L-1): it has
   * gone only when no member is left, whether or not `pid` itself exited first.
   */
  readonly group: boolean
  /**
   * True once the process `pid` itself is gone. Default: `Exec.alive(pid)` is
   * false. A child's own exit event (`Child.hasExited`) is the better test: its
   * pid is reaped at once and may be reused.
   */
  readonly exited?: Effect.Effect<boolean>
  /**
   * SIGKILL after the grace is the expected end (a candidate the gate decided:
   * nothing it does next is measured), so it is not announced on stderr.
   */
  readonly killExpected?: boolean
  /** How the SIGKILL announcement names it, e.g. `provider pid 123`. */
  readonly name: string
}

/** How a stop ended: gone after SIGTERM, gone after SIGKILL, or still there after SIGKILL. */
export type StopResult = "terminated" | "killed" | "survived"

/** How often `stopProcess` looks whether its target has gone. */
const POLL = Duration.millis(50)

/** How long after SIGKILL `stopProcess` waits before it calls the target a survivor. */
export const AFTER_SIGKILL = Duration.seconds(5)

/**
 * Polls `gone` every 50 ms until it holds or `limit` has passed on the
 * Effect clock (so TestClock drives it); true if it held. A plain deadline
 * loop, no race: it works the same in uninterruptible code (a release, a drain).
 */
export const waitUntil = (gone: Effect.Effect<boolean>, limit: Duration.DurationInput): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(limit)
    while (!(yield* gone)) {
      if ((yield* Clock.currentTimeMillis) >= deadline) return false
      yield* Effect.sleep(POLL)
    }
    return true
  })

/**
 * Stops a process, or its whole group (STYLE: bound every wait; SPEC L-1):
 * SIGTERM, wait up to `grace` for it (every member of the group) to go, else
 * say so on stderr ("<name> did not exit within <grace> of SIGTERM; sending
 * SIGKILL", unless `killExpected`), SIGKILL (the group: every member left, the leader's pid only while
 * it runs), and wait up to AFTER_SIGKILL (5 s) more. A group whose leader
 * already exited still gets both signals. Waits run on the Effect clock and
 * are not interruptible, so a second Ctrl-C never lands between the SIGTERM
 * and its SIGKILL (SPEC H-4). Returns how it ended; never fails.
 */
export const stopProcess = (target: StopTarget, grace: Duration.DurationInput): Effect.Effect<StopResult, never, Exec> =>
  Effect.uninterruptible(Effect.gen(function*() {
    const exec = yield* Exec
    const exited = target.exited ?? Effect.map(exec.alive(target.pid), (a) => !a)
    const gone = target.group
      ? Effect.zipWith(exited, exec.groupAlive(target.pid), (leaderGone, members) => leaderGone && !members)
      : exited
    const signal = (s: NodeJS.Signals) =>
      Effect.flatMap(exited, (leaderGone) => exec.signal(target.pid, s, { group: target.group, leaderToo: !leaderGone }))
    // Gone already (the leader exited, no member left): its pid may belong to someone else by now.
    if (yield* gone) return "terminated" as const
    yield* signal("SIGTERM")
    if (yield* waitUntil(gone, grace)) return "terminated" as const
    if (target.killExpected !== true) {
      yield* Console.error(
        `autotune: ${target.name} did not exit within ${Duration.format(Duration.decode(grace))} of SIGTERM; sending SIGKILL`
      )
    }
    yield* signal("SIGKILL")
    return (yield* waitUntil(gone, AFTER_SIGKILL)) ? "killed" as const : "survived" as const
  }))
