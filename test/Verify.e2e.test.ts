/**
 * `autotune verify` (SPEC R-3) as an operator runs it: a recipe tuned on the
 * real embedded provider with tiny synthetic models, re-probed from its run
 * id and from its JSON document, then checked after its model file was
 * replaced by a bigger one.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { ctrlC, runCli, sleep, startCli, tempDir, waitFor } from "./support/cli.js"
import { mediumModelPath, repoRoot, tinyModelPath } from "./support/models.js"

const fake = Path.join(repoRoot, "fixtures", "fake-provider.mjs")

/**
 * Bound of one test: each runs real tunes (each CLI run killed by its own 240 s
 * timer), so the bound is theirs, not the suite's default.
 */
const VERIFY_TIMEOUT_MS = 600_000

/**
 * A recipe tuned on the fake provider as the embedded one (one cell, 3 replicates): a real GGUF file named
 * `behaviour` (the fake provider's behaviour, e.g. `ok-5`: 5 ms to the first token) in a fresh directory.
 */
const fakeRecipe = async (behaviour: string) => {
  const dir = tempDir()
  const db = Path.join(dir, "runs.db")
  const model = Path.join(dir, behaviour)
  Fs.copyFileSync(tinyModelPath(), model)
  const tuned = await runCli(["tune", "--provider", "embedded", "--provider-bin", fake, "--candidate-models", model, "--target-context", "100",
    "--kv-bits-axis", "unset", "--threads-axis", "1", "--max-replicates", "3", "--json", "--db-path", db], { env: { XDG_DATA_HOME: dir } })
  expect(tuned.code, tuned.stderr).toBe(0)
  return { dir, db, model, runId: (JSON.parse(tuned.stdout) as { run_id: string }).run_id }
}

describe("autotune verify (SPEC R-3)", () => {
  // In three steps that share one recipe (each a test of its own, so a slow machine
  // spends its time budget per step): tune it, verify it, then replace its model.
  const recipe: { dir?: string; model?: string; runId?: string; docFile?: string; gate?: number } = {}
  const needRecipe = () => {
    if (recipe.docFile === undefined) throw new Error("the recipe step above failed; nothing to verify")
    return recipe as Required<typeof recipe>
  }
  const dbOf = (dir: string) => Path.join(dir, "runs.db")

  it("R-3 a recipe tuned with the gate between two models' measured TTFTs", { timeout: VERIFY_TIMEOUT_MS }, async () => {
    const dir = tempDir()
    const model = Path.join(dir, "recipe-model.gguf")
    Fs.copyFileSync(tinyModelPath(), model)
    const env = { XDG_DATA_HOME: dir, XDG_CACHE_HOME: dir }
    // One thread (two on two cores swing with any other process) and 32-token replies: a steady tok/s to compare.
    const common = ["--target-context", "1536", "--max-tokens", "32", "--stage1-replicates", "3", "--stage2-replicates", "3",
      "--max-replicates", "3", "--threads-axis", "1", "--json", "--db-path", dbOf(dir)]
    // The gate sits between the two models' TTFTs on this machine (measured, as in the G-1 test).
    const measure = async (m: string) => {
      const r = await runCli(["tune", "--candidate-models", m, ...common], { env })
      expect(r.code, r.stderr).toBe(0)
      return JSON.parse(r.stdout) as { run_id: string; recommendation: { ttft_p95_ms: number } }
    }
    // Measured twice at most: a burst of load from elsewhere on the machine during a measurement
    // (the two TTFTs then sit closer than they do) or during the gated tune (its TTFT then misses a
    // gate set from quiet measurements) costs one re-measurement, not the test.
    let gate = 0
    let ratio = 0
    let gated = { code: null as number | null, stdout: "", stderr: "" }
    for (let attempt = 0; attempt < 2 && gated.code !== 0; attempt++) {
      const small = await measure(model)
      const big = await measure(mediumModelPath())
      ratio = big.recommendation.ttft_p95_ms / small.recommendation.ttft_p95_ms
      if (ratio <= 2.5) continue
      gate = Math.round(Math.sqrt(big.recommendation.ttft_p95_ms * small.recommendation.ttft_p95_ms))
      gated = await runCli(["tune", "--candidate-models", model, "--gate-ttft-ms", `${gate}`, ...common], { env })
    }
    expect(ratio).toBeGreaterThan(2.5)
    expect(gated.code, gated.stderr).toBe(0)
    const doc = JSON.parse(gated.stdout) as { run_id: string }
    const docFile = Path.join(dir, "recipe.json")
    Fs.writeFileSync(docFile, gated.stdout)
    Object.assign(recipe, { dir, model, runId: doc.run_id, docFile, gate })
  })

  it("R-3 right after the tune the recipe holds, from its run id and from its JSON document (exit 0); bad input exits 64", { timeout: VERIFY_TIMEOUT_MS }, async () => {
    const { dir, docFile, runId } = needRecipe()
    // The reply length, provider and model file come from the recipe itself.
    // Three times at most: a burst of load from elsewhere on the machine (the quiet guard is off in tests) can
    // move 3 replicates past the tolerance or the gate (what verify exists to notice), and so can the process
    // itself: the embedded provider's decode differs between processes of the same model and knobs (measured
    // 172–320 tok/s at 1 thread on the 15M, 2026-12-06), while a recipe's interval comes from one process.
    // Three processes in a row all slower than the tolerance is not that noise.
    const verifyUntilOk = async (args: ReadonlyArray<string>) => {
      let r = await runCli(args)
      for (let i = 1; i < 3 && r.code !== 0; i++) r = await runCli(args)
      return r
    }
    const fromDb = await verifyUntilOk(["verify", runId, "--db-path", dbOf(dir)])
    expect(fromDb.code, fromDb.stdout + fromDb.stderr).toBe(0)
    expect(fromDb.stdout).toMatch(/^ +then: +\d+\.\d tok\/s \[\d+\.\d–\d+\.\d\], TTFT p95 \d+ ms over \d+ replicate\(s\)$/m)
    expect(fromDb.stdout).toMatch(/^ +now: +\d+\.\d tok\/s \[\d+\.\d–\d+\.\d\], TTFT p95 \d+ ms over 3 replicate\(s\)$/m)
    expect(fromDb.stdout).toContain("holds: the recipe still passes the gate")
    const fromDoc = await verifyUntilOk(["verify", docFile, "--json"])
    expect(fromDoc.code, fromDoc.stdout + fromDoc.stderr).toBe(0)
    const result = JSON.parse(fromDoc.stdout) as { verdict: string; changes: Array<string>; measured: { replicates: number } }
    expect(result).toMatchObject({ verdict: "holds", changes: [] })
    expect(result.measured.replicates).toBe(3)
    const noDb = await runCli(["verify", "x", "--db-path", Path.join(dir, "nope.db")])
    expect(noDb.code).toBe(64)
    expect(noDb.stderr).toMatch(/--db-path .*nope\.db: no such database file/)
    const noRun = await runCli(["verify", "no-such-run", "--db-path", dbOf(dir)])
    expect(noRun.code).toBe(64)
    expect(noRun.stderr).toContain("no-such-run: no such file, and no such run in")
    const badTolerance = await runCli(["verify", runId, "--tolerance", "1.5", "--db-path", dbOf(dir)])
    expect(badTolerance.code).toBe(64)
    expect(badTolerance.stderr).toContain("--tolerance must be a fraction in [0, 1), got 1.5")
    const noReplicates = await runCli(["verify", runId, "--replicates", "0", "--db-path", dbOf(dir)])
    expect(noReplicates.code).toBe(64)
    expect(noReplicates.stdout + noReplicates.stderr).toContain("--replicates must be an integer >= 1, got 0")
  })

  it("R-3 after the model file is replaced by a bigger one: exit 1 naming the change (run id); exit 2 when it misses the gate", { timeout: VERIFY_TIMEOUT_MS }, async () => {
    const { dir, docFile, gate, model, runId } = needRecipe()
    const before = Fs.statSync(model).size
    Fs.copyFileSync(mediumModelPath(), model) // an upgrade swapped in a bigger model at the same path
    const after = Fs.statSync(model).size
    // From the run: the file is no longer the one measured (R-1 identity), and that is named;
    // a generous gate keeps the bigger model feasible, so the change alone decides.
    const changed = await runCli(["verify", runId, "--db-path", dbOf(dir), "--gate-ttft-ms", "600000", "--replicates", "2"])
    expect(changed.code, changed.stdout + changed.stderr).toBe(1)
    expect(changed.stdout).toMatch(/^ +now: .* over 2 replicate\(s\)$/m)
    expect(changed.stdout).toContain(`changed: model ${model}: ${before} → ${after} bytes, header sha256 `)
    expect(changed.stdout).toContain("regressed: the model file is not the one measured")
    expect(changed.stderr).toContain("autotune: the recipe regressed: the model file is not the one measured")
    // From the JSON document (no model identity in it), at the recipe's own gate: the bigger model misses it.
    const missed = await runCli(["verify", docFile])
    expect(missed.code, missed.stdout + missed.stderr).toBe(2)
    // Cut in its pre-warm (bounded by the gate, issue 14) or in a probe, whichever this machine's speed makes it.
    expect(missed.stdout).toMatch(new RegExp(`infeasible now: (pre-warm: )?TTFT .*> ${gate} ms gate`))
  })

  it("R-3 a regression is called only when a second provider start shows it too: one slow start measured again holds (both said), two slow starts regress, a start that holds is the only one", { timeout: VERIFY_TIMEOUT_MS }, async () => {
    // ok, 200 ms to the first token: a few ms of a process's jitter are within the tolerance of it.
    const { db, dir, runId } = await fakeRecipe("ok-200")
    // Each verify's provider starts answer after the TTFTs given, in order (the last for any later start).
    const verify = async (ttfts: string, json: boolean) => {
      const count = Path.join(dir, `starts-${ttfts}`)
      const r = await runCli(["verify", runId, "--db-path", db, ...(json ? ["--json"] : [])],
        { env: { XDG_DATA_HOME: dir, FAKE_PROVIDER_START_TTFTS: ttfts, FAKE_PROVIDER_START_COUNT: count } })
      return { ...r, starts: Fs.readFileSync(count, "utf8").trim().split("\n").length }
    }
    const slowFirst = await verify("600,200", false)
    expect(slowFirst.code, slowFirst.stdout + slowFirst.stderr).toBe(0)
    expect(slowFirst.starts).toBe(2)
    expect(slowFirst.stdout).toMatch(/^ +first start: .* TTFT p95 (?:[5-9]\d\d|\d{4,}) ms over 3 replicate\(s\)(?: \(disturbed, SPEC N-3\))?, regressed \(TTFT p95 \d+ ms → (?:[5-9]\d\d|\d{4,}) ms \(.*\)\): measured again in a second provider start$/m)
    expect(slowFirst.stdout).toContain("holds: the recipe still passes the gate")
    // The figures shown as now, and judged, are the second start's.
    expect(Number(/^ +now: .* TTFT p95 (\d+) ms/m.exec(slowFirst.stdout)?.[1])).toBeLessThan(500)

    const bothSlow = await verify("600", true)
    expect(bothSlow.code, bothSlow.stdout + bothSlow.stderr).toBe(1)
    expect(bothSlow.starts).toBe(2)
    const doc = JSON.parse(bothSlow.stdout) as { verdict: string; regressions: Array<string>; first_start: { regressions: Array<string> } | null }
    expect(doc.verdict).toBe("regressed")
    expect(doc.regressions[0]).toMatch(/^TTFT p95 \d+ ms → (?:[5-9]\d\d|\d{4,}) ms/)
    expect(doc.first_start?.regressions[0]).toMatch(/^TTFT p95 \d+ ms → (?:[5-9]\d\d|\d{4,}) ms/)

    const quick = await verify("200", true)
    expect(quick.code, quick.stdout + quick.stderr).toBe(0)
    expect(quick.starts).toBe(1)
    expect((JSON.parse(quick.stdout) as { first_start: unknown }).first_start).toBeNull()
  })

  it("R-3 H-4 Ctrl-C twice during verify's probe: exit 130, the recipe's provider stopped, nothing left running", { timeout: VERIFY_TIMEOUT_MS }, async () => {
    const { db, dir, model, runId } = await fakeRecipe("ok-5")
    // The recipe's measured requests hang (every launch of it passes --max-batch): Ctrl-C lands mid-probe.
    const argvLog = Path.join(dir, "argv")
    const run = startCli(["verify", runId, "--db-path", db], { XDG_DATA_HOME: dir, FAKE_PROVIDER_ARGV_LOG: argvLog, FAKE_PROVIDER_SLOW_FLAG: "--max-batch" }, true)
    await waitFor(() => Fs.existsSync(argvLog), 60_000)
    await sleep(1500) // its pre-warm done, a measured request in flight
    const providerPids = () => {
      const out = ChildProcess.spawnSync("pgrep", ["-f", model]).stdout.toString().trim()
      return out === "" ? [] : out.split("\n").map(Number)
    }
    expect(providerPids().length).toBeGreaterThan(0)
    ctrlC(run)
    await sleep(300)
    ctrlC(run)
    expect(await run.exited, run.stderr()).toBe(130)
    await waitFor(() => providerPids().length === 0, 5000)
    expect(providerPids()).toEqual([])
  })
})
