import * as ChildProcess from "node:child_process"
import { Effect } from "effect"

/** Service managers pre-flight knows (SPEC E-1). */
export type ServiceManagerKind = "launchd" | "systemd" | "none"

/** A job's state: running (with its pid when known), loaded but not running, or absent. */
export type JobState =
  | { readonly _tag: "Running"; readonly pid: number | null }
  | { readonly _tag: "Loaded" }
  | { readonly _tag: "Absent" }

/** Output of a command run through PATH, with a 5 s bound; `code` null when it could not run. */
const run = (command: string, args: ReadonlyArray<string>) =>
  Effect.async<{ readonly code: number | null; readonly stdout: string }>((resume) => {
    const child = ChildProcess.execFile(command, [...args], { timeout: 5000 }, (err, stdout) => {
      // execFile's error carries the exit status as a number, or a string errno (ENOENT) when it could not run.
      const status = (err as { code?: unknown } | null)?.code
      resume(Effect.succeed({ code: err === null ? 0 : typeof status === "number" ? status : null, stdout: String(stdout) }))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/**
 * `auto` resolved (SPEC E-1): launchd on macOS; on Linux systemd user units
 * when `systemctl --user is-system-running` answers with a state; else none.
 */
export const resolveServiceManager = (
  wanted: ServiceManagerKind | "auto"
): Effect.Effect<ServiceManagerKind> =>
  wanted !== "auto"
    ? Effect.succeed(wanted)
    : process.platform === "darwin"
    ? Effect.succeed("launchd")
    : process.platform === "linux"
    ? run("systemctl", ["--user", "is-system-running"]).pipe(
      Effect.map((r) =>
        /^(running|degraded|starting|initializing|maintenance|stopping)$/m.test(r.stdout) ? "systemd" : "none"
      )
    )
    : Effect.succeed("none")

/**
 * The state of the provider's job (SPEC E-1). launchd: the `label` line of
 * `launchctl list` ("PID\tStatus\tLabel"; a PID of `-` means loaded but not
 * running). systemd: `systemctl --user is-active <label>` ("active" is
 * running, its pid from `systemctl --user show -p MainPID --value`;
 * "inactive"/"failed" is loaded). Both tools are
 * resolved through PATH. A tool that cannot run counts as no job.
 */
export const jobState = (kind: ServiceManagerKind, label: string): Effect.Effect<JobState> => {
  switch (kind) {
    case "none":
      return Effect.succeed({ _tag: "Absent" })
    case "launchd":
      return run("launchctl", ["list"]).pipe(Effect.map((r): JobState => {
        const line = r.stdout.split("\n").map((l) => l.trim().split(/\s+/)).find((cols) => cols[2] === label)
        if (line === undefined) return { _tag: "Absent" }
        return line[0] === "-" ? { _tag: "Loaded" } : { _tag: "Running", pid: Number(line[0]) || null }
      }))
    case "systemd":
      return run("systemctl", ["--user", "is-active", label]).pipe(Effect.flatMap((r) => {
        const state = r.stdout.trim().split("\n")[0]
        if (state === "active" || state === "activating" || state === "reloading") {
          // The unit's main process, so pre-flight does not count it (or its children) again as a foreground one.
          return run("systemctl", ["--user", "show", "-p", "MainPID", "--value", label]).pipe(Effect.map((m): JobState => {
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
