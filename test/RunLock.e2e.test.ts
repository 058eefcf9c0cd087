import { describe, expect, it, onTestFinished } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { macProvider } from "../src/providers/MacProvider.js"
import { adapterBinary } from "../src/providers/ProviderAdapter.js"
import { dbLockPath, providerLockPath } from "../src/system/RunLock.js"
import { runCli, sleep, startCli, tempDir, logFiles } from "./support/cli.js"
import { readRows } from "./support/db.js"
import { repoRoot } from "./support/models.js"


/**
 * A private copy of the fake provider in `dir`, under a name of its own: pre-flight
 * (SPEC E-1) matches providers by base name, so fake providers of other test runs on
 * this machine are not this test's conflict, nor are this test's theirs.
 */
const fakeIn = (dir: string) => {
  const copy = Path.join(dir, `runlock-fake-${Path.basename(dir)}.mjs`)
  if (!Fs.existsSync(copy)) Fs.copyFileSync(Path.join(repoRoot, "fixtures", "fake-provider.mjs"), copy)
  return copy
}

/** `autotune tune` on the fake provider (default: `fakeIn(dir)`) with one candidate, into `db` (default `<dir>/runs.db`). */
const tuneArgs = (dir: string, model: string, o: { readonly db?: string; readonly bin?: string } = {}) => [
  "tune", "--provider", "macprovider", "--provider-bin", o.bin ?? fakeIn(dir), "--candidate-models", model,
  "--target-context", "100", "--db-path", o.db ?? Path.join(dir, "runs.db")
]
const env = (dir: string) => ({ XDG_DATA_HOME: dir })

/** The two locks a run on `dir` holds: its database's and the fake provider's (UserDirs: XDG on Linux only). */
const locksOf = (dir: string) => [
  dbLockPath(Path.join(dir, "runs.db")),
  process.platform === "darwin"
    ? providerLockPath(adapterBinary(macProvider(fakeIn(dir))))
    : providerLockPath(adapterBinary(macProvider(fakeIn(dir))), Path.join(dir, "llm-autotune"))
]
const holderPid = (lockPath: string) => (JSON.parse(Fs.readFileSync(lockPath, "utf8")) as { pid: number }).pid

/**
 * Starts `autotune tune` with the 60 s candidate and returns once its provider
 * is up (its log file exists) with a probe about to be in flight: the run holds its locks.
 */
const startHolder = async (dir: string) => {
  const { child, exited } = startCli(tuneArgs(dir, "ok-60000"), env(dir))
  // A failed assertion must not leave the run (and its provider) behind: SIGINT stops both.
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGINT")
      await exited
    }
  })
  const logs = Path.join(dir, "logs")
  const logFilesNow = () => logFiles(logs)
  for (let i = 0; i < 300 && logFilesNow().length === 0; i++) await sleep(50)
  expect(logFilesNow()).toHaveLength(1)
  // Its log is named <model>-<port>-<unix-ts>-<uuid8>.log (SPEC E-3).
  const port = Number(/^ok-60000-(\d+)-/.exec(Path.basename(logFilesNow()[0]!))![1])
  return { child, pid: child.pid!, exited, port }
}

describe("one run at a time (issue: run lock; exit 75 EX_TEMPFAIL, SPEC H-2 provider_conflict)", () => {
  it("a second tune on the same database exits 75 naming the first's pid and writes no run row; the first still exits 130 and releases its locks", async () => {
    const dir = tempDir()
    const first = await startHolder(dir)
    const locks = locksOf(dir)
    for (const lock of locks) expect(holderPid(lock)).toBe(first.pid)

    const second = await runCli(tuneArgs(dir, "ok-5"), { env: env(dir) })
    expect(second.code).toBe(75)
    expect(second.stderr).toContain(`(pid ${first.pid}) holds`)
    expect(second.stdout).toBe("")
    for (const lock of locks) expect(holderPid(lock)).toBe(first.pid) // the refused run left them alone

    // The same provider with another database, and the same database with another provider binary.
    const otherDb = Path.join(dir, "other.db")
    const sameProvider = await runCli(tuneArgs(dir, "ok-5", { db: otherDb }), { env: env(dir) })
    expect(sameProvider.code).toBe(75)
    expect(sameProvider.stderr).toContain(`(pid ${first.pid}) holds ${locks[1]}`)
    expect(Fs.existsSync(otherDb)).toBe(false)
    const otherBin = Path.join(dir, "other-fake.mjs")
    Fs.copyFileSync(fakeIn(dir), otherBin)
    const sameDb = await runCli(tuneArgs(dir, "ok-5", { bin: otherBin }), { env: env(dir) })
    expect(sameDb.code).toBe(75)
    expect(sameDb.stderr).toContain(`(pid ${first.pid}) holds ${locks[0]}`)

    first.child.kill("SIGINT")
    expect(await first.exited).toBe(130)
    const runs = await readRows<{ exit_reason: string }>(Path.join(dir, "runs.db"), "SELECT exit_reason FROM tune_runs")
    expect(runs).toEqual([{ exit_reason: "interrupted" }])
    for (const lock of locks) expect(Fs.existsSync(lock)).toBe(false)
  }, 60_000)

  it("a tune killed with SIGKILL leaves stale locks; the next tune takes them over, says so, and finishes (exit 0)", async () => {
    const dir = tempDir()
    const first = await startHolder(dir)
    first.child.kill("SIGKILL")
    expect(await first.exited).toBeNull()
    // The orphaned provider is stopped by its shim (bin/provider-shim.mjs) once the tuner is gone,
    // so pre-flight (SPEC E-1) does not see it as the operator's provider.
    const running = () =>
      ChildProcess.spawnSync("pgrep", ["-f", `${fakeIn(dir)} serve --model ok-60000 --port ${first.port} `]).status === 0
    for (let i = 0; i < 100 && running(); i++) await sleep(50)
    expect(running()).toBe(false)
    const locks = locksOf(dir)
    for (const lock of locks) expect(holderPid(lock)).toBe(first.pid)

    const next = await runCli(tuneArgs(dir, "ok-5"), { env: env(dir) })
    expect(next.code).toBe(0)
    for (const lock of locks) expect(next.stderr).toContain(`taking over stale lock ${lock} from pid ${first.pid}`)
    for (const lock of locks) expect(Fs.existsSync(lock)).toBe(false)
    const runs = await readRows<{ exit_reason: string | null }>(
      Path.join(dir, "runs.db"),
      "SELECT exit_reason FROM tune_runs ORDER BY started_at"
    )
    expect(runs).toEqual([{ exit_reason: null }, { exit_reason: "ok" }])
  }, 60_000)
})
