/**
 * Runs the real `autotune` CLI (bin/autotune.js) as a child process, as an
 * operator would, and collects its exit code and output.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { repoRoot } from "./models.js"

/** Exit code (null when killed by a signal), stdout and stderr of one CLI run. */
export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Path of the CLI launcher. */
export const cliPath = Path.join(repoRoot, "bin", "autotune.js")

/**
 * Runs `autotune <args>` to completion (killed after `timeoutMs`), in `cwd`
 * (default the repository). `env` is merged over a copy of this process's environment with XDG dirs pointed
 * at a temp home so nothing leaks into the real user directories.
 */
export const runCli = (
  args: ReadonlyArray<string>,
  opts: { readonly env?: Record<string, string>; readonly timeoutMs?: number; readonly cwd?: string } = {}
): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const child = ChildProcess.spawn(process.execPath, [cliPath, ...args], {
      cwd: opts.cwd ?? repoRoot,
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 240_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

/** A fresh temp directory for one test (database, logs, XDG dirs). */
export const tempDir = (prefix = "autotune-test-"): string => Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))

/** A CLI run in the background: its process, its exit code when it ends, and its stderr so far. */
export interface RunningCli {
  readonly child: ChildProcess.ChildProcess
  readonly exited: Promise<number | null>
  readonly stderr: () => string
}

/**
 * Starts `autotune <args>` without waiting for it (for signals sent mid-run); `env` is merged as in `runCli`.
 * With `ownGroup` it leads a process group of its own, as a shell's foreground job does: send a
 * terminal's Ctrl-C with `process.kill(-child.pid, "SIGINT")` (see `ctrlC`).
 */
export const startCli = (args: ReadonlyArray<string>, env: Record<string, string> = {}, ownGroup = false): RunningCli => {
  const child = ChildProcess.spawn(process.execPath, [cliPath, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
    detached: ownGroup
  })
  let stderr = ""
  child.stderr!.on("data", (d) => (stderr += d))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return { child, exited, stderr: () => stderr }
}

/** What a terminal does on Ctrl-C: SIGINT to the foreground process group (a `startCli(…, true)` run's). */
export const ctrlC = (run: RunningCli): void => {
  try {
    process.kill(-run.child.pid!, "SIGINT")
  } catch { /* the group is gone */ }
}

/** Resolves after `ms` of real time (only for waiting on real processes, never for logic under test). */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls `cond` every 50 ms until it holds, for at most `limitMs`. */
export const waitFor = async (cond: () => boolean, limitMs = 10_000) => {
  for (let waited = 0; waited < limitMs && !cond(); waited += 50) await sleep(50)
}


/**
 * The provider log files under `logsDir` (`logs/<run-id>/<model>-<port>-<unix-ts>-<uuid8>.log`,
 * SPEC E-3), as full paths in start order (by name within each run); none when it does not exist.
 */
export const logFiles = (logsDir: string): Array<string> =>
  !Fs.existsSync(logsDir)
    ? []
    : Fs.readdirSync(logsDir).flatMap((run) => {
      const dir = Path.join(logsDir, run)
      // Files only: a run's `verify/` directory (--apply --verify's provider logs) is not a trial's log.
      return Fs.statSync(dir).isDirectory()
        ? Fs.readdirSync(dir).sort().map((f) => Path.join(dir, f)).filter((f) => Fs.statSync(f).isFile())
        : []
    })
