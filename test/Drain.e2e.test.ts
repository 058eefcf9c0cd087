import { describe, expect, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Effect } from "effect"
import * as Ports from "../src/system/Ports.js"
import { pidAlive } from "../src/system/Pids.js"
import { sleep, startCli, waitFor } from "./support/cli.js"
import { readRows } from "./support/db.js"
import {
  candidateStarts,
  sandbox,
  sandboxEnv,
  sandboxTune,
  sandboxTuneArgs,
  standIn,
  toolCalls
} from "./support/providerSandbox.js"

const alive = pidAlive
const freePort = () => Effect.runPromise(Ports.freePort)
const systemdActive = { STUB_SYSTEMCTL_OUT: "active\\n" }
const systemd = ["--service-manager", "systemd", "--service-label", "macprovider.service", "--drain"]
const stopStart = ["systemctl --user stop macprovider.service", "systemctl --user start macprovider.service"]
const jobCalls = (calls: Array<string>) => calls.filter((c) => !c.includes("is-active") && !c.includes(" show "))

describe("drain and restore as one scoped resource (SPEC E-2)", () => {
  it("E-2 systemd: stop before the first candidate, start exactly once after a successful tune", async () => {
    const s = sandbox()
    const r = await sandboxTune(s, systemd, systemdActive)
    expect(r.code, r.stderr).toBe(0)
    expect(jobCalls(toolCalls(s))).toEqual(stopStart)
    expect(candidateStarts(s).length).toBeGreaterThan(0)
  })

  it("E-2 systemd: restored exactly once when the tune fails (all infeasible)", async () => {
    const s = sandbox()
    const r = await sandboxTune(s, systemd, systemdActive, "http503")
    expect(r.code).toBe(2)
    expect(jobCalls(toolCalls(s))).toEqual(stopStart)
  })

  it("E-2 H-3 systemd: restored exactly once when the budget runs out", async () => {
    const s = sandbox()
    const r = await sandboxTune(s, [...systemd, "--max-duration", "3"], systemdActive, "ok-60000")
    expect(r.code).toBe(3)
    expect(jobCalls(toolCalls(s))).toEqual(stopStart)
  })

  it("E-2 H-4 systemd: restored exactly once on Ctrl-C during a probe, exit 130", async () => {
    const s = sandbox()
    const { child, exited } = startCli([...sandboxTuneArgs(s, "ok-60000"), ...systemd], sandboxEnv(s, systemdActive))
    await waitFor(() => candidateStarts(s).length > 0)
    await sleep(1000)
    child.kill("SIGINT")
    expect(await exited).toBe(130)
    expect(jobCalls(toolCalls(s))).toEqual(stopStart)
  })

  it("E-2 launchd: bootout gui/<uid>/<label>, then bootstrap gui/<uid> ~/Library/LaunchAgents/<label>.plist", async () => {
    const s = sandbox()
    const r = await sandboxTune(s, ["--service-manager", "launchd", "--drain"], {
      STUB_LAUNCHCTL_OUT: "PID\\tStatus\\tLabel\\n4242\\t0\\tlive.streamvc.macprovider\\n",
      HOME: s.dir
    })
    expect(r.code, r.stderr).toBe(0)
    const uid = process.getuid!()
    expect(toolCalls(s).filter((c) => !c.endsWith(" list"))).toEqual([
      `launchctl bootout gui/${uid}/live.streamvc.macprovider`,
      `launchctl bootstrap gui/${uid} ${Path.join(s.dir, "Library", "LaunchAgents", "live.streamvc.macprovider.plist")}`
    ])
  })

  it("E-2 a drain that fails finalizes as provider_conflict: nothing tuned, the job started again (a no-op if still up)", async () => {
    const s = sandbox()
    const r = await sandboxTune(s, systemd, { ...systemdActive, STUB_SYSTEMCTL_STOP_EXIT: "1" })
    expect(r.code).toBe(4)
    expect(r.stderr).toContain("drain failed")
    expect(jobCalls(toolCalls(s))).toEqual(stopStart)
    expect(candidateStarts(s)).toEqual([])
    const runs = await readRows<{ exit_reason: string }>(s.db, "SELECT exit_reason FROM tune_runs")
    expect(runs).toEqual([{ exit_reason: "provider_conflict" }])
  })

  it("E-2 a foreground provider that ignores SIGTERM is SIGKILLed after the grace period, announced", async () => {
    const s = sandbox()
    const operator = ChildProcess.spawn(Path.join(s.bin, "macprovider-cli"), ["serve", "--model", "stubborn-5", "--port", "0"], {
      stdio: "ignore"
    })
    try {
      await sleep(300)
      const started = Date.now()
      const r = await sandboxTune(s, ["--service-manager", "none", "--drain"])
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toMatch(new RegExp(`provider pid ${operator.pid} did not exit within 10s of SIGTERM; sending SIGKILL`))
      expect(alive(operator.pid!)).toBe(false)
      expect(Date.now() - started).toBeLessThan(40_000)
    } finally {
      operator.kill("SIGKILL")
    }
  }, 60_000)

  it("E-2 a job stop that outlasts systemctl's 10 s is still restored (the stop completes in systemd)", async () => {
    const s = sandbox()
    const r = await sandboxTune(s, systemd, { ...systemdActive, STUB_SYSTEMCTL_STOP_SLEEP: "12" })
    expect(r.code).toBe(4)
    expect(r.stderr).toContain("drain failed")
    expect(jobCalls(toolCalls(s))).toEqual(stopStart)
    expect(candidateStarts(s)).toEqual([])
  }, 60_000)

  it("E-2 a foreground provider is stopped with SIGTERM and, without --restart-foreground, left stopped", async () => {
    const s = sandbox()
    const operator = standIn(s, "macprovider-cli", await freePort())
    await sleep(300)
    const r = await sandboxTune(s, ["--service-manager", "none", "--drain"])
    expect(r.code, r.stderr).toBe(0)
    expect(alive(operator.pid!)).toBe(false)
    expect(r.stderr).toContain("was not restarted (pass --restart-foreground)")
  })

  it("E-2 --restart-foreground restarts it with its original argv, cwd and environment, detached", async () => {
    const s = sandbox()
    const port = await freePort()
    const cwd = Fs.mkdtempSync(Path.join(Os.tmpdir(), "operator-cwd-"))
    const operator = standIn(s, "macprovider-cli", port, cwd)
    await sleep(300)
    const before = Fs.readFileSync(`/proc/${operator.pid}/cmdline`, "utf8")
    const r = await sandboxTune(s, ["--service-manager", "none", "--drain", "--restart-foreground"])
    expect(r.code, r.stderr).toBe(0)
    expect(alive(operator.pid!)).toBe(false)
    const m = /now pid (\d+)/.exec(r.stderr)
    expect(m, r.stderr).not.toBeNull()
    const pid = Number(m![1])
    try {
      expect(Fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")).toBe(before)
      expect(Fs.readlinkSync(`/proc/${pid}/cwd`)).toBe(Fs.realpathSync(cwd))
      expect(Fs.readFileSync(`/proc/${pid}/environ`, "utf8")).toContain("STAND_IN_MARK=operator")
    } finally {
      process.kill(pid, "SIGKILL")
    }
  })

  it("E-2 H-4 Ctrl-C during the drain's SIGTERM grace: the SIGKILL still comes, then the job is restored, exit 130", async () => {
    const s = sandbox()
    const operator = ChildProcess.spawn(Path.join(s.bin, "macprovider-cli"), ["serve", "--model", "stubborn-5", "--port", "0"], {
      stdio: "ignore"
    })
    try {
      await sleep(300)
      const { child, exited, stderr } = startCli(
        [...sandboxTuneArgs(s), "--service-manager", "systemd", "--service-label", "macprovider.service", "--drain"],
        sandboxEnv(s, systemdActive)
      )
      await waitFor(() => stderr().includes("(SIGTERM)"))
      await sleep(1000)
      child.kill("SIGINT")
      expect(await exited).toBe(130)
      expect(stderr()).toContain("sending SIGKILL")
      expect(alive(operator.pid!)).toBe(false)
      expect(jobCalls(toolCalls(s))).toEqual(stopStart)
      expect(candidateStarts(s)).toEqual([])
    } finally {
      operator.kill("SIGKILL")
    }
  }, 60_000)

  it("E-1 E-2 the systemd unit's main process is the job: drained and restored through systemctl only, never restarted by hand", async () => {
    const s = sandbox()
    const unitProcess = standIn(s, "macprovider-cli")
    try {
      await sleep(300)
      const r = await sandboxTune(s, [...systemd, "--restart-foreground"], {
        ...systemdActive,
        STUB_SYSTEMCTL_MAINPID: `${unitProcess.pid}`
      })
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).not.toContain("foreground provider")
      expect(r.stderr).not.toContain("restarted the foreground provider")
      expect(jobCalls(toolCalls(s))).toEqual(stopStart)
    } finally {
      unitProcess.kill("SIGKILL")
    }
  })
})
