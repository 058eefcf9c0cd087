import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import * as Path from "node:path"
import { TuneDocument } from "../src/domain/TuneDocument.js"
import { runCli, tempDir } from "./support/cli.js"
import { tuneFake } from "./support/fakeTune.js"
import { readRows } from "./support/db.js"

const decodeDoc = Schema.decodeUnknownSync(Schema.parseJson(TuneDocument), { onExcessProperty: "error" })

describe("gate reasons against a fake provider process (SPEC G-1, E-3, E-4, E-5)", () => {
  it("G-1 E-4 each failure mode is infeasible with its reason; the first feasible candidate wins", async () => {
    const { argvs, db, r } = await tuneFake(
      "exit-on-start,http503,leak,die-mid-stream,no-content,models-then-die,never-ready,stream-error,ok-5",
      ["--ready-timeout", "2"]
    )
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    expect(doc.recommendation?.model).toBe("ok-5")
    const reasons = Object.fromEntries(doc.infeasible.map((i) => [i.model, i.reason]))
    expect(reasons["exit-on-start"]).toMatch(/exited while starting \(exit code 3\).*out of memory/)
    expect(reasons["http503"]).toMatch(/^pre-warm: HTTP 503: server overloaded/)
    expect(reasons["leak"]).toContain("stop-token leak: <|eot_id|>")
    expect(reasons["die-mid-stream"]).toMatch(/provider process died during the request \(exit code 137/)
    expect(reasons["no-content"]).toContain("stream ended without any content")
    expect(reasons["models-then-die"]).toMatch(/answered \/v1\/models then exited \(exit code 1\).*backend crashed/)
    expect(reasons["never-ready"]).toContain("provider not ready after 2000 ms")
    expect(reasons["stream-error"]).toContain("provider error in the stream: backend failure mid-stream")
    expect(doc.infeasible.map((i) => i.rank)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    // E-3 E-5: every candidate started as `serve --model M --port P --no-join`, on a loopback port
    for (const a of argvs) {
      expect(a.slice(0, 2)).toEqual(["serve", "--model"])
      expect(a).toContain("--no-join")
      expect(Number(a[a.indexOf("--port") + 1])).toBeGreaterThan(0)
    }
    // S-1: every trial is recorded, infeasible ones with their reason in notes and the kind of it as the verdict
    const trials = await readRows<{ model: string; fits: number; notes: string | null; verdict: string }>(db,
      "SELECT model, fits, notes, verdict FROM tune_trials WHERE stage = 1 ORDER BY trial_id")
    expect(trials.map((t) => [t.model, t.fits, t.verdict])).toEqual([
      ["exit-on-start", 0, "StartFailed"], ["http503", 0, "RequestFailed"], ["leak", 0, "StopTokenLeak"],
      ["die-mid-stream", 0, "ProviderDied"], ["no-content", 0, "RequestFailed"], ["models-then-die", 0, "StartFailed"],
      ["never-ready", 0, "StartFailed"], ["stream-error", 0, "RequestFailed"], ["ok-5", 1, "Fits"]
    ])
    expect(trials.every((t) => t.fits === 1 || (t.notes ?? "").length > 0)).toBe(true)
  })

  it("D-1 a process's slow first use is kept out of the gate: a pre-warm bounded by the gate (issue 14) still passes it", async () => {
    // first-slow-3000: each process's first request takes 3 s, every later one 5 ms; the gate is 1000 ms, and
    // the full-length pre-warm is bounded by twice it in Stage 1: only the first-use requests are not.
    const { db, r } = await tuneFake("first-slow-3000", ["--gate-ttft-ms", "1000"])
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    expect(doc.recommendation?.model).toBe("first-slow-3000")
    expect(doc.infeasible).toEqual([])
    const trials = await readRows<{ fits: number; ttft_ms: number; prewarm_ms: number }>(db, "SELECT fits, ttft_ms, prewarm_ms FROM tune_trials")
    // Every trial (Stage 1 and each cell, a process each) paid its 3 s in the pre-warm, none in a probe.
    expect(trials.length).toBeGreaterThan(1)
    for (const t of trials) {
      expect(t.fits).toBe(1)
      expect(t.prewarm_ms).toBeGreaterThanOrEqual(3000)
      expect(t.ttft_ms).toBeLessThan(1000)
    }
  })

  it("E-5 macprovider knob flags: --kv-bits, --max-context, --max-batch passed per cell; no --threads", async () => {
    const { argvs, r } = await tuneFake("ok-5", ["--kv-bits-axis", "unset,4", "--max-context-axis", "300", "--max-batch-axis", "2"])
    expect(r.code, r.stderr).toBe(0)
    const cells = argvs.slice(1).map((a) => a.slice(a.indexOf("--no-join") + 1))
    expect(cells).toEqual([
      ["--max-context", "300", "--max-batch", "2"],
      ["--kv-bits", "4", "--max-context", "300", "--max-batch", "2"]
    ])
    const doc = decodeDoc(r.stdout)
    expect(doc.recommendation?.knobs).not.toHaveProperty("threads") // F-2: only where the provider has it
    expect(doc.recommendation?.serve_command).not.toContain("--no-join")
  })

  it("G-1 a provider streaming forever fails at the request timeout; one that cuts the stream short fails as cut", async () => {
    const { r } = await tuneFake("stream-forever,cut-mid-stream,slow-warm-5000", [
      "--gate-ttft-ms", "1000", "--request-timeout", "2", "--ready-timeout", "1"
    ])
    expect(r.code).toBe(2)
    const reasons = Object.fromEntries(decodeDoc(r.stdout).infeasible.map((i) => [i.model, i.reason]))
    // Its pre-warm requests (bounded by ready + request timeouts, D-1) got tokens; the probe hits the 2 s cap.
    expect(reasons["stream-forever"]).toBe("request timed out after 2000 ms")
    expect(reasons["cut-mid-stream"]).toBe("stream ended early: no [DONE] and no usage after 2 token(s)")
    // A first use that hangs is a timeout of the pre-warm (ready + request timeouts, D-1), not a gate's call.
    expect(reasons["slow-warm-5000"]).toBe("pre-warm: request timed out after 3000 ms")
  })

  it("A-1 E-5 provider model ids with a slash (org/name) are ids, not files", async () => {
    const { argvs, r } = await tuneFake("mlx-community/Llama-3.2-1B-Instruct-4bit")
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    expect(doc.recommendation?.model).toBe("mlx-community/Llama-3.2-1B-Instruct-4bit")
    expect(doc.machine.binary_version).toBe("fake-provider 1.0.0") // F-2: from `<provider-bin> --version`
    expect(argvs[0]?.slice(0, 3)).toEqual(["serve", "--model", "mlx-community/Llama-3.2-1B-Instruct-4bit"])
  })

  it("B-5 B-4 no feasible Stage 2 cell: the Stage 1 configuration is recommended and no row is kept", async () => {
    const { db, r } = await tuneFake("ok-5", ["--kv-bits-axis", "4,8"], { FAKE_PROVIDER_FAIL_FLAG: "--kv-bits" })
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    expect(doc.recommendation?.knobs).toEqual({ kv_bits: null, max_concurrency_override: null, max_context_override: null })
    expect(doc.recommendation?.serve_command).not.toContain("--kv-bits")
    const s2 = await readRows<{ fits: number; kept: number; kv_bits: number }>(db,
      "SELECT fits, kept, kv_bits FROM tune_trials WHERE stage = 2 ORDER BY trial_id")
    expect(s2).toEqual([{ fits: 0, kept: 0, kv_bits: 4 }, { fits: 0, kept: 0, kv_bits: 8 }])
  })

  it("P-1 a provider that truncates the prompt fails the trial with the token counts, never silently", async () => {
    const { r } = await tuneFake("ok-5", [], { FAKE_PROVIDER_MAX_PROMPT: "150" })
    expect(r.code).toBe(2)
    const doc = decodeDoc(r.stdout)
    expect(doc.infeasible[0]?.reason).toBe("prompt was 150 tokens, target 200 (more than 5 % off, SPEC P-1)")
  })

  it("H-5 --dry-run rejects what a real run would: a missing candidate file exits 64", async () => {
    const { r } = await tuneFake("/nonexistent/model.gguf,ok-5", ["--dry-run"])
    expect(r.code).toBe(64)
    expect(r.stderr).toContain("--candidate-models")
  })

  it("B-1 --threads-axis with macprovider is a usage error (exit 64)", async () => {
    const { r } = await tuneFake("ok-5", ["--threads-axis", "2"])
    expect(r.code).toBe(64)
    expect(r.stderr).toContain("--threads-axis")
  })

  it("E-4 a missing provider binary fails every candidate at once with the spawn error", async () => {
    const dir = tempDir()
    const started = Date.now()
    const r = await runCli([
      "tune", "--provider", "macprovider", "--provider-bin", Path.join(dir, "no-such-binary"), "--candidate-models",
      "a-1b,b-3b", "--json", "--db-path", Path.join(dir, "runs.db")
    ], { env: { XDG_DATA_HOME: dir } })
    expect(r.code).toBe(2)
    const doc = decodeDoc(r.stdout)
    expect(doc.infeasible.map((i) => i.reason)).toEqual([
      expect.stringContaining("ENOENT"),
      expect.stringContaining("ENOENT")
    ])
    // sizes from the ids (1b < 3b): the message leads with the smallest
    expect(r.stderr).toMatch(/even a-1b \(1B\)/)
    expect(Date.now() - started).toBeLessThan(15_000)
  })

  it("F-2h the same tune run twice with the same inputs gives the same recipe hash; other knobs give another", async () => {
    const axes = ["--kv-bits-axis", "unset", "--max-batch-axis", "1"]
    const a = await tuneFake("ok-1b,ok-32b", axes)
    const b = await tuneFake("ok-1b,ok-32b", axes)
    expect(a.r.code, a.r.stderr).toBe(0)
    expect(b.r.code, b.r.stderr).toBe(0)
    const [da, db] = [decodeDoc(a.r.stdout), decodeDoc(b.r.stdout)]
    expect(da.run_id).not.toBe(db.run_id)
    expect(db.recommendation?.model).toBe(da.recommendation?.model)
    expect(db.recommendation?.knobs).toEqual(da.recommendation?.knobs)
    expect(da.recipe_hash).toMatch(/^sha256:[0-9a-f]{64}$/)
    expect(db.recipe_hash).toBe(da.recipe_hash)
    // A-4 F-1: 1b chosen first in the given order; 32b is larger, so there are no alternates
    expect(da.recommendation?.model).toBe("ok-1b")
    expect(da.alternates).toEqual([])
    // F-2: macprovider has no thread-count setting, so its knobs carry no `threads` key at all
    expect(Object.keys(da.recommendation!.knobs).sort()).toEqual(["kv_bits", "max_concurrency_override", "max_context_override"])
    // S-2: the stored hash is the printed one
    const runs = await readRows<{ recipe_hash: string }>(a.db, "SELECT recipe_hash FROM tune_runs")
    expect(runs).toEqual([{ recipe_hash: da.recipe_hash }])
    const c = await tuneFake("ok-1b,ok-32b", ["--kv-bits-axis", "8"])
    expect(decodeDoc(c.r.stdout).recipe_hash).not.toBe(da.recipe_hash)
  })
})
