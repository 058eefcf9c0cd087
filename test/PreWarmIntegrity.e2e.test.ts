import { Schema } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { TuneDocument } from "../src/domain/TuneDocument.js"
import { runCli, tempDir, logFiles } from "./support/cli.js"
import { readRows } from "./support/db.js"
import { repoRoot, tinyModelPath } from "./support/models.js"

const decodeDoc = Schema.decodeUnknownSync(Schema.parseJson(TuneDocument), { onExcessProperty: "error" })
const fake = Path.join(repoRoot, "fixtures", "fake-provider.mjs")

interface TrialNotes { readonly model: string; readonly fits: number; readonly notes: string | null }
interface RunEnd { readonly exit_reason: string; readonly ended_at: string | null; readonly recipe_hash: string | null }

const tuneFake = async (loadError: string) => {
  const dir = tempDir()
  const db = Path.join(dir, "runs.db")
  const argvLog = Path.join(dir, "argv.jsonl")
  const r = await runCli([
    "tune", "--provider", "macprovider", "--provider-bin", fake, "--candidate-models", "load-error,ok-5",
    "--target-context", "200", "--max-tokens", "8", "--stage1-replicates", "1", "--stage2-replicates", "1",
    "--json", "--db-path", db
  ], { env: { FAKE_PROVIDER_LOAD_ERROR: loadError, FAKE_PROVIDER_ARGV_LOG: argvLog, XDG_DATA_HOME: dir } })
  const starts = Fs.readFileSync(argvLog, "utf8").trim().split("\n").length
  return { r, db, starts }
}

describe("pre-warm integrity (SPEC D-2, H-2)", () => {
  it("D-2 H-2 an integrity line from the provider aborts the whole run after its trial row; the next candidate never starts", async () => {
    const { db, r, starts } = await tuneFake("Error: Required configuration file missing: tokenizer.json")
    expect(r.code, r.stderr).toBe(5)
    const doc = decodeDoc(r.stdout)
    expect(doc.exit_reason).toBe("pre_warm_integrity_failure")
    expect(doc.recommendation).toBeNull()
    expect(doc.recipe_hash).toBeNull()
    expect(doc.infeasible).toEqual([{
      model: "load-error", rank: 1, reason: expect.stringMatching(/^integrity: .*Required configuration file missing: tokenizer\.json/),
      marginal: false, disturbed: false
    }])
    expect(starts).toBe(1)
    expect(r.stderr).toContain("Required configuration file missing: tokenizer.json")
    const trials = await readRows<TrialNotes>(db, "SELECT model, fits, notes FROM tune_trials")
    expect(trials).toEqual([{ model: "load-error", fits: 0, notes: expect.stringMatching(/^integrity: /) }])
    const runs = await readRows<RunEnd>(db, "SELECT exit_reason, ended_at, recipe_hash FROM tune_runs")
    expect(runs).toEqual([{ exit_reason: "pre_warm_integrity_failure", ended_at: expect.any(String), recipe_hash: null }])
  })

  it("D-2 a transient loader line ('cache index invalid or corrupted') only rules that candidate out", async () => {
    const { r, starts } = await tuneFake("cache index invalid or corrupted; rebuild cache")
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    expect(doc.recommendation?.model).toBe("ok-5")
    expect(doc.infeasible[0]?.reason).toMatch(/^provider exited while starting \(exit code 1\).*cache index invalid or corrupted/)
    expect(starts).toBeGreaterThan(1)
  })

  /** A copy with one tensor's first dimension halved: the header still parses, tensor offsets no longer add up. */
  const shapeChanged = (bytes: Buffer) => {
    const b = Buffer.from(bytes)
    const at = b.indexOf("blk.0.ffn_down.weight") + "blk.0.ffn_down.weight".length + 4 // name, u32 n_dims
    b.writeBigUInt64LE(b.readBigUInt64LE(at) / 2n, at)
    return b
  }
  for (const [name, corrupt, reason] of [
    ["bad magic", (bytes: Buffer) => Buffer.concat([Buffer.from("GGUX"), bytes.subarray(4)]), /^integrity: pre-load check .*Invalid GGUF magic/],
    ["truncated tensor data", (bytes: Buffer) => bytes.subarray(0, Math.floor(bytes.length * 0.6)), /^integrity: pre-load check .*not within the file bounds/],
    ["a download cut inside the header (100 bytes)", (bytes: Buffer) => bytes.subarray(0, 100), /^integrity: pre-load check /],
    ["a download cut inside the tensor infos (50 KB)", (bytes: Buffer) => bytes.subarray(0, 50_000), /^integrity: pre-load check /],
    // Passes the header check; llama.cpp's loader finds it (gguf.cpp "has offset …, expected …").
    ["a tensor shape changed", shapeChanged, /^integrity: .*(has offset \d+, expected \d+|failed to read tensor data)/]
  ] as const) {
    it(`D-2 a corrupted GGUF (${name}) ends the run with pre_warm_integrity_failure, its row written, the next candidate never started`, async () => {
      const dir = tempDir()
      const db = Path.join(dir, "runs.db")
      const bad = Path.join(dir, "corrupt-60M.gguf")
      Fs.writeFileSync(bad, corrupt(Fs.readFileSync(tinyModelPath())))
      const r = await runCli([
        "tune", "--provider", "embedded", "--candidate-models", `${bad},${tinyModelPath()}`,
        "--target-context", "256", "--max-tokens", "8", "--stage1-replicates", "1", "--json", "--db-path", db
      ], { env: { XDG_DATA_HOME: dir, XDG_CACHE_HOME: dir } })
      expect(r.code, r.stderr).toBe(5)
      const doc = decodeDoc(r.stdout)
      expect(doc.exit_reason).toBe("pre_warm_integrity_failure")
      expect(doc.infeasible[0]?.reason).toMatch(reason)
      const trials = await readRows<TrialNotes>(db, "SELECT model, fits, notes FROM tune_trials")
      expect(trials.map((t) => [t.model, t.fits])).toEqual([[bad, 0]])
      // The header check runs before loading: a file it rejects is never started; the next candidate never is.
      const logs = Path.join(dir, "logs")
      expect(logFiles(logs)).toHaveLength(name === "a tensor shape changed" ? 1 : 0)
    })
  }
})
