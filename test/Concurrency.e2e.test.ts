/**
 * Serving many users (SPEC C-1..C-3) against the fake provider process: a
 * latency objective at N concurrent streams decides Stage 1, goodput is
 * recorded beside the aggregate, and the provider's measured peak memory can
 * make a trial infeasible.
 */
import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import * as Path from "node:path"
import { TuneDocument } from "../src/domain/TuneDocument.js"
import { ctrlC, runCli, startCli, tempDir, waitFor } from "./support/cli.js"
import { pidAlive } from "../src/system/Pids.js"
import * as Fs from "node:fs"
import { fakeProvider, tuneFake } from "./support/fakeTune.js"
import { readRows } from "./support/db.js"
import { tinyModelPath } from "./support/models.js"

const decodeDoc = Schema.decodeUnknownSync(Schema.parseJson(TuneDocument), { onExcessProperty: "error" })


interface LoadRow {
  readonly stage: number
  readonly model: string
  readonly fits: number
  readonly verdict: string
  readonly notes: string | null
  readonly tps: number | null
  readonly streams: number | null
  readonly itl_p95_ms: number | null
  readonly aggregate_tps: number | null
  readonly peak_rss_bytes: number | null
  readonly estimated_bytes: number | null
}

const GIB = 1024 ** 3

describe("concurrency and goodput against a fake provider process (SPEC C-1, C-2, C-3)", () => {
  it("C-1 A-1 F-2h at 4 users a candidate whose TTFT grows with the crowd misses the objective and a smaller one is chosen; one user keeps the first", async () => {
    // crowd-T: a request waits T ms per measured request in flight, itself included, so 4 users wait T, 2T, 3T, 4T.
    const single = await tuneFake("crowd-400,crowd-60")
    expect(single.r.code, single.r.stderr).toBe(0)
    const one = decodeDoc(single.r.stdout)
    expect(one.recommendation?.model).toBe("crowd-400")
    // F-2h: a single-user run's inputs carry none of C's keys, so its recipe hashes as before.
    expect(Object.keys(one.inputs).sort()).toEqual(
      ["candidate_models", "gate_ttft_ms", "stage1_replicates", "stage2_replicates", "target_context", "tps_tie_epsilon"]
    )

    const crowd = await tuneFake("crowd-400,crowd-60", ["--concurrency", "4", "--slo-ttft-p95-ms", "1000"])
    expect(crowd.r.code, crowd.r.stderr).toBe(0)
    const doc = decodeDoc(crowd.r.stdout)
    expect(doc.recommendation?.model).toBe("crowd-60")
    expect(doc.inputs).toMatchObject({ concurrency: 4, slo_ttft_p95_ms: 1000 })
    expect(doc.recipe_hash).not.toBe(one.recipe_hash)
    expect(doc.infeasible).toHaveLength(1)
    expect(doc.infeasible[0]!.model).toBe("crowd-400")
    // The 4th user waited about 4 × 400 ms: the reason names the p95, the objective and the users.
    expect(doc.infeasible[0]!.reason).toMatch(/^TTFT p95 (\d+) ms > 1000 ms objective at 4 users$/)
    expect(Number(/p95 (\d+)/.exec(doc.infeasible[0]!.reason)![1])).toBeGreaterThanOrEqual(1600)
    // C-1: every start, Stage 1's too, had a slot per user.
    expect(crowd.argvs.length).toBeGreaterThanOrEqual(3)
    for (const a of crowd.argvs) expect(a[a.indexOf("--max-batch") + 1]).toBe("4")
    // Every trial recorded its streams, the worst stream's ITL and the goodput beside the aggregate.
    const rows = await readRows<LoadRow>(crowd.db, "SELECT * FROM tune_trials ORDER BY trial_id")
    expect(rows.map((t) => [t.stage, t.model, t.verdict])).toEqual([
      [1, "crowd-400", "ObjectiveMissed"], [1, "crowd-60", "Fits"], [2, "crowd-60", "Fits"]
    ])
    for (const t of rows) expect(t.streams).toBe(4)
    for (const t of rows.filter((t) => t.fits === 1)) {
      expect(t.itl_p95_ms).toBeGreaterThan(0)
      // Every stream met the objective, so the goodput is the aggregate.
      expect(t.tps).toBeGreaterThan(0)
      expect(t.tps).toBeCloseTo(t.aggregate_tps!, 6)
    }
    expect(doc.recommendation?.load).toMatchObject({ streams: 4 })
    expect(doc.recommendation!.load!.aggregate_tps_median).toBeGreaterThan(0)
    // One feasible cell: it is the Pareto front, and the recommendation.
    expect(doc.pareto).toEqual([expect.objectContaining({ recommended: true, knobs: doc.recommendation!.knobs })])
  })

  it("C-4 --find-max-concurrency doubles the users until the objective fails, then bisects: N met, N + 1 did not", async () => {
    const { r, db } = await tuneFake("crowd-200", ["--slo-ttft-p95-ms", "1000", "--find-max-concurrency"])
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    expect(doc.inputs).toMatchObject({ slo_ttft_p95_ms: 1000, find_max_concurrency: true })
    const c = doc.capacity!
    expect(c.capped).toBe(false)
    expect(c.objective).toEqual({ ttft_p95_ms: 1000, itl_p95_ms: null, decode_tps: null })
    // TTFT grows by 200 ms per user in flight: one user waits 200 ms, so at least 1 and fewer than 16 users fit in 1000 ms.
    expect(c.users).toBeGreaterThanOrEqual(1)
    expect(c.users).toBeLessThan(16)
    expect(c.missed_at).toBe(c.users + 1)
    const at = (n: number) => c.steps.find((x) => x.users === n)!
    expect(at(c.users).met).toBe(true)
    expect(at(c.missed_at!).met).toBe(false)
    expect(at(c.missed_at!).reason).toMatch(new RegExp(`^TTFT p95 \\d+ ms > 1000 ms objective at ${c.missed_at} users$`))
    // Doubling from one user up to the first miss, then bisection between the last met and it.
    const firstMiss = c.steps.findIndex((x) => !x.met)
    expect(c.steps.slice(0, firstMiss + 1).map((x) => x.users)).toEqual(
      Array.from({ length: firstMiss + 1 }, (_, i) => 2 ** i)
    )
    // The first step (1 user, under this objective) is the recommendation's own Stage 2 trial: not measured again, but
    // on record like every step, as a stage-3 row with its users.
    const rows = await readRows<LoadRow & { started_at: string }>(db, "SELECT * FROM tune_trials WHERE stage = 3 ORDER BY trial_id")
    expect(rows.map((t) => [t.streams, t.fits])).toEqual(c.steps.map((x) => [x.users, x.met ? 1 : 0]))
    expect(c.steps[0]).toMatchObject({ users: 1, met: true, goodput_tps: doc.recommendation!.tps_median })
    const kept = (await readRows<{ started_at: string }>(db, "SELECT started_at FROM tune_trials WHERE stage = 2 AND kept = 1"))[0]!
    expect(rows[0]!.started_at).toBe(kept.started_at)
  })

  it("C-4 B-5 with no feasible Stage 2 cell the capacity's first step is measured, not taken from Stage 1's trial", async () => {
    // Every Stage 2 cell carries --max-context, which this provider answers 503: the Stage 1 configuration is recommended.
    const { r, db } = await tuneFake("crowd-100", ["--concurrency", "2", "--slo-ttft-p95-ms", "1000", "--find-max-concurrency"], {
      FAKE_PROVIDER_FAIL_FLAG: "--max-context"
    })
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    expect(doc.recommendation?.knobs.max_context_override).toBeNull()
    const rows = await readRows<LoadRow & { started_at: string }>(db, "SELECT * FROM tune_trials ORDER BY trial_id")
    const stage1 = rows.find((t) => t.stage === 1)!
    const steps = rows.filter((t) => t.stage === 3)
    expect(steps[0]).toMatchObject({ streams: 2, fits: 1 })
    expect(steps[0]!.started_at > stage1.started_at).toBe(true)
    expect(doc.capacity!.steps.map((x) => x.users)).toEqual(steps.map((t) => t.streams))
    expect(doc.capacity!.users).toBeGreaterThanOrEqual(2)
  })

  it("C-1 R-3 verify re-probes a recipe as it was tuned: one user on 4 slots stays one user, not 4 requests at once", async () => {
    // crowd-200: 200 ms per request in flight. Tuned for 1 user (TTFT bound 300 ms) on 4 slots.
    const { r, db } = await tuneFake("crowd-200", ["--slo-ttft-p95-ms", "300", "--max-batch-axis", "4"])
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    expect(doc.inputs).toMatchObject({ concurrency: 1, slo_ttft_p95_ms: 300 })
    expect(doc.recommendation?.knobs.max_concurrency_override).toBe(4)
    // The fake's tok/s follows its token timers, which a loaded machine stretches (one suite run read −20.8 % against
    // the 20 % default): a wide tolerance keeps the verdict on what this test is about, how many requests go at once.
    const v = await runCli(["verify", doc.run_id, "--db-path", db, "--json", "--replicates", "3", "--tolerance", "0.9"])
    expect(v.code, v.stderr).toBe(0)
    const result = JSON.parse(v.stdout) as { verdict: string; measured: { ttft_p95_ms: number } }
    expect(result.verdict).toBe("holds")
    // 4 requests at once would have waited up to 800 ms.
    expect(result.measured.ttft_p95_ms).toBeLessThan(300)
  })

  it("C-1 an ITL objective tighter than the provider's token gaps fails the trial with the worst stream's ITL p95", async () => {
    const { r } = await tuneFake("ok-5", ["--concurrency", "2", "--slo-itl-p95-ms", "0.01"])
    expect(r.code).toBe(2)
    const doc = decodeDoc(r.stdout)
    expect(doc.exit_reason).toBe("all_infeasible")
    expect(doc.infeasible[0]!.reason).toMatch(/^ITL p95 \d+ ms > 0\.01 ms objective at 2 users$/)
  })

  it("C-3 a --memory-limit below the provider's measured peak makes it infeasible with the peak in the reason; a forked worker counts", async () => {
    const alone = await tuneFake("ok-5,forks-5", ["--memory-limit", "0.02"])
    expect(alone.r.code).toBe(2)
    const doc = decodeDoc(alone.r.stdout)
    for (const i of doc.infeasible) expect(i.reason).toMatch(/^peak 0\.\d\d GiB under 1 user > 90 % of 0\.02 GiB \(SPEC C-3\)$/)
    const rows = await readRows<LoadRow>(alone.db, "SELECT * FROM tune_trials ORDER BY trial_id")
    expect(rows.map((t) => [t.model, t.verdict])).toEqual([["ok-5", "MemoryOver"], ["forks-5", "MemoryOver"]])
    const [ok, forks] = rows.map((t) => t.peak_rss_bytes!)
    expect(ok).toBeGreaterThan(0.9 * 0.02 * GIB)
    // The forked worker is a whole Node process of its own (tens of MiB): the group's peak holds it too.
    expect(forks! - ok!).toBeGreaterThan(10 * 1024 * 1024)
    // Not a GGUF file: no estimate was made.
    expect(rows.every((t) => t.estimated_bytes === null)).toBe(true)
  })

  it("C-1 C-3 a real embedded tune at 2 users: Stage 1 and every cell on 2 slots with 2 streams, the serve process's peak memory recorded", async () => {
    const dir = tempDir()
    const db = Path.join(dir, "runs.db")
    const r = await runCli([
      "tune", "--provider", "embedded", "--candidate-models", tinyModelPath(), "--target-context", "256", "--max-tokens", "16",
      "--stage1-replicates", "2", "--stage2-replicates", "1", "--threads-axis", "1", "--concurrency", "2", "--json", "--db-path", db
    ], { env: { XDG_DATA_HOME: dir } })
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    expect(doc.recommendation?.knobs.max_concurrency_override).toBe(2)
    expect(doc.recommendation?.serve_command).toContain("--max-batch 2")
    const rows = await readRows<LoadRow & { max_batch: number | null; estimated_bytes: number | null }>(db, "SELECT * FROM tune_trials ORDER BY trial_id")
    expect(rows.map((t) => [t.stage, t.max_batch, t.streams, t.fits])).toEqual([[1, 2, 2, 1], [2, 2, 2, 1]])
    for (const t of rows) {
      expect(t.itl_p95_ms).toBeGreaterThan(0)
      expect(t.aggregate_tps).toBeGreaterThan(0)
      // The serve process holds Node, the engine and the model: far above its GGUF estimate's share of nothing.
      expect(t.peak_rss_bytes).toBeGreaterThan(50 * 1024 * 1024)
      expect(t.estimated_bytes).toBeGreaterThan(0)
    }
  })

  it("C-4 H-4 L-1 Ctrl-C twice to the tuner's process group during the capacity search: exit 130, every forked worker of every step gone", async () => {
    const dir = tempDir()
    const workerLog = Path.join(dir, "workers")
    const workers = () => (Fs.existsSync(workerLog) ? Fs.readFileSync(workerLog, "utf8").trim().split("\n").filter(Boolean).map(Number) : [])
    // forks-5: each start forks a SIGTERM-deaf worker into the provider's group; every step meets the objective, so the search runs on.
    const run = startCli([
      "tune", "--provider", "macprovider", "--provider-bin", fakeProvider, "--candidate-models", "forks-5", "--target-context", "200",
      "--max-tokens", "8", "--stage1-replicates", "1", "--stage2-replicates", "1", "--slo-ttft-p95-ms", "30000", "--find-max-concurrency",
      "--db-path", Path.join(dir, "runs.db")
    ], { FAKE_PROVIDER_WORKER_LOG: workerLog, XDG_DATA_HOME: dir }, true)
    try {
      await waitFor(() => /\[stage 3\] 2 user/.test(run.stderr()), 60_000)
      expect(run.stderr()).toMatch(/\[stage 3\] 2 user/)
      ctrlC(run)
      ctrlC(run)
      expect(await run.exited).toBe(130)
      expect(workers().length).toBeGreaterThanOrEqual(3)
      await waitFor(() => workers().every((p) => !pidAlive(p)), 5000)
      expect(workers().filter((p) => pidAlive(p))).toEqual([])
    } finally {
      for (const p of workers()) {
        try {
          process.kill(p, "SIGKILL")
        } catch { /* gone */ }
      }
      run.child.kill("SIGKILL")
    }
  }, 90_000)
})
