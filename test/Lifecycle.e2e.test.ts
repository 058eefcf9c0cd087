/**
 * Lifecycle round 2 (SPEC E-2, H-4, L-1, L-2, L-3, S-4, P-1, P-3) with real
 * processes: candidates that fork a SIGTERM-deaf worker, the real llama-server
 * behind a wrapper that does the same, a tuner SIGKILLed after a drain, a
 * terminal's Ctrl-C sent to the tuner's process group, providers that report
 * nonsense, and retention.
 */
import { describe, expect, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Effect } from "effect"
import { pidAlive } from "../src/system/Pids.js"
import { freePort } from "../src/system/Ports.js"
import { ctrlC, logFiles, runCli, sleep, startCli, tempDir, waitFor } from "./support/cli.js"
import { readRows } from "./support/db.js"
import { llamaServerBin } from "./support/llamaCpp.js"
import { repoRoot, tinyModelPath } from "./support/models.js"
import { sandbox, sandboxEnv, sandboxTuneArgs, toolCalls, toolsDone } from "./support/providerSandbox.js"

const fake = Path.join(repoRoot, "fixtures", "fake-provider.mjs")

/** The worker pids a `forks` fake (or the llama-server wrapper) wrote to `log`. */
const workersIn = (log: string): Array<number> =>
  Fs.existsSync(log) ? Fs.readFileSync(log, "utf8").trim().split("\n").filter((l) => l !== "").map(Number) : []

/** Whether every pid is gone within `ms` (they are reaped by init a moment after their group is killed). */
const allGone = async (pids: ReadonlyArray<number>, ms: number) => {
  await waitFor(() => pids.every((p) => !pidAlive(p)), ms)
  return pids.filter((p) => pidAlive(p))
}

/** Kills what a failed test may have left (never relied on: the assertions check it). */
const cleanup = (pids: ReadonlyArray<number>) => {
  for (const p of pids) {
    try {
      process.kill(p, "SIGKILL")
    } catch { /* gone */ }
  }
}

/**
 * `tune` arguments for the fake provider with one Stage 2 cell: under the shim (macprovider), or as the
 * embedded provider, which serves files: then each candidate is a copy of a tiny GGUF named after its behaviour.
 */
const fakeTune = (dir: string, candidates: string, provider: "macprovider" | "embedded" = "macprovider", db = Path.join(dir, "runs.db")) => {
  const models = provider === "macprovider" ? candidates : candidates.split(",").map((c) => {
    const file = Path.join(dir, c)
    if (!Fs.existsSync(file)) Fs.copyFileSync(tinyModelPath(), file)
    return file
  }).join(",")
  return [
    "tune", "--provider", provider, "--provider-bin", fake, "--candidate-models", models, "--target-context", "100",
    "--stage1-replicates", "1", "--stage2-replicates", "1", "--max-tokens", "4", "--db-path", db,
    "--service-manager", "none", ...(provider === "embedded" ? ["--threads-axis", "1", "--no-estimate"] : [])
  ]
}

describe("L-1 a candidate's whole process group is stopped", () => {
  it("L-1 a forked worker that ignores SIGTERM is gone 1 s after a finished tune", async () => {
    const dir = tempDir()
    const workerLog = Path.join(dir, "workers")
    const r = await runCli(fakeTune(dir, "forks"), { env: { FAKE_PROVIDER_WORKER_LOG: workerLog, XDG_DATA_HOME: dir } })
    const workers = workersIn(workerLog)
    try {
      expect(r.code, r.stderr).toBe(0)
      expect(workers.length).toBe(2) // Stage 1 and the one Stage 2 cell
      expect(r.stderr).toMatch(/provider pid \d+ did not exit within 3s of SIGTERM; sending SIGKILL/)
      expect(await allGone(workers, 1000)).toEqual([])
    } finally {
      cleanup(workers)
    }
  }, 60_000)

  it("L-1 G-1 a candidate the gate decided, in its pre-warm or its probe, is not waited for: SIGKILLed, unannounced, after the short grace (DECIDED_STOP_GRACE), not 3 s; one that fits still gets 3 s (issue 14)", async () => {
    const dir = tempDir()
    // All ignore SIGTERM, and answer every request after their delay. At a 700 ms gate, Stage 1 bounds the
    // full-length pre-warm at twice the gate: stubborn-1500 is cut there (its short first-use requests are not
    // bounded, D-1); stubborn-900 passes it (500 ms to spare) and is cut in its probe, past the gate + 15 %. stubborn-5 fits, so
    // its trials end as usual: SIGTERM, 3 s, then a SIGKILL said on stderr.
    const argvLog = Path.join(dir, "argv")
    const r = await runCli([...fakeTune(dir, "stubborn-1500,stubborn-900,stubborn-5"), "--gate-ttft-ms", "700"],
      { env: { XDG_DATA_HOME: dir, FAKE_PROVIDER_ARGV_LOG: argvLog } })
    expect(r.code, r.stderr).toBe(0)
    // Cut at 1400 ms; on a loaded machine the 1500 ms token may win the race with the cut: then it is measured.
    expect(r.stderr).toMatch(/#1 stubborn-1500 \(size unknown\): infeasible: pre-warm: TTFT (\d+ ms )?> 700 ms gate/)
    expect(r.stderr).toMatch(/#2 stubborn-900 \(size unknown\): infeasible: TTFT > 700 ms gate/)
    // Four starts (the two gated ones, Stage 1 and Stage 2 of the fitting one), two announced SIGKILLs after 3 s:
    // the gated candidates' stops were neither announced nor 3 s long.
    expect(Fs.readFileSync(argvLog, "utf8").trim().split("\n")).toHaveLength(4)
    expect(r.stderr.match(/did not exit within 3s of SIGTERM; sending SIGKILL/g)).toHaveLength(2)
    expect(r.stderr).not.toMatch(/within 200ms/)
  }, 60_000)

  it("L-1 H-4 Ctrl-C to the tuner's process group mid-trial: exit 130, the worker gone within 1 s", async () => {
    const dir = tempDir()
    const workerLog = Path.join(dir, "workers")
    const run = startCli(fakeTune(dir, "forks-60000"), { FAKE_PROVIDER_WORKER_LOG: workerLog, XDG_DATA_HOME: dir }, true)
    await waitFor(() => workersIn(workerLog).length > 0, 20_000)
    const workers = workersIn(workerLog)
    try {
      expect(workers.length).toBe(1)
      await sleep(500) // its pre-warm request is in flight (the fake answers after 60 s)
      ctrlC(run)
      expect(await run.exited).toBe(130)
      expect(await allGone(workers, 1000)).toEqual([])
    } finally {
      cleanup(workers)
      run.child.kill("SIGKILL")
    }
  }, 60_000)

  for (const provider of ["macprovider", "embedded"] as const) {
    it(`L-1 the tuner SIGKILLed: no process of the candidate's group is alive 10 s later (${provider === "macprovider" ? "under the shim" : "a provider that watches its tuner"})`, async () => {
      const dir = tempDir()
      const workerLog = Path.join(dir, "workers")
      const run = startCli(fakeTune(dir, "forks-60000", provider), { FAKE_PROVIDER_WORKER_LOG: workerLog, XDG_DATA_HOME: dir }, true)
      await waitFor(() => workersIn(workerLog).length > 0, 20_000)
      const workers = workersIn(workerLog)
      const logs = logFiles(Path.join(dir, "logs"))
      try {
        expect(workers.length).toBe(1)
        run.child.kill("SIGKILL")
        await run.exited
        expect(await allGone(workers, 10_000)).toEqual([])
        // The provider itself too: no process of that start is left.
        const left = ChildProcess.spawnSync("pgrep", ["-f", "forks-60000"]).stdout.toString().trim()
        expect(left).toBe("")
        expect(logs.length).toBe(1)
      } finally {
        cleanup(workers)
      }
    }, 60_000)
  }

  it("L-1 the real llama-server behind a wrapper that forks a SIGTERM-deaf worker: none left after the tune, nor 10 s after a SIGKILLed tuner", async () => {
    const dir = tempDir()
    const workerLog = Path.join(dir, "workers")
    const wrapper = Path.join(dir, "llama-server")
    // Only a serving start forks (--help and --version do not): as a real wrapper script might.
    Fs.writeFileSync(wrapper, [
      "#!/bin/sh",
      "case \" $* \" in *\" -m \"*) (trap '' TERM; exec sleep 1000) & echo $! >> \"$WORKER_LOG\" ;; esac",
      `exec '${llamaServerBin()}' "$@"`,
      ""
    ].join("\n"), { mode: 0o755 })
    const args = [
      "tune", "--provider", "llama-server", "--provider-bin", wrapper, "--candidate-models", tinyModelPath(),
      "--target-context", "256", "--max-tokens", "8", "--stage1-replicates", "1", "--stage2-replicates", "1",
      "--threads-axis", "2", "--db-path", Path.join(dir, "runs.db"), "--service-manager", "none"
    ]
    const env = { WORKER_LOG: workerLog, XDG_DATA_HOME: dir }
    const done = await runCli(args, { env })
    const first = workersIn(workerLog)
    try {
      expect(done.code, done.stderr).toBe(0)
      expect(first.length).toBe(2)
      expect(await allGone(first, 1000)).toEqual([])
      const run = startCli(args, env, true)
      await waitFor(() => workersIn(workerLog).length > first.length, 30_000)
      run.child.kill("SIGKILL")
      await run.exited
      expect(await allGone(workersIn(workerLog), 10_000)).toEqual([])
    } finally {
      cleanup(workersIn(workerLog))
    }
  }, 120_000)
})

describe("L-2 a drain survives the death of its tuner (journal beside the database)", () => {
  const systemd = ["--service-manager", "systemd", "--service-label", "macprovider.service", "--drain"]
  const active = { STUB_SYSTEMCTL_OUT: "active\\n" }

  /** A tune with --drain on a slow candidate, SIGKILLed once its candidate runs (the drain is done by then). */
  const killedAfterDrain = async () => {
    const s = sandbox()
    const run = startCli([...sandboxTuneArgs(s, "ok-60000"), ...systemd], sandboxEnv(s, active), true)
    await waitFor(() => logFiles(Path.join(s.dir, "logs")).length > 0, 20_000)
    expect(toolsDone(s)).toEqual(["stop done"])
    run.child.kill("SIGKILL")
    await run.exited
    expect(Fs.existsSync(`${s.db}.drain.json`)).toBe(true)
    return s
  }
  const starts = (lines: ReadonlyArray<string>) => lines.filter((l) => l.startsWith("systemctl --user start")).length

  it("L-2 E-2 autotune restore brings back what a SIGKILLed tuner drained, exactly once; a second restore has nothing to do", async () => {
    const s = await killedAfterDrain()
    const r = await runCli(["restore", "--db-path", s.db], { env: sandboxEnv(s, active) })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/restoring what an earlier tune \(pid \d+ on .+, drained at .*\) stopped and never restored: systemd job macprovider\.service/)
    expect(r.stdout).toContain("restored what the dead tune had drained")
    expect(toolsDone(s)).toEqual(["stop done", "start done"])
    expect(Fs.existsSync(`${s.db}.drain.json`)).toBe(false)
    const again = await runCli(["restore", "--db-path", s.db], { env: sandboxEnv(s, active) })
    expect(again.code).toBe(0)
    expect(again.stdout).toContain("nothing to restore")
    expect(starts(toolCalls(s))).toBe(1)
  }, 60_000)

  it("L-2 autotune restore --forget drops a journal the operator dealt with by hand, starting nothing", async () => {
    const s = await killedAfterDrain()
    const r = await runCli(["restore", "--db-path", s.db, "--forget"], { env: sandboxEnv(s, active) })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/forgot the drain journal .*; it held: systemd job macprovider\.service/)
    expect(Fs.existsSync(`${s.db}.drain.json`)).toBe(false)
    expect(starts(toolCalls(s))).toBe(0)
  }, 60_000)

  it("L-2 the next autotune tune restores it first (exactly once), then finds the provider running again", async () => {
    const s = await killedAfterDrain()
    const next = await runCli([...sandboxTuneArgs(s), "--service-manager", "systemd", "--service-label", "macprovider.service"], {
      env: sandboxEnv(s, active)
    })
    expect(next.stderr).toContain("restoring what an earlier tune")
    expect(next.code).toBe(4) // the job is back: a conflict without --drain (E-1)
    expect(starts(toolCalls(s))).toBe(1)
    expect(Fs.existsSync(`${s.db}.drain.json`)).toBe(false)
  }, 60_000)

  it("L-2 E-2 the same with launchd: autotune restore bootstraps the booted-out job once", async () => {
    const s = sandbox()
    const dead = await new Promise<number>((resolve) => {
      const c = ChildProcess.spawn("true")
      c.on("exit", () => resolve(c.pid!))
    })
    const launchd = ["--service-manager", "launchd", "--service-label", "live.streamvc.macprovider", "--drain"]
    const listed = { STUB_LAUNCHCTL_OUT: `PID\\tStatus\\tLabel\\n${dead}\\t0\\tlive.streamvc.macprovider\\n` }
    const run = startCli([...sandboxTuneArgs(s, "ok-60000"), ...launchd], sandboxEnv(s, listed), true)
    await waitFor(() => logFiles(Path.join(s.dir, "logs")).length > 0, 20_000)
    expect(toolsDone(s)).toEqual(["bootout done"])
    run.child.kill("SIGKILL")
    await run.exited
    const r = await runCli(["restore", "--db-path", s.db], { env: sandboxEnv(s, listed) })
    expect(r.code, r.stderr).toBe(0)
    expect(toolsDone(s)).toEqual(["bootout done", "bootstrap done"])
    expect((await runCli(["restore", "--db-path", s.db], { env: sandboxEnv(s, listed) })).stdout).toContain("nothing to restore")
    expect(toolCalls(s).filter((l) => l.startsWith("launchctl bootstrap"))).toHaveLength(1)
  }, 60_000)

  it("H-2 a Ctrl-C while a finished run cleans up (its drained provider coming back) keeps the recorded outcome: exit 0, row ok", async () => {
    const s = sandbox()
    const run = startCli([...sandboxTuneArgs(s), ...systemd], sandboxEnv(s, { ...active, STUB_SYSTEMCTL_START_SLEEP: "3" }), true)
    await waitFor(() => toolCalls(s).some((l) => l.startsWith("systemctl --user start")), 30_000)
    ctrlC(run)
    expect(await run.exited).toBe(0)
    expect(await readRows<{ exit_reason: string }>(s.db, "SELECT exit_reason FROM tune_runs")).toEqual([{ exit_reason: "ok" }])
    expect(toolsDone(s)).toEqual(["stop done", "start done"])
  }, 60_000)

  it("H-4 a second Ctrl-C to the process group during the restore still restores (the service manager's command finishes)", async () => {
    const s = sandbox()
    const run = startCli([...sandboxTuneArgs(s, "ok-60000"), ...systemd], sandboxEnv(s, { ...active, STUB_SYSTEMCTL_START_SLEEP: "2" }), true)
    await waitFor(() => logFiles(Path.join(s.dir, "logs")).length > 0, 20_000)
    ctrlC(run)
    await waitFor(() => toolCalls(s).some((l) => l.startsWith("systemctl --user start")), 15_000)
    ctrlC(run)
    expect(await run.exited).toBe(130)
    expect(toolsDone(s)).toEqual(["stop done", "start done"])
  }, 60_000)

  it("H-4 a Ctrl-C to the process group during the drain's stop: exit 130 (not a drain failure), and the job is restored", async () => {
    const s = sandbox()
    const run = startCli([...sandboxTuneArgs(s), ...systemd], sandboxEnv(s, { ...active, STUB_SYSTEMCTL_STOP_SLEEP: "2" }), true)
    await waitFor(() => toolCalls(s).some((l) => l.startsWith("systemctl --user stop")), 15_000)
    ctrlC(run)
    expect(await run.exited).toBe(130)
    expect(toolsDone(s)).toEqual(["stop done", "start done"])
    expect(run.stderr()).not.toContain("drain failed")
  }, 60_000)

  it("E-2 a foreground provider whose supervisor brings it straight back is a conflict, not a silent neighbour", async () => {
    const s = sandbox()
    const supervisor = ChildProcess.spawn("sh", ["-c", `while :; do '${Path.join(s.bin, "macprovider-cli")}' serve --model ok-5 --port 0; sleep 0.2; done`], {
      stdio: "ignore",
      detached: true
    })
    try {
      await sleep(500)
      const r = await runCli([...sandboxTuneArgs(s), "--service-manager", "none", "--drain"], { env: sandboxEnv(s) })
      expect(r.code).toBe(4)
      expect(r.stderr).toContain("running again after the drain")
    } finally {
      process.kill(-supervisor.pid!, "SIGKILL")
    }
  }, 60_000)

  it("E-2 --restart-foreground that cannot restart the drained provider says RESTORE FAILED, never 'now pid undefined'", async () => {
    const s = sandbox()
    const opDir = Path.join(s.dir, "op")
    Fs.mkdirSync(opDir)
    // The operator's provider is an executable named macprovider-cli (here a link to node running the fake),
    // so its argv[0] is that path: a restart needs it.
    const opBin = Path.join(opDir, "macprovider-cli")
    Fs.symlinkSync(process.execPath, opBin)
    const operator = ChildProcess.spawn(opBin, [fake, "serve", "--model", "ok-5", "--port", "0"], { stdio: "ignore" })
    try {
      await sleep(500)
      const run = startCli([...sandboxTuneArgs(s, "ok-60000"), "--service-manager", "none", "--drain", "--restart-foreground"], sandboxEnv(s), true)
      await waitFor(() => logFiles(Path.join(s.dir, "logs")).length > 0, 20_000)
      Fs.rmSync(opBin) // the operator's binary vanished (an upgrade moved it)
      ctrlC(run)
      expect(await run.exited).toBe(130)
      expect(run.stderr()).toMatch(/RESTORE FAILED, could not restart the foreground provider \(was pid \d+\)/)
      expect(run.stderr()).not.toContain("now pid undefined")
    } finally {
      operator.kill("SIGKILL")
    }
  }, 60_000)
})

describe("L-1 autotune serve and its tuner", () => {
  it("L-1 autotune serve whose tuner is gone while it starts stops by itself (it watches from before the model loads)", async () => {
    const port = await Effect.runPromise(freePort)
    const parent = ChildProcess.spawn("sleep", ["0.2"])
    const serve = ChildProcess.spawn(process.execPath, [Path.join(repoRoot, "bin", "autotune.js"), "serve", "--model", tinyModelPath(), "--port", `${port}`], {
      stdio: ["ignore", "ignore", "pipe"],
      detached: true,
      env: { ...process.env, AUTOTUNE_PARENT_PID: `${parent.pid}`, AUTOTUNE_GROUP_LEADER: "1" }
    })
    let stderr = ""
    serve.stderr.on("data", (d) => (stderr += d))
    const exited = new Promise<string | null>((resolve) => serve.on("exit", (code, signal) => resolve(signal ?? `${code}`)))
    try {
      const how = await Promise.race([exited, sleep(30_000).then(() => "still running")])
      expect(how, stderr).toBe("SIGKILL") // it took its own process group along
      expect(stderr).toContain(`the tuner that started this provider (pid ${parent.pid}) is gone; stopping`)
    } finally {
      serve.kill("SIGKILL")
    }
  }, 60_000)
})

describe("bounded inputs from providers and flags (issue: lifecycle round 2, item 3)", () => {
  it("P-1 a provider reporting 0 prompt tokens: that candidate is infeasible with the reason, and the run ends (exit 2) within the gate", async () => {
    const dir = tempDir()
    const t0 = Date.now()
    const r = await runCli([...fakeTune(dir, "ok-5"), "--json"], { env: { FAKE_PROVIDER_MAX_PROMPT: "0", XDG_DATA_HOME: dir } })
    expect(r.code, r.stderr).toBe(2)
    expect(Date.now() - t0).toBeLessThan(60_000) // the gate (--gate-ttft-ms default) was never waited out
    const doc = JSON.parse(r.stdout) as { infeasible: Array<{ reason: string }> }
    expect(doc.infeasible[0]!.reason).toMatch(/^pre-warm: the provider counted 0 prompt tokens for a 16-word prompt/)
  }, 60_000)

  it("P-3 an over-long SSE line (2 MiB, no line end) fails that candidate, not the run", async () => {
    const dir = tempDir()
    const r = await runCli([...fakeTune(dir, "long-line,ok-5"), "--json"], { env: { XDG_DATA_HOME: dir } })
    expect(r.code, r.stderr).toBe(0)
    const doc = JSON.parse(r.stdout) as { recommendation: { model: string }; infeasible: Array<{ model: string; reason: string }> }
    expect(doc.recommendation.model).toBe("ok-5")
    expect(doc.infeasible[0]).toMatchObject({ model: "long-line" })
    expect(doc.infeasible[0]!.reason).toMatch(/line of more than \d+ characters without an end/)
  }, 60_000)

  it("B-1 values no timer or prompt can hold are usage errors (exit 64), never an infinite wait or a giant prompt", async () => {
    const dir = tempDir()
    for (const [flag, value] of [["--target-context", "2000000"], ["--max-duration", "99999999"], ["--gate-ttft-ms", "9999999999"],
      ["--max-batch-axis", "100000"], ["--keep-runs", "-1"]] as const) {
      const r = await runCli([...fakeTune(dir, "ok-5"), flag, value], { env: { XDG_DATA_HOME: dir } })
      expect(r.code, `${flag} ${value}: ${r.stderr}`).toBe(64)
      expect(r.stderr).toContain(flag)
    }
    expect(Fs.existsSync(Path.join(dir, "runs.db"))).toBe(false)
  }, 60_000)

  it("B-1 an empty HOME or a database directory that cannot be written is a usage error naming --db-path", async () => {
    const dir = tempDir()
    const noHome = await runCli(fakeTune(dir, "ok-5"), { env: { HOME: "", XDG_DATA_HOME: "" } })
    expect(noHome.code).toBe(64)
    expect(noHome.stderr).toContain("--db-path")
    // A directory that cannot be made (a file stands where it would go; root ignores permission bits).
    Fs.writeFileSync(Path.join(dir, "taken"), "")
    const bad = Path.join(dir, "taken", "runs.db")
    const ro = await runCli(fakeTune(dir, "ok-5", "macprovider", bad), { env: { XDG_DATA_HOME: dir } })
    expect(ro.code).toBe(64)
    expect(ro.stderr).toContain(`--db-path ${bad}: cannot write in`)
  }, 60_000)

  it("E-4 a candidate whose log cannot be written fails that trial, not the run", async () => {
    const dir = tempDir()
    Fs.writeFileSync(Path.join(dir, "logs"), "a file where the logs directory would go")
    const r = await runCli([...fakeTune(dir, "ok-5"), "--json"], { env: { XDG_DATA_HOME: dir } })
    expect(r.code, r.stderr).toBe(2)
    expect((JSON.parse(r.stdout) as { infeasible: Array<{ reason: string }> }).infeasible[0]!.reason).toContain("cannot write the provider's log")
  }, 60_000)
})

describe("S-4 L-3 retention", () => {
  it("S-4 after three runs with --keep-runs 2, the database holds two runs and only their trials, and logs/ only their logs", async () => {
    const dir = tempDir()
    const db = Path.join(dir, "runs.db")
    for (let i = 0; i < 3; i++) {
      const r = await runCli([...fakeTune(dir, "ok-5"), "--keep-runs", "2"], { env: { XDG_DATA_HOME: dir } })
      expect(r.code, r.stderr).toBe(0)
      if (i === 2) expect(r.stderr).toContain("retention (--keep-runs 2): removed 1 older run(s) with their logs")
    }
    const runs = await readRows<{ run_id: string }>(db, "SELECT run_id FROM tune_runs ORDER BY started_at")
    expect(runs).toHaveLength(2)
    const trialRuns = await readRows<{ run_id: string }>(db, "SELECT DISTINCT run_id FROM tune_trials")
    expect(trialRuns.map((t) => t.run_id).sort()).toEqual(runs.map((r) => r.run_id).sort())
    expect(Fs.readdirSync(Path.join(dir, "logs")).sort()).toEqual(runs.map((r) => r.run_id).sort())
    // The report still works on what is kept.
    const report = await runCli(["report", "--db-path", db, "--out", Path.join(dir, "r.html")])
    expect(report.code, report.stderr).toBe(0)
  }, 120_000)

  it("S-4 --keep-runs 0 keeps every run", async () => {
    const dir = tempDir()
    for (let i = 0; i < 2; i++) {
      expect((await runCli([...fakeTune(dir, "ok-5"), "--keep-runs", "0"], { env: { XDG_DATA_HOME: dir } })).code).toBe(0)
    }
    expect(await readRows(Path.join(dir, "runs.db"), "SELECT run_id FROM tune_runs")).toHaveLength(2)
  }, 60_000)
})
