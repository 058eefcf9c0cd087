import { Schema } from "effect"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { TuneDocument } from "../src/domain/TuneDocument.js"
import { runCli, tempDir, logFiles } from "./support/cli.js"
import { readRows } from "./support/db.js"
import { mediumModelPath, tinyModelPath } from "./support/models.js"

const decodeDoc = Schema.decodeUnknownSync(Schema.parseJson(TuneDocument), { onExcessProperty: "error" })

const tune = (dir: string, extra: ReadonlyArray<string>) =>
  runCli([
    "tune", "--provider", "embedded", "--candidate-models", `${mediumModelPath()},${tinyModelPath()}`,
    "--target-context", "256", "--max-tokens", "8", "--stage1-replicates", "1", "--stage2-replicates", "1",
    "--threads-axis", "2", "--db-path", Path.join(dir, "runs.db"), ...extra
  ], { env: { XDG_DATA_HOME: dir, XDG_CACHE_HOME: dir } })

const logsOf = (dir: string) => logFiles(Path.join(dir, "logs")).map((f) => Path.basename(f))

describe("skipping what cannot fit, on a memory estimate (issue: llama-server, item 4), and the measured peak (SPEC C-3)", () => {
  it("C-3 a candidate estimated above --memory-limit is skipped without a process ever starting; one launched and measured above it is infeasible by its peak", async () => {
    const dir = tempDir()
    // 130M q4_0 at 256 tokens is estimated at ~0.2 GiB, 15M at ~0.08 GiB (node-llama-cpp GGUF insights); the 15M
    // provider process itself (Node, the engine, the model, its KV cache) holds well over 0.12 GiB.
    const r = await tune(dir, ["--memory-limit", "0.12", "--json"])
    expect(r.code, r.stderr).toBe(2)
    const doc = decodeDoc(r.stdout)
    expect(doc.exit_reason).toBe("all_infeasible")
    expect(doc.infeasible).toEqual([
      {
        model: mediumModelPath(), rank: 1, reason: expect.stringMatching(/^estimated 0\.\d GiB > 0\.1 GiB available$/),
        marginal: false, disturbed: false
      },
      {
        model: tinyModelPath(), rank: 2, reason: expect.stringMatching(/^peak 0\.\d\d GiB under 1 user > 90 % of 0\.12 GiB \(SPEC C-3\)$/),
        marginal: false, disturbed: false
      }
    ])
    // Never launched: no provider log for the 130M model; the 15M one was started.
    expect(logsOf(dir).filter((f) => f.startsWith("synth-130M"))).toEqual([])
    expect(logsOf(dir).filter((f) => f.startsWith("synth-15M")).length).toBeGreaterThan(0)
    const rows = await readRows<
      { model: string; fits: number; notes: string | null; load_ms: number | null; peak_rss_bytes: number | null; estimated_bytes: number | null }
    >(Path.join(dir, "runs.db"), "SELECT model, fits, notes, load_ms, peak_rss_bytes, estimated_bytes FROM tune_trials WHERE stage = 1 ORDER BY trial_id")
    expect(rows[0]).toEqual({
      model: mediumModelPath(), fits: 0, notes: expect.stringMatching(/^estimated /), load_ms: null, peak_rss_bytes: null,
      estimated_bytes: expect.any(Number)
    })
    // The launched one recorded its measured peak beside the estimate it was launched on (their ratio is the estimate's error).
    expect(rows[1]!.peak_rss_bytes).toBeGreaterThan(0.9 * 0.12 * 1024 ** 3)
    expect(rows[1]!.estimated_bytes).toBeGreaterThan(0)
    expect(rows[1]!.estimated_bytes).toBeLessThan(0.12 * 1024 ** 3)
  })

  it("the terminal block lists estimate skips apart from measured failures; --no-estimate launches the candidate", async () => {
    const dir = tempDir()
    const r = await tune(dir, ["--memory-limit", "0.12"])
    expect(r.code, r.stderr).toBe(2)
    expect(r.stdout).toMatch(/infeasible \(measured\):\n +#2 .*synth-15M-q4_0\.gguf \(14\.\dM\): peak 0\.\d\d GiB under 1 user/)
    expect(r.stdout).toMatch(/skipped, estimated not to fit \(not launched; --no-estimate to measure\):\n +#1 .*synth-130M-q4_0\.gguf \(1\d\d(\.\d)?M\): estimated /)
    const dir2 = tempDir()
    const r2 = await tune(dir2, ["--no-estimate", "--json"])
    expect(r2.code, r2.stderr).toBe(0)
    const doc = decodeDoc(r2.stdout)
    expect(doc.recommendation?.model).toBe(mediumModelPath())
    // No estimate made; the peak measured under load is in the recommendation.
    expect(doc.recommendation?.load).toMatchObject({ streams: 1, estimated_bytes: null })
    expect(doc.recommendation!.load!.peak_rss_bytes).toBeGreaterThan(0)
    expect(logsOf(dir2).filter((f) => f.startsWith("synth-130M")).length).toBeGreaterThan(0)
  })

  it("B-1 C-3 --memory-limit and --memory-headroom must be positive (exit 64); with --no-estimate the limit still bounds the measured peak", async () => {
    const dir = tempDir()
    expect((await tune(dir, ["--memory-limit", "0"])).code).toBe(64)
    const r = await tune(dir, ["--memory-headroom", "1.5"])
    expect(r.code).toBe(64)
    expect(r.stderr).toContain("--memory-headroom")
    const plan = await tune(dir, ["--memory-limit", "4", "--no-estimate", "--memory-headroom", "0.8", "--dry-run"])
    expect(plan.code, plan.stderr).toBe(0)
    expect(plan.stdout).toContain("no estimate (--no-estimate): every candidate is launched; a trial peaking above 80 % of 4 GiB is infeasible")
  })
})
