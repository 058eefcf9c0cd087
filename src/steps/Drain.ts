/**
 * The drain (SPEC E-2, L-2): stops the operator's running provider for the
 * tune and restores it afterwards, as one scoped resource, so the restore runs
 * exactly once on every exit path; and, since a tuner can die without running
 * finalizers (SIGKILL, a heap OOM), a journal on disk lets the next tune or
 * `autotune restore` bring back what a dead tuner had drained.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import { Clock, Console, Duration, Effect, Option, type Scope } from "effect"
import { ProviderConflict } from "../domain/AutotuneError.js"
import { Exec, stopProcess, waitUntil } from "../services/Exec.js"
import { type ProcessInfo, ProcessTable } from "../services/ProcessTable.js"
import { type JobState, ServiceManager } from "../services/ServiceManager.js"
import {
  DrainJournal,
  readJournal,
  removeJournal,
  type StoppedProcess,
  writeJournal
} from "../system/DrainJournal.js"
import { portOpen } from "../system/Ports.js"
import { selfIdentity } from "../system/ProcessIdentity.js"
import { conflicting, describeFindings, detectProviders, type Findings, type PreflightOptions } from "./Preflight.js"

/** How long a drained foreground provider (or the job's process) gets after SIGTERM before SIGKILL (SPEC E-2 grace period). */
export const DRAIN_GRACE = Duration.seconds(10)

/** How long a drained provider's port may stay open after it exited. */
const PORT_CLOSE_LIMIT = Duration.seconds(10)

/**
 * How long after the drain the provider must stay down before the tune
 * starts: a supervisor that restarts it within this is a conflict, not a
 * silent neighbour of the candidates.
 */
export const DRAIN_SETTLE = Duration.seconds(1)

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
const snapshot = (p: ProcessInfo): StoppedProcess => {
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

/**
 * Whether a process with `s`'s exact command line is in `table` (read when
 * the restore began): never stopped, or already brought back (by hand, or by a
 * supervisor): restarting it would make a second instance.
 */
const alreadyRunning = (s: StoppedProcess, table: ReadonlyArray<ProcessInfo>): boolean =>
  table.some((p) => p.argv.length === s.argv.length && p.argv.every((a, i) => a === s.argv[i]))

/** SIGTERM, wait for exit, SIGKILL after DRAIN_GRACE (announced, `stopProcess`), then wait for its port to close (SPEC E-2). */
const stopForeground = (p: ProcessInfo) =>
  Effect.gen(function*() {
    yield* Console.error(`autotune: draining foreground provider pid ${p.pid} (SIGTERM)`)
    const result = yield* stopProcess({ pid: p.pid, group: false, name: `provider pid ${p.pid}` }, DRAIN_GRACE)
    if (result === "survived") return yield* Effect.fail(`provider pid ${p.pid} survived SIGKILL`)
    const port = portOf(p.argv)
    if (port !== null && !(yield* waitUntil(Effect.map(portOpen(port), (open) => !open), PORT_CLOSE_LIMIT))) {
      return yield* Effect.fail(`port ${port} of provider pid ${p.pid} is still open after it exited`)
    }
  })

/**
 * Restarts a drained foreground provider with its original argv, cwd and
 * environment, detached in a process group of its own (a terminal's Ctrl-C
 * does not reach it), unless it still runs (it was never stopped). Reports a
 * failed restart as failed.
 */
const restartForeground = (s: StoppedProcess, table: ReadonlyArray<ProcessInfo>) =>
  Effect.suspend(() =>
    alreadyRunning(s, table)
      ? Console.error(`autotune: the foreground provider (was pid ${s.pid}) runs already; not restarted: ${s.argv.join(" ")}`).pipe(
        Effect.as(true)
      )
      : Effect.flatMap(Exec, (exec) =>
      exec.spawn(s.argv[0]!, s.argv.slice(1), {
        output: "ignore",
        cwd: s.cwd ?? process.cwd(),
        env: s.env ?? process.env,
        ownGroup: true,
        unref: true
      })).pipe(
        Effect.matchEffect({
          onFailure: (e) =>
            Console.error(`autotune: RESTORE FAILED, could not restart the foreground provider (was pid ${s.pid}): ${e.message}`)
              .pipe(Effect.as(false)),
          onSuccess: (c) =>
            Console.error(`autotune: restarted the foreground provider (was pid ${s.pid}, now pid ${c.pid})`).pipe(Effect.as(true))
        })
      ))

/** What a restore came to: what failed (empty: all came back), and the journal of what is still to restore (null: nothing). */
export interface RestoreOutcome {
  readonly failed: ReadonlyArray<string>
  readonly left: DrainJournal | null
}

/**
 * Brings back what `j` drained (SPEC E-2): the job (`systemctl --user start`,
 * a no-op for a unit that runs; `launchctl bootstrap gui/<uid>
 * ~/Library/LaunchAgents/<label>.plist` unless the job is loaded again, since
 * bootstrapping a loaded job fails), then the foreground providers, restarted only when the drain
 * was asked to (`--restart-foreground`, and only if not still running), else
 * their command is said. Runs uninterruptibly: a second Ctrl-C cannot cut a
 * restore short, and the service manager's command runs in a process group of
 * its own, out of the terminal's reach (ServiceManager). Returns what failed
 * and a journal of just that (to try again later), or null when all came back.
 */
export const restoreDrained = (j: DrainJournal): Effect.Effect<RestoreOutcome, never, ServiceManager | Exec | ProcessTable> =>
  Effect.uninterruptible(Effect.gen(function*() {
    const manager = yield* ServiceManager
    const failed: Array<string> = []
    let jobLeft = false
    if (j.job && j.kind !== "none") {
      // systemd: starting a unit that runs is a no-op, and a stop that outlasted its command still
      // completes in systemd, so the start is always sent. launchd: bootstrapping a loaded job
      // fails, so a job that is back is left alone; but the drained process itself (same pid) is
      // not "back" — a bootout still under way gets the grace to finish before we look again.
      let back = false
      if (j.kind === "launchd") {
        const stillOld = (st: JobState) => st._tag === "Running" && j.job_pid != null && st.pid === j.job_pid
        let state = yield* manager.jobState(j.kind, j.label)
        if (stillOld(state)) {
          const exec = yield* Exec
          yield* waitUntil(Effect.map(exec.alive(j.job_pid!), (a) => !a), DRAIN_GRACE)
          state = yield* manager.jobState(j.kind, j.label)
        }
        back = state._tag === "Running" || state._tag === "Loaded"
      }
      if (back) {
        yield* Console.error(`autotune: ${j.kind} job ${j.label} is already back; nothing to start`)
      } else {
        yield* manager.startJob(j.kind, j.label).pipe(
          Effect.matchEffect({
            onFailure: (e) =>
              Effect.sync(() => {
                failed.push(`${j.kind} job ${j.label}: ${e}`)
                jobLeft = true
              }).pipe(Effect.zipRight(Console.error(`autotune: RESTORE FAILED, start the provider by hand: ${e}`))),
            onSuccess: () => Console.error(`autotune: restored ${j.kind} job ${j.label}`)
          })
        )
      }
    }
    const foregroundLeft: Array<StoppedProcess> = []
    // Read once: what runs now decides which drained providers are already back.
    const table = j.restart_foreground && j.foreground.length > 0 ? yield* Effect.flatMap(ProcessTable, (t) => t.list) : []
    for (const s of j.foreground) {
      if (!j.restart_foreground) {
        yield* Console.error(
          `autotune: the drained foreground provider (pid ${s.pid}) was not restarted (pass --restart-foreground); its command was: ${
            s.argv.join(" ")
          }`
        )
      } else if (!(yield* restartForeground(s, table))) {
        failed.push(`foreground provider ${s.argv.join(" ")}`)
        foregroundLeft.push(s)
      }
    }
    const left = jobLeft || foregroundLeft.length > 0 ? new DrainJournal({ ...j, job: jobLeft, foreground: foregroundLeft }) : null
    return { failed, left }
  }))

/**
 * Restores `j` and settles its journal at `file` in one uninterruptible step:
 * removed when everything came back, rewritten with what did not otherwise
 * (so nothing is restored twice, and nothing is forgotten). Returns what failed.
 */
const restoreAndSettle = (j: DrainJournal, file: string): Effect.Effect<ReadonlyArray<string>, never, ServiceManager | Exec | ProcessTable> =>
  Effect.uninterruptible(Effect.gen(function*() {
    const out = yield* restoreDrained(j)
    const narrowed = yield* Effect.sync(() => {
      if (out.left === null) return removeJournal(file), true
      try {
        writeJournal(file, out.left)
        return true
      } catch {
        // Never keep the old one: what did come back would be started again.
        return removeJournal(file), false
      }
    })
    if (!narrowed) yield* Console.error(`autotune: cannot rewrite the drain journal ${file}; bring back by hand: ${out.failed.join("; ")}`)
    return out.failed
  }))

/**
 * What an earlier, dead tuner's drain journal came to: none, unreadable,
 * written on another host (a shared data directory: restored there, never
 * here), or restored (with what failed).
 */
export type JournaledDrain =
  | { readonly _tag: "None" }
  | { readonly _tag: "Unreadable" }
  | { readonly _tag: "Elsewhere"; readonly host: string }
  | { readonly _tag: "Restored"; readonly failed: ReadonlyArray<string> }

/**
 * Restores the drain journaled at `file` (SPEC L-2), saying so on stderr,
 * exactly once: the journal is removed (or narrowed to what failed) in the
 * same uninterruptible step; what runs already is never started twice. The
 * caller holds the database's run lock: the tune that wrote the journal held
 * it too until it removed the journal, so a journal found under the lock was
 * left by a tuner that died. One that cannot be read, or that was written on
 * another host (a shared data directory), is reported and left alone. Never fails.
 */
export const restoreJournaled = (file: string): Effect.Effect<JournaledDrain, never, ServiceManager | Exec | ProcessTable> =>
  Effect.gen(function*() {
    const found = readJournal(file)
    if (Option.isNone(found)) return { _tag: "None" } as const
    const j = found.value
    if (j === "Unreadable") {
      yield* Console.error(
        `autotune: the drain journal ${file} cannot be read; restore the provider by hand, then \`autotune restore --forget\` (or delete the file)`
      )
      return { _tag: "Unreadable" } as const
    }
    if (j.tuner.host !== undefined && j.tuner.host !== os.hostname()) {
      yield* Console.error(
        `autotune: the drain journal ${file} was written on ${j.tuner.host}, not here: run \`autotune restore\` there`
      )
      return { _tag: "Elsewhere", host: j.tuner.host } as const
    }
    yield* Console.error(
      `autotune: restoring what an earlier tune (pid ${j.tuner.pid}${j.tuner.host === undefined ? "" : ` on ${j.tuner.host}`}, drained at ${j.drained_at}) stopped and never restored: ${
        [...(j.job ? [`${j.kind} job ${j.label}`] : []), ...j.foreground.map((s) => `foreground provider pid ${s.pid}`)].join("; ")
      }`
    )
    return { _tag: "Restored", failed: yield* restoreAndSettle(j, file) } as const
  })

/**
 * Drain and restore as one scoped resource (SPEC E-2, L-2). Before anything is
 * stopped, what pre-flight found is journaled at `journal` (fsynced): the job
 * and each foreground provider's argv, cwd and environment. Acquire then stops
 * the job (`launchctl bootout gui/<uid>/<label>` or `systemctl --user stop
 * <label>`, ServiceManager.stopJob, in its own process group) and waits up to
 * DRAIN_GRACE for the job's process to exit, and stops each foreground
 * provider (SIGTERM, wait for exit and for its port to close, SIGKILL only
 * after DRAIN_GRACE, announced). Then the provider must stay down for
 * DRAIN_SETTLE: one that is running again (a supervisor restarted it) is a
 * conflict. Release restores (`restoreDrained`) exactly once and removes the
 * journal. Returns whether anything comes back when the scope closes (a job,
 * or foreground providers being restarted). Fails with ProviderConflict (SPEC
 * E-2) when the journal cannot be written (nothing stopped), a stop fails, or
 * the provider came back; what it had stopped is restored when the scope
 * closes. Restore failures are reported on stderr (they cannot fail a release).
 */
export const drain = (
  found: Findings,
  o: { readonly restartForeground: boolean; readonly journal: string; readonly preflight: PreflightOptions }
): Effect.Effect<boolean, ProviderConflict, Scope.Scope | ServiceManager | Exec | ProcessTable> =>
  Effect.gen(function*() {
    const manager = yield* ServiceManager
    const exec = yield* Exec
    yield* Console.error(`autotune: draining for the tune: ${describeFindings(found).join("; ")}`)
    const journal = new DrainJournal({
      tuner: selfIdentity(),
      drained_at: new Date(yield* Clock.currentTimeMillis).toISOString(),
      kind: found.kind,
      label: found.label,
      job: found.jobRunning,
      job_pid: found.jobPid,
      // Read before the signals (they are gone after).
      foreground: found.foreground.map(snapshot),
      restart_foreground: o.restartForeground
    })
    // Journaled and its restore registered in one step (no interrupt between the two), before anything
    // is stopped, so every exit path (failure, interrupt, budget) restores whatever the drain had stopped.
    // An earlier drain's journal is never overwritten: it would be lost.
    yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          if (Option.isSome(readJournal(o.journal))) throw new Error(`an earlier drain's journal is still there; run \`autotune restore\` first`)
          writeJournal(o.journal, journal)
        },
        catch: (e) =>
          new ProviderConflict({
            message: `drain refused, nothing was stopped: ${o.journal}: ${e instanceof Error ? e.message : String(e)}`
          })
      }),
      () => restoreAndSettle(journal, o.journal)
    )
    // Stopping runs uninterruptibly with bounded waits (≤ 10 s for the job's command and
    // 10 s for its process, 10 s grace + 5 s after SIGKILL + 10 s for the port per process,
    // 1 s to settle): a Ctrl-C or a budget lands after it, never between a SIGTERM and its SIGKILL.
    yield* Effect.uninterruptible(Effect.gen(function*() {
      if (found.jobRunning && found.kind !== "none") {
        yield* manager.stopJob(found.kind, found.label)
        if (found.jobPid !== null) {
          const jobPid = found.jobPid
          const exited = yield* waitUntil(Effect.map(exec.alive(jobPid), (a) => !a), DRAIN_GRACE)
          if (!exited) yield* Effect.fail(`the job's process pid ${jobPid} still runs ${Duration.format(DRAIN_GRACE)} after the stop`)
        }
      }
      for (const p of found.foreground) yield* stopForeground(p)
      yield* Effect.sleep(DRAIN_SETTLE)
      const again = yield* detectProviders(o.preflight)
      if (conflicting(again)) {
        yield* Effect.fail(
          `the provider is running again after the drain (a supervisor restarts it?): ${describeFindings(again).join("; ")}`
        )
      }
    })).pipe(Effect.mapError((e) => new ProviderConflict({ message: `drain failed, nothing was tuned: ${e}` })))
    return found.jobRunning || (o.restartForeground && found.foreground.length > 0)
  })
