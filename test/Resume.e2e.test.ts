/**
 * `tune --resume` and `history` (SPEC) as an operator meets them: a
 * tune interrupted by Ctrl-C (SIGINT to its process group) during Stage 2,
 * continued with `tune --resume`; the provider's own argv log shows which
 * trials started a provider. The provider is the fake one (a real process)
 * serving a real GGUF file, so the model's identity is real.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { ctrlC, runCli, sleep, startCli, tempDir, waitFor } from "./support/cli.js"
import { readRows } from "./support/db.js"
import { llamaServerBin } from "./support/llamaCpp.js"
import { repoRoot, smallModelPath, tinyModelPath } from "./support/models.js"

const fake = Path.join(repoRoot, "fixtures", "fake-provider.mjs")
const TIMEOUT_MS = 300_000

/** The provider starts an argv log recorded (one JSON argv per start). */
const starts = (log: string): Array<Array<string>> =>
  Fs.existsSync(log) ? Fs.readFileSync(log, "utf8").trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l)) : []

interface Doc {
  readonly run_id: string
  readonly exit_reason: string
  readonly recipe_hash: string | null
  readonly recommendation: { readonly model: string; readonly knobs: { readonly kv_bits: number | null } } | null
}

describe("tune --resume (SPEC R-2) and history", () => {
  it("R-2 Ctrl-C in Stage 2, then --resume (after a resume stopped by pre-flight): no provider for Stage 1 or the measured cell; a changed model file is measured again and named; R-1 keys", { timeout: TIMEOUT_MS }, async () => {
    const dir = tempDir()
    const db = Path.join(dir, "runs.db")
    // A real GGUF file whose base name tells the fake provider how to behave (ok, 5 ms to the first token).
    const model = Path.join(dir, "ok-5")
    Fs.copyFileSync(tinyModelPath(), model)
    const env = (log: string, more: Record<string, string> = {}) => ({ XDG_DATA_HOME: dir, FAKE_PROVIDER_ARGV_LOG: Path.join(dir, log), ...more })
    // Two cells; a cap of 3 replicates keeps N-2 extras and the drift check out, so every start is a trial's.
    const args = ["tune", "--provider", "embedded", "--provider-bin", fake, "--candidate-models", model, "--target-context", "100",
      "--kv-bits-axis", "unset,8", "--threads-axis", "1", "--max-replicates", "3", "--db-path", db]

    // The kv=8 cell's measured requests hang (FAKE_PROVIDER_SLOW_FLAG): Ctrl-C lands while it runs.
    const run = startCli(args, env("argv-1", { FAKE_PROVIDER_SLOW_FLAG: "--kv-bits" }), true)
    await waitFor(() => starts(Path.join(dir, "argv-1")).some((a) => a.includes("--kv-bits")), 60_000)
    await sleep(1000) // its pre-warm done, a measured request in flight
    ctrlC(run)
    expect(await run.exited, run.stderr()).toBe(130)
    const [parent] = await readRows<{ run_id: string; exit_reason: string }>(db, "SELECT run_id, exit_reason FROM tune_runs")
    expect(parent!.exit_reason).toBe("interrupted")

    // history lists it as resumable.
    const listed = await runCli(["history", "--db-path", db, "--json"])
    expect(listed.code, listed.stderr).toBe(0)
    expect(JSON.parse(listed.stdout)).toMatchObject([{ run_id: parent!.run_id, state: "interrupted", resumable: true }])

    // A resume that stops before its first trial (E-1: the operator's provider is serving) loses nothing:
    // it holds the whole ledger of the run it resumed, and is what the next --resume continues.
    const squatter = ChildProcess.spawn(process.execPath, [fake, "serve", "--model", "ok", "--port", "0"], { stdio: "ignore" })
    let conflictRun: string
    try {
      await sleep(500) // let it exec
      const conflict = await runCli(["tune", "--resume", "--service-manager", "none", "--db-path", db], { env: env("argv-c") })
      expect(conflict.code, conflict.stderr).toBe(4)
      expect(starts(Path.join(dir, "argv-c"))).toEqual([])
      const runs = await readRows<{ run_id: string; parent_run_id: string | null }>(db, "SELECT run_id, parent_run_id FROM tune_runs ORDER BY rowid")
      expect(runs.map((r) => r.parent_run_id)).toEqual([null, parent!.run_id])
      conflictRun = runs[1]!.run_id
    } finally {
      squatter.kill("SIGKILL")
    }

    // --resume (no id: the newest run that did not end ok and was not resumed) with only the invocation's own flags.
    const resumed = await runCli(["tune", "--resume", "--service-manager", "none", "--db-path", db, "--json"], { env: env("argv-2") })
    expect(resumed.code, resumed.stderr).toBe(0)
    const doc = JSON.parse(resumed.stdout) as Doc
    expect(doc.exit_reason).toBe("ok")
    const [, , resumedRow] = await readRows<{ parent_run_id: string | null }>(db, "SELECT parent_run_id FROM tune_runs ORDER BY rowid")
    expect(resumedRow!.parent_run_id).toBe(conflictRun)
    // Stage 1 (no --threads) and the kv=unset cell were measured before: only the kv=8 cell started.
    const second = starts(Path.join(dir, "argv-2"))
    expect(second, resumed.stderr).toHaveLength(1)
    expect(second[0]).toContain("--kv-bits")
    expect(resumed.stderr.match(new RegExp(`reused from run ${parent!.run_id}: no provider started`, "g"))).toHaveLength(2)
    const rows = await readRows<{ stage: number; trial_key: string | null; reused_from_run: string | null }>(db,
      `SELECT stage, trial_key, reused_from_run FROM tune_trials WHERE run_id = '${doc.run_id}' ORDER BY trial_id`)
    expect(rows.map((r) => [r.stage, r.reused_from_run])).toEqual([[1, parent!.run_id], [2, parent!.run_id], [2, null]])
    expect(rows.every((r) => /^sha256:[0-9a-f]{64}$/.test(r.trial_key ?? ""))).toBe(true)

    // The whole run on record: resuming it by id starts nothing and reaches the same recipe (same measurements).
    const replayed = await runCli(["tune", "--resume", doc.run_id, "--db-path", db, "--json"], { env: env("argv-3") })
    expect(replayed.code, replayed.stderr).toBe(0)
    expect(starts(Path.join(dir, "argv-3"))).toEqual([])
    expect((JSON.parse(replayed.stdout) as Doc).recipe_hash).toBe(doc.recipe_hash)

    // history: each resumed run is no longer what --resume picks, and names the run that resumed it.
    const after = JSON.parse((await runCli(["history", "--db-path", db, "--json"])).stdout) as Array<{ run_id: string; parent_run_id: string | null; resumable: boolean; resumed_by: Array<string> }>
    expect(after.find((e) => e.run_id === parent!.run_id)).toMatchObject({ resumable: false, resumed_by: [conflictRun] })
    expect(after.find((e) => e.run_id === conflictRun)).toMatchObject({ resumable: false, resumed_by: [doc.run_id], parent_run_id: parent!.run_id })
    expect(after.find((e) => e.run_id === doc.run_id)).toMatchObject({ parent_run_id: conflictRun })
    const none = await runCli(["tune", "--resume", "--db-path", db])
    expect(none.code).toBe(64)
    expect(none.stderr).toContain("no run to resume")

    // The model file replaced by another model: resuming the interrupted run measures everything again, and says why.
    const before = Fs.statSync(model).size
    Fs.copyFileSync(smallModelPath(), model)
    const changed = await runCli(["tune", "--resume", parent!.run_id, "--db-path", db], { env: env("argv-4") })
    expect(changed.code, changed.stderr).toBe(0)
    expect(changed.stderr).toContain(`autotune: resume: model ${model}: ${before} → ${Fs.statSync(model).size} bytes, header sha256 `)
    expect(changed.stderr).toContain("the trials this changes are measured again")
    expect(changed.stderr).not.toContain("reused from run")
    const fourth = starts(Path.join(dir, "argv-4"))
    expect(fourth).toHaveLength(3)
    expect(fourth.filter((a) => !a.includes("--threads"))).toHaveLength(1) // Stage 1 measured again
  })

  it("R-2 --resume: another input given with it, or a run that is not there, is a usage error (exit 64) naming it", { timeout: TIMEOUT_MS }, async () => {
    const dir = tempDir()
    const db = Path.join(dir, "runs.db")
    const noDb = await runCli(["tune", "--resume", "--db-path", db])
    expect(noDb.code).toBe(64)
    expect(noDb.stderr).toContain("no such database file")
    const noHistory = await runCli(["history", "--db-path", db])
    expect(noHistory.code).toBe(64)
    expect(noHistory.stderr).toContain(`--db-path ${db}: no such database file`)
    // A run to resume: an interrupted-free, all-infeasible one (exit 2) is resumable too.
    const first = await runCli(["tune", "--provider", "macprovider", "--provider-bin", fake, "--candidate-models", "exit-on-start",
      "--target-context", "100", "--db-path", db], { env: { XDG_DATA_HOME: dir } })
    expect(first.code, first.stderr).toBe(2)
    const withInput = await runCli(["tune", "--resume", "--target-context", "200", "--db-path", db])
    expect(withInput.code).toBe(64)
    expect(withInput.stderr).toContain("--resume continues a run with the flags it was started with; --target-context cannot be given with it")
    // What the invocation does around the measurement is its own: pre-flight, drain, the quiet wait, apply.
    const own = await runCli(["tune", "--resume", "--drain", "--service-manager", "none", "--dry-run", "--db-path", db])
    expect(own.code, own.stderr).toBe(0)
    const unknown = await runCli(["tune", "--resume", "no-such-run", "--db-path", db])
    expect(unknown.code).toBe(64)
    expect(unknown.stderr).toContain("--resume no-such-run: no such run in")
    // A dry run names the run it would continue and touches nothing.
    const dry = await runCli(["tune", "--resume", "--dry-run", "--db-path", db])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.stdout).toMatch(/^resume: +run [0-9a-f-]{36}: its trials whose key still matches are reused/m)
    expect(dry.stdout).toContain("#1 exit-on-start")
  })

  it("R-2 the resumed run's plan is the one the run made: its provider, executable, candidates, defaults and axes (--dry-run)", { timeout: TIMEOUT_MS }, async () => {
    const dir = tempDir()
    const elsewhere = tempDir()
    const noPath = tempDir() // a PATH with nothing on it: the CLI runs as `node bin/autotune.js`, no lookup needed
    const model = Path.join(dir, "tiny.gguf")
    Fs.copyFileSync(tinyModelPath(), model)
    const plans = async (args: ReadonlyArray<string>, env: Record<string, string>, db: string) => {
      // A run cut by its budget at once is on record with its flags (whatever it got to; it is resumed by id).
      await runCli(["tune", ...args, "--max-duration", "1", "--db-path", db], { env: { XDG_DATA_HOME: dir, ...env } })
      const [run] = await readRows<{ run_id: string }>(db, "SELECT run_id FROM tune_runs")
      const fresh = await runCli(["tune", ...args, "--dry-run", "--db-path", db], { env: { XDG_DATA_HOME: dir, ...env } })
      expect(fresh.code, fresh.stderr).toBe(0)
      return { runId: run!.run_id, fresh: fresh.stdout }
    }
    const withoutResumeLine = (out: string) => out.split("\n").filter((l) => !l.startsWith("resume:")).join("\n")
    // llama-server found through $LLAMA_SERVER, with every default left to the tool.
    const a = Path.join(dir, "a.db")
    const viaEnv = await plans(["--provider", "llama-server", "--candidate-models", model], { LLAMA_SERVER: llamaServerBin() }, a)
    expect(viaEnv.fresh).toContain(`provider:        llama-server (${Fs.realpathSync(llamaServerBin())})`)
    const again = await runCli(["tune", "--resume", viaEnv.runId, "--dry-run", "--db-path", a], { env: { XDG_DATA_HOME: dir, LLAMA_SERVER: llamaServerBin() } })
    expect(again.code, again.stderr).toBe(0)
    expect(withoutResumeLine(again.stdout)).toBe(viaEnv.fresh)
    // From a shell where it is not found: named as the run's, and --provider-bin may say where it is now.
    const bare = { XDG_DATA_HOME: dir, LLAMA_SERVER: "", LLAMA_CPP_BIN_DIR: "", PATH: noPath }
    const lost = await runCli(["tune", "--resume", viaEnv.runId, "--dry-run", "--db-path", a], { env: bare })
    expect(lost.code).toBe(64)
    expect(lost.stderr).toMatch(/run [0-9a-f-]{36}'s stored flags: --provider llama-server: no llama-server executable found/)
    const given = await runCli(["tune", "--resume", viaEnv.runId, "--provider-bin", llamaServerBin(), "--dry-run", "--db-path", a], { env: bare })
    expect(given.code, given.stderr).toBe(0)
    expect(withoutResumeLine(given.stdout)).toBe(viaEnv.fresh)
    // The embedded provider run by an executable named relative to the working directory, resumed from another one.
    const b = Path.join(dir, "b.db")
    const viaBin = await plans(["--provider", "embedded", "--provider-bin", Path.relative(repoRoot, fake), "--candidate-models", model,
      "--kv-bits-axis", "unset,8"], {}, b)
    expect(viaBin.fresh).toContain(`provider:        embedded (${fake})`)
    const moved = await runCli(["tune", "--resume", viaBin.runId, "--dry-run", "--db-path", b], { env: { XDG_DATA_HOME: dir }, cwd: elsewhere })
    expect(moved.code, moved.stderr).toBe(0)
    expect(withoutResumeLine(moved.stdout)).toBe(viaBin.fresh)
  })
})
