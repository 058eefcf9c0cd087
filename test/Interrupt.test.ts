import { describe, expect, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { cliPath, tempDir } from "./support/cli.js"
import { readRows } from "./support/db.js"
import { repoRoot } from "./support/models.js"

const fake = Path.join(repoRoot, "fixtures", "fake-provider.mjs")
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Starts a tune against one fake candidate, waits until its provider is serving a probe, then signals the CLI. */
const interruptDuringProbe = async (model: string, signal: NodeJS.Signals) => {
  const dir = tempDir()
  const db = Path.join(dir, "runs.db")
  const argvLog = Path.join(dir, "argv.jsonl")
  const child = ChildProcess.spawn(process.execPath, [
    cliPath, "tune", "--provider", "macprovider", "--provider-bin", fake, "--candidate-models", model,
    "--target-context", "100", "--db-path", db
  ], { cwd: repoRoot, env: { ...process.env, FAKE_PROVIDER_ARGV_LOG: argvLog, XDG_DATA_HOME: dir }, stdio: "ignore" })
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  // The provider started and pre-warm finished: its log exists; give the probe a moment to be in flight.
  for (let i = 0; i < 200 && !Fs.existsSync(argvLog); i++) await sleep(50)
  await sleep(1500)
  const port = (JSON.parse(Fs.readFileSync(argvLog, "utf8").split("\n")[0]!) as Array<string>)
  const providerPort = Number(port[port.indexOf("--port") + 1])
  const pids = ChildProcess.execFileSync("pgrep", ["-f", `fake-provider.mjs serve --model ${model} --port ${providerPort}`])
    .toString().trim().split("\n").map(Number)
  expect(pids.length).toBe(1)
  child.kill(signal)
  const code = await exited
  return { code, db, providerPid: pids[0]!, providerPort }
}

const portClosed = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = Net.connect(port, "127.0.0.1")
    s.on("connect", () => (s.destroy(), resolve(false)))
    s.on("error", () => resolve(true))
  })

describe("interruption during a probe (SPEC H-4, §2 no provider outlives the run)", () => {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it(`H-4 ${signal} during a probe: exit 130, run row interrupted with ended_at NULL, provider stopped`, async () => {
      const { code, db, providerPid, providerPort } = await interruptDuringProbe("ok-60000", signal)
      expect(code).toBe(130)
      expect(alive(providerPid)).toBe(false)
      expect(await portClosed(providerPort)).toBe(true)
      const runs = await readRows<{ exit_reason: string; ended_at: string | null }>(db, "SELECT * FROM tune_runs")
      expect(runs).toEqual([expect.objectContaining({ exit_reason: "interrupted", ended_at: null })])
    })
  }

  it("§2 a provider that ignores SIGTERM is SIGKILLed after the grace period, before the CLI exits", async () => {
    const { code, providerPid } = await interruptDuringProbe("stubborn-60000", "SIGINT")
    expect(code).toBe(130)
    expect(alive(providerPid)).toBe(false)
  }, 60_000)
})
