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

describe("skipping what cannot fit, on a memory estimate (issue: llama-server, item 4)", () => {
  it("a candidate estimated above --memory-limit is skipped without a process ever starting, and listed as estimated", async () => {
    const dir = tempDir()
    // 130M q4_0 at 256 tokens is estimated at ~0.2 GiB, 15M at ~0.08 GiB (node-llama-cpp GGUF insights).
    const r = await tune(dir, ["--memory-limit", "0.12", "--json"])
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    expect(doc.recommendation?.model).toBe(tinyModelPath())
    expect(doc.infeasible).toEqual([
      {
        model: mediumModelPath(), rank: 1, reason: expect.stringMatching(/^estimated 0\.\d GiB > 0\.1 GiB available$/),
        marginal: false, disturbed: false
      }
    ])
    // Never launched: no provider log for the 130M model; the 15M one was started.
    expect(logsOf(dir).filter((f) => f.startsWith("synth-130M"))).toEqual([])
    expect(logsOf(dir).filter((f) => f.startsWith("synth-15M")).length).toBeGreaterThan(0)
    const rows = await readRows<{ model: string; fits: number; notes: string | null; load_ms: number | null }>(
      Path.join(dir, "runs.db"), "SELECT model, fits, notes, load_ms FROM tune_trials WHERE stage = 1 ORDER BY trial_id")
    expect(rows[0]).toEqual({ model: mediumModelPath(), fits: 0, notes: expect.stringMatching(/^estimated /), load_ms: null })
  })

  it("the terminal block lists estimate skips apart from measured failures; --no-estimate launches the candidate", async () => {
    const dir = tempDir()
    const r = await tune(dir, ["--memory-limit", "0.12"])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/skipped, estimated not to fit \(not launched; --no-estimate to measure\):\n +#1 .*synth-130M-q4_0\.gguf \(1\d\d(\.\d)?M\): estimated /)
    expect(r.stdout).not.toContain("infeasible (measured):")
    const dir2 = tempDir()
    const r2 = await tune(dir2, ["--no-estimate", "--json"])
    expect(r2.code, r2.stderr).toBe(0)
    expect(decodeDoc(r2.stdout).recommendation?.model).toBe(mediumModelPath())
    expect(logsOf(dir2).filter((f) => f.startsWith("synth-130M")).length).toBeGreaterThan(0)
  })

  it("B-1 --memory-limit must be positive and means nothing with --no-estimate (exit 64)", async () => {
    const dir = tempDir()
    expect((await tune(dir, ["--memory-limit", "0"])).code).toBe(64)
    const r = await tune(dir, ["--memory-limit", "4", "--no-estimate"])
    expect(r.code).toBe(64)
    expect(r.stderr).toContain("--memory-limit")
  })
})
