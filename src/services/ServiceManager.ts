/**
 * The operator's service manager (SPEC E-1, E-2): launchd on macOS, systemd
 * user units on Linux. Pre-flight asks it whether the provider's job runs, the
 * drain stops and restores that job through it, and `--apply` tells the
 * operator how to restart it.
 */
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer, Ref } from "effect"
import { shellQuote } from "../domain/Shell.js"
import { Exec } from "./Exec.js"

/** Service managers pre-flight knows (SPEC E-1). */
export type ServiceManagerKind = "launchd" | "systemd" | "none"

/** A job's state: running (with its pid when known), loaded but not running, or absent. */
export type JobState =
  | { readonly _tag: "Running"; readonly pid: number | null }
  | { readonly _tag: "Loaded" }
  | { readonly _tag: "Absent" }

/** Bound of a status query (`launchctl list`, `systemctl --user is-active`), ms. */
const QUERY_TIMEOUT_MS = 5000

/** Bound of a stop or start command, ms: a stop that outlasts it still completes in the manager. */
export const JOB_COMMAND_TIMEOUT_MS = 10_000

/**
 * The commands that stop and start a job (SPEC E-2): launchd `bootout
 * gui/<uid>/<label>` / `bootstrap gui/<uid> ~/Library/LaunchAgents/<label>.plist`,
 * systemd `systemctl --user stop|start <label>`. `uid` is the operator's numeric user id.
 */
export const jobCommands = (kind: "launchd" | "systemd", label: string, uid: number) =>
  kind === "launchd"
    ? {
      stop: ["launchctl", ["bootout", `gui/${uid}/${label}`]] as const,
      start: ["launchctl", ["bootstrap", `gui/${uid}`, path.join(os.homedir(), "Library", "LaunchAgents", `${label}.plist`)]] as const
    }
    : { stop: ["systemctl", ["--user", "stop", label]] as const, start: ["systemctl", ["--user", "start", label]] as const }

/**
 * What to tell the operator after `--apply` so the provider reads the new
 * config.yaml (SPEC F-3 "then print how to restart the provider"). Two
 * lines, LF-separated, no trailing newline: a sentence, then one indented
 * command to paste:
 * - launchd: `launchctl kickstart -k gui/<uid>/<label>` (restarts the job in place);
 * - systemd: `systemctl --user restart <label>`;
 * - none: the provider is not a service job: restart it by hand, e.g. `serveCommand`.
 * `label` is the launchd label or systemd user unit (`--service-label`), quoted
 * for a POSIX shell when needed; `uid` is the operator's numeric user id
 * (`process.getuid()`); `serveCommand` is the F-1 serve command line, as is.
 */
export const restartInstructions = (
  manager: ServiceManagerKind,
  label: string,
  serveCommand: string,
  uid: number
): string => {
  switch (manager) {
    case "launchd":
      return `restart the provider so it reads the new config:\n  launchctl kickstart -k ${shellQuote(`gui/${uid}/${label}`)}`
    case "systemd":
      return `restart the provider so it reads the new config:\n  systemctl --user restart ${shellQuote(label)}`
    case "none":
      return `restart your provider so it reads the new config, e.g.:\n  ${serveCommand}`
  }
}

/**
 * The service manager, through `Exec` (tools resolved on PATH).
 * - `resolve(wanted)`: `auto` resolved (SPEC E-1): launchd on macOS; on Linux
 *   systemd user units when `systemctl --user is-system-running` answers with
 *   a state; else none.
 * - `jobState(kind, label)` (SPEC E-1): launchd reads the `label` line of
 *   `launchctl list` ("PID\tStatus\tLabel"; a PID of `-` means loaded but not
 *   running); systemd asks `systemctl --user is-active <label>` ("active" is
 *   running, its pid from `systemctl --user show -p MainPID --value`;
 *   "inactive"/"failed" is loaded). A tool that cannot run counts as no job.
 * - `stopJob` / `startJob` (SPEC E-2): the `jobCommands`, 10 s at most each;
 *   fail with a message (the command and its stderr) when it exits non-zero or
 *   cannot run.
 * Every command runs in its own process group, out of reach of the terminal's
 * Ctrl-C (issue "lifecycle round 2", item 4).
 * Tests replace it with `ServiceManager.Stub(kind, job)`.
 */
export class ServiceManager extends Effect.Service<ServiceManager>()("llm-autotune/ServiceManager", {
  effect: Effect.gen(function*() {
    const exec = yield* Exec
    // Every command runs in a process group of its own: a terminal's Ctrl-C (sent to the
    // tuner's group) must not kill a `systemctl start` that is bringing the provider back.
    const query = (command: string, args: ReadonlyArray<string>) =>
      exec.run(command, args, { timeoutMs: QUERY_TIMEOUT_MS, ownGroup: true })
    const command = (cmd: readonly [string, ReadonlyArray<string>]): Effect.Effect<void, string> =>
      Effect.flatMap(exec.run(cmd[0], cmd[1], { timeoutMs: JOB_COMMAND_TIMEOUT_MS, ownGroup: true }), (r) =>
        r.code === 0
          ? Effect.void
          : Effect.fail(`${cmd[0]} ${cmd[1].join(" ")}: ${r.stderr.trim() || r.error || `exit code ${r.code}`}`))
    const uid = process.getuid?.() ?? 0

    const resolve = (wanted: ServiceManagerKind | "auto"): Effect.Effect<ServiceManagerKind> =>
      wanted !== "auto"
        ? Effect.succeed(wanted)
        : process.platform === "darwin"
        ? Effect.succeed("launchd")
        : process.platform === "linux"
        ? query("systemctl", ["--user", "is-system-running"]).pipe(
          Effect.map((r) =>
            /^(running|degraded|starting|initializing|maintenance|stopping)$/m.test(r.stdout) ? "systemd" : "none"
          )
        )
        : Effect.succeed("none")

    const jobState = (kind: ServiceManagerKind, label: string): Effect.Effect<JobState> => {
      switch (kind) {
        case "none":
          return Effect.succeed({ _tag: "Absent" })
        case "launchd":
          return query("launchctl", ["list"]).pipe(Effect.map((r): JobState => {
            const line = r.stdout.split("\n").map((l) => l.trim().split(/\s+/)).find((cols) => cols[2] === label)
            if (line === undefined) return { _tag: "Absent" }
            return line[0] === "-" ? { _tag: "Loaded" } : { _tag: "Running", pid: Number(line[0]) || null }
          }))
        case "systemd":
          return query("systemctl", ["--user", "is-active", label]).pipe(Effect.flatMap((r) => {
            const state = r.stdout.trim().split("\n")[0]
            if (state === "active" || state === "activating" || state === "reloading") {
              // The unit's main process, so pre-flight does not count it (or its children) again as a foreground one.
              return query("systemctl", ["--user", "show", "-p", "MainPID", "--value", label]).pipe(Effect.map((m): JobState => {
                const pid = Number(m.stdout.trim())
                return { _tag: "Running", pid: Number.isInteger(pid) && pid > 0 ? pid : null }
              }))
            }
            return Effect.succeed<JobState>(
              state === "inactive" || state === "failed" || state === "deactivating" ? { _tag: "Loaded" } : { _tag: "Absent" }
            )
          }))
      }
    }

    return {
      resolve,
      jobState,
      stopJob: (kind: "launchd" | "systemd", label: string) => command(jobCommands(kind, label, uid).stop),
      startJob: (kind: "launchd" | "systemd", label: string) => command(jobCommands(kind, label, uid).start)
    }
  }),
  dependencies: [Exec.Default]
}) {
  /**
   * A stand-in service manager for tests: `auto` resolves to `kind`, every
   * label's job is in `job` state, and each stop and start succeeds and is
   * appended to `journal` (when given) as `stop <label>` / `start <label>`.
   */
  static readonly Stub = (
    kind: ServiceManagerKind,
    job: JobState,
    journal?: Ref.Ref<ReadonlyArray<string>>
  ): Layer.Layer<ServiceManager> => {
    const note = (line: string) => (journal === undefined ? Effect.void : Ref.update(journal, (ls) => [...ls, line]))
    return Layer.succeed(
      ServiceManager,
      ServiceManager.make({
        resolve: (wanted) => Effect.succeed(wanted === "auto" ? kind : wanted),
        jobState: (k) => Effect.succeed(k === "none" ? { _tag: "Absent" } : job),
        stopJob: (_, label) => note(`stop ${label}`),
        startJob: (_, label) => note(`start ${label}`)
      })
    )
  }
}
