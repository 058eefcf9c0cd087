/**
 * A sandbox for pre-flight and drain tests: a temp dir whose `bin/` holds
 * `macprovider-cli` (a copy of the fake provider, used as --provider-bin and
 * as a stand-in for the operator's provider) and stub `launchctl` and
 * `systemctl` executables, put first on PATH. They behave as the real ones
 * do for one job: the stubs append their argv to `tools.log` when they start
 * and, for a stop or start, `<verb> done` to `tools.done` when they finish;
 * `launchctl list` and `systemctl --user is-active` print $STUB_LAUNCHCTL_OUT /
 * $STUB_SYSTEMCTL_OUT while the job runs (a booted-out launchd job is not
 * listed; a stopped unit is "inactive"), `systemctl --user show` prints
 * $STUB_SYSTEMCTL_MAINPID (0 when stopped); `systemctl --user stop` sleeps
 * $STUB_SYSTEMCTL_STOP_SLEEP seconds, kills the main pid, then exits
 * $STUB_SYSTEMCTL_STOP_EXIT (default 0); `start` sleeps
 * $STUB_SYSTEMCTL_START_SLEEP seconds (a slow restore), `launchctl bootstrap`
 * $STUB_LAUNCHCTL_START_SLEEP.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { runCli, tempDir } from "./cli.js"
import { repoRoot } from "./models.js"

export interface Sandbox {
  readonly dir: string
  readonly bin: string
  readonly db: string
  readonly argvLog: string
}

export const sandbox = (): Sandbox => {
  const dir = tempDir()
  const bin = Path.join(dir, "bin")
  Fs.mkdirSync(bin)
  Fs.copyFileSync(Path.join(repoRoot, "fixtures", "fake-provider.mjs"), Path.join(bin, "macprovider-cli"))
  Fs.chmodSync(Path.join(bin, "macprovider-cli"), 0o755)
  const log = `echo "$(basename "$0") $*" >> "${dir}/tools.log"`
  const done = (verb: string) => `echo "${verb} done" >> "${dir}/tools.done"`
  const stopped = `${dir}/job.stopped`
  Fs.writeFileSync(Path.join(bin, "launchctl"), [
    "#!/bin/sh",
    log,
    "case \"$1\" in",
    `  list) if [ -e "${stopped}" ]; then printf 'PID\\tStatus\\tLabel\\n'; else printf '%b' "$STUB_LAUNCHCTL_OUT"; fi ;;`,
    `  bootout) touch "${stopped}"; ${done("bootout")} ;;`,
    // As the real launchctl: bootstrapping a job that is still loaded fails.
    `  bootstrap) sleep \${STUB_LAUNCHCTL_START_SLEEP:-0}; [ -e "${stopped}" ] || { echo "Bootstrap failed: 5: Input/output error (service already loaded)" >&2; exit 5; }; rm -f "${stopped}"; ${done("bootstrap")} ;;`,
    "esac",
    "exit 0",
    ""
  ].join("\n"), { mode: 0o755 })
  Fs.writeFileSync(Path.join(bin, "systemctl"), [
    "#!/bin/sh",
    log,
    "case \"$2\" in",
    `  is-active) if [ -e "${stopped}" ]; then printf 'inactive\\n'; else printf '%b' "$STUB_SYSTEMCTL_OUT"; fi ;;`,
    `  show) if [ -e "${stopped}" ]; then printf 0; else printf '%s' "$STUB_SYSTEMCTL_MAINPID"; fi ;;`,
    "  stop) sleep ${STUB_SYSTEMCTL_STOP_SLEEP:-0}",
    "    [ -n \"$STUB_SYSTEMCTL_MAINPID\" ] && kill \"$STUB_SYSTEMCTL_MAINPID\" 2>/dev/null",
    `    [ "\${STUB_SYSTEMCTL_STOP_EXIT:-0}" = 0 ] && touch "${stopped}"`,
    `    ${done("stop")}`,
    "    exit ${STUB_SYSTEMCTL_STOP_EXIT:-0} ;;",
    `  start) sleep \${STUB_SYSTEMCTL_START_SLEEP:-0}; rm -f "${stopped}"; ${done("start")} ;;`,
    "esac",
    "exit 0",
    ""
  ].join("\n"), { mode: 0o755 })
  return { dir, bin, db: Path.join(dir, "runs.db"), argvLog: Path.join(dir, "argv.jsonl") }
}

/** The stops and starts the stub service managers finished (`stop done`, `start done`, …), in order. */
export const toolsDone = (s: Sandbox): Array<string> => {
  const f = Path.join(s.dir, "tools.done")
  return Fs.existsSync(f) ? Fs.readFileSync(f, "utf8").trim().split("\n") : []
}

/** The argv lines the stub service managers recorded, in order. */
export const toolCalls = (s: Sandbox): Array<string> => {
  const f = Path.join(s.dir, "tools.log")
  return Fs.existsSync(f) ? Fs.readFileSync(f, "utf8").trim().split("\n") : []
}

/** The environment a sandboxed CLI run gets. */
export const sandboxEnv = (s: Sandbox, env: Record<string, string> = {}) => ({
  PATH: `${s.bin}:${process.env.PATH}`,
  XDG_DATA_HOME: s.dir,
  FAKE_PROVIDER_ARGV_LOG: s.argvLog,
  ...env
})

/** The tune arguments against the sandbox's fake provider, with `candidates` (fake behaviours). */
export const sandboxTuneArgs = (s: Sandbox, candidates = "ok-5") => [
  "tune", "--provider", "macprovider", "--provider-bin", Path.join(s.bin, "macprovider-cli"), "--candidate-models",
  candidates, "--target-context", "100", "--stage1-replicates", "1", "--stage2-replicates", "1", "--db-path", s.db
]

/** Runs `autotune tune` in the sandbox. */
export const sandboxTune = (
  s: Sandbox,
  extra: ReadonlyArray<string>,
  env: Record<string, string> = {},
  candidates = "ok-5"
) => runCli([...sandboxTuneArgs(s, candidates), ...extra], { env: sandboxEnv(s, env) })

/** Starts a long-running stand-in `<name> serve --model ok-5 --port <port>` from the sandbox's bin. */
export const standIn = (s: Sandbox, name: string, port = 0, cwd = s.dir) => {
  const file = Path.join(s.bin, name)
  if (!Fs.existsSync(file)) Fs.copyFileSync(Path.join(s.bin, "macprovider-cli"), file)
  return ChildProcess.spawn(file, ["serve", "--model", "ok-5", "--port", `${port}`], {
    stdio: "ignore",
    cwd,
    env: { ...process.env, STAND_IN_MARK: "operator" }
  })
}

/** Candidate providers the tune started (their argv carries --no-join). */
export const candidateStarts = (s: Sandbox): Array<Array<string>> =>
  (Fs.existsSync(s.argvLog) ? Fs.readFileSync(s.argvLog, "utf8").trim().split("\n") : [])
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Array<string>)
    .filter((a) => a.includes("--no-join"))
