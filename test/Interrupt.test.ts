import { describe, expect, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { Effect } from "effect"
import { portOpen } from "../src/system/Ports.js"
import { pidAlive } from "../src/system/Pids.js"
import { sleep, startCli, tempDir, waitFor, logFiles } from "./support/cli.js"
import { readRows } from "./support/db.js"
import { mediumModelPath, repoRoot } from "./support/models.js"

const fake = Path.join(repoRoot, "fixtures", "fake-provider.mjs")
const alive = pidAlive
/**
 * Whether `pid` is gone within 3 s: a provider runs under bin/provider-shim.mjs, so once its
 * group is stopped it is reaped by init, a moment after the tuner has exited.
 */
const gone = async (pid: number) => {
  await waitFor(() => !alive(pid), 3000)
  return !alive(pid)
}
/**
 * Whether nothing listens on 127.0.0.1:`port` within 3 s. A SIGKILLed process's listening socket can
 * outlive it by a moment: seen here as a LISTEN socket with no owner, accepting, for up to ~300 ms
 * after the provider was already a zombie; then gone. A provider left behind keeps it for good.
 */
const portClosed = async (port: number) => {
  const open = () => Effect.runPromise(portOpen(port))
  for (let waited = 0; waited < 3000 && (await open()); waited += 100) await sleep(100)
  return !(await open())
}

/** pid and port of the one running provider whose command line matches `pattern` (pgrep -f). */
const providerOf = (pattern: string) => {
  // The provider itself, not the bin/provider-shim.mjs that runs it (its argv carries the same words).
  const lines = ChildProcess.execFileSync("pgrep", ["-a", "-f", pattern]).toString().trim().split("\n")
    .filter((l) => !l.includes("provider-shim.mjs"))
  expect(lines).toHaveLength(1)
  const argv = lines[0]!.split(" ")
  return { pid: Number(argv[0]), port: Number(argv[argv.indexOf("--port") + 1]) }
}

/**
 * Starts `autotune tune <args>`, waits until a provider matching `pattern` is
 * up and `settleMs` more (a probe in flight), then sends `signals` to the CLI,
 * `gapMs` apart. Returns the CLI's exit code, the database and the provider.
 */
const interruptRun = async (
  args: ReadonlyArray<string>,
  pattern: string,
  signals: ReadonlyArray<NodeJS.Signals>,
  settleMs = 1500,
  gapMs = 500
) => {
  const dir = tempDir()
  const db = Path.join(dir, "runs.db")
  const { child, exited } = startCli(["tune", ...args, "--db-path", db], { XDG_DATA_HOME: dir })
  const logs = Path.join(dir, "logs")
  await waitFor(() => logFiles(logs).length > 0, 15_000)
  await sleep(settleMs)
  const provider = providerOf(pattern)
  for (const [i, s] of signals.entries()) {
    if (i > 0) await sleep(gapMs)
    child.kill(s)
  }
  return { code: await exited, db, provider }
}

const fakeArgs = (model: string) => [
  "--provider", "macprovider", "--provider-bin", fake, "--candidate-models", model, "--target-context", "100"
]

describe("interruption (SPEC H-4, §2: no candidate provider outlives the run)", () => {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it(`H-4 ${signal} during a probe: exit 130, run row interrupted with ended_at NULL, provider stopped`, async () => {
      // slow-probe: pre-warm is quick, every measured request takes 60 s, so the signal lands in a probe.
      const { code, db, provider } = await interruptRun(fakeArgs("slow-probe"), "fake-provider.mjs serve --model slow-probe", [signal])
      expect(code).toBe(130)
      expect(await gone(provider.pid)).toBe(true)
      expect(await portClosed(provider.port)).toBe(true)
      const runs = await readRows<{ exit_reason: string; ended_at: string | null }>(db, "SELECT * FROM tune_runs")
      expect(runs).toEqual([expect.objectContaining({ exit_reason: "interrupted", ended_at: null })])
    })
  }

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it(`H-4 ${signal} during pre-warm: exit 130, run row interrupted, provider stopped`, async () => {
      // slow-warm: the 1-token pre-warm requests take 60 s; probes would be quick.
      const { code, db, provider } = await interruptRun(fakeArgs("slow-warm"), "fake-provider.mjs serve --model slow-warm", [signal])
      expect(code).toBe(130)
      expect(await gone(provider.pid)).toBe(true)
      expect(await portClosed(provider.port)).toBe(true)
      const runs = await readRows<{ exit_reason: string; ended_at: string | null }>(db, "SELECT * FROM tune_runs")
      expect(runs).toEqual([expect.objectContaining({ exit_reason: "interrupted", ended_at: null })])
      const trials = await readRows(db, "SELECT * FROM tune_trials")
      expect(trials).toEqual([]) // the interrupted trial wrote no row
    })

    it(`H-4 ${signal} during Stage 2: exit 130, run row interrupted, no recommendation, the cell's provider stopped`, async () => {
      // Stage 1 (no knobs) is quick; the kv-bits cell's provider takes 60 s per request.
      const dir = tempDir()
      const db = Path.join(dir, "runs.db")
      const { child, exited } = startCli(
        ["tune", ...fakeArgs("ok-5"), "--kv-bits-axis", "8", "--stage1-replicates", "1", "--db-path", db],
        { XDG_DATA_HOME: dir, FAKE_PROVIDER_SLOW_FLAG: "--kv-bits" }
      )
      const pattern = "fake-provider.mjs serve --model ok-5 .*--kv-bits 8"
      await waitFor(() => ChildProcess.spawnSync("pgrep", ["-f", pattern]).status === 0, 15_000)
      await sleep(500)
      const provider = providerOf(pattern)
      child.kill(signal)
      expect(await exited).toBe(130)
      expect(await gone(provider.pid)).toBe(true)
      expect(await portClosed(provider.port)).toBe(true)
      const runs = await readRows<{ exit_reason: string; ended_at: string | null; recommendation_json: string | null }>(
        db, "SELECT * FROM tune_runs")
      expect(runs).toEqual([expect.objectContaining({ exit_reason: "interrupted", ended_at: null, recommendation_json: null })])
      const trials = await readRows<{ stage: number; kept: number }>(db, "SELECT stage, kept FROM tune_trials")
      expect(trials).toEqual([{ stage: 1, kept: 0 }])
    })
  }

  it("H-4 a second Ctrl-C while a provider that ignores SIGTERM is being stopped does not skip the SIGKILL", async () => {
    const { code, provider } = await interruptRun(fakeArgs("stubborn-60000"), "fake-provider.mjs serve --model stubborn-60000",
      ["SIGINT", "SIGINT"], 1500, 1000)
    expect(code).toBe(130)
    expect(await gone(provider.pid)).toBe(true)
    expect(await portClosed(provider.port)).toBe(true)
  }, 60_000)

  it("H-4 SIGINT while the real embedded provider serves a probe: exit 130, its process group gone", async () => {
    const model = mediumModelPath()
    const { code, db, provider } = await interruptRun(
      ["--candidate-models", model, "--target-context", "1536", "--stage1-replicates", "20"],
      `autotune.js serve --model ${model}`,
      ["SIGINT"],
      3000
    )
    expect(code).toBe(130)
    expect(await gone(provider.pid)).toBe(true)
    expect(await portClosed(provider.port)).toBe(true)
    const runs = await readRows<{ exit_reason: string }>(db, "SELECT exit_reason FROM tune_runs")
    expect(runs).toEqual([{ exit_reason: "interrupted" }])
  }, 60_000)

  it("§2 a tuner killed with SIGKILL (no finalizer can run) still leaves no embedded provider behind", async () => {
    const model = mediumModelPath()
    const { code, provider } = await interruptRun(
      ["--candidate-models", model, "--target-context", "1536", "--stage1-replicates", "20"],
      `autotune.js serve --model ${model}`,
      ["SIGKILL"],
      3000
    )
    expect(code).toBeNull()
    // The provider watches its parent (AUTOTUNE_PARENT_PID) once a second.
    for (let i = 0; i < 100 && alive(provider.pid); i++) await sleep(100)
    expect(await gone(provider.pid)).toBe(true)
    expect(await portClosed(provider.port)).toBe(true)
  }, 60_000)
})
