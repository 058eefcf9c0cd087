import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Knobs } from "../src/domain/Knobs.js"
import { TuneDocument } from "../src/domain/TuneDocument.js"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { parseTuneFlags, pinnedFlags, planFromFlags, renderPlan } from "../src/cli/TuneCommand.js"
import { freePort } from "../src/system/Ports.js"
import { cacheDir } from "../src/system/UserDirs.js"
import { LADDER, rungPath } from "../src/gguf/DemoLadder.js"
import { physicalCores } from "../src/system/MachineInfo.js"
import { cliPath, runCli, tempDir, logFiles } from "./support/cli.js"
import { readRows } from "./support/db.js"
import { mediumModelPath, smallModelPath, tinyModelPath } from "./support/models.js"

/** Decodes stdout as the F-2 document; excess keys are an error (no undocumented keys). */
const decodeDoc = Schema.decodeUnknownSync(Schema.parseJson(TuneDocument), { onExcessProperty: "error" })

const env = (dir: string) => ({ XDG_DATA_HOME: Path.join(dir, "data"), XDG_CACHE_HOME: Path.join(dir, "cache") })

describe("autotune tune: usage errors (SPEC B-1, H-2)", () => {
  const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>, string]> = [
    ["empty max-context cell", ["--max-context-axis", "4000,,8000", "--target-context", "512"], "max-context-axis"],
    ["empty candidate cell", ["--candidate-models", "one,,two"], "candidate-models"],
    ["duplicate cell", ["--max-batch-axis", "1,2,1"], "max-batch-axis"],
    ["cell below target", ["--target-context", "2048", "--max-context-axis", "1024,4096"], "max-context-axis"],
    ["max-batch 0", ["--max-batch-axis", "0"], "max-batch-axis"],
    ["threads 0", ["--threads-axis", "0"], "threads-axis"],
    ["kv-bits 16", ["--kv-bits-axis", "16"], "kv-bits-axis"],
    ["missing model file", ["--candidate-models", "/nonexistent/model.gguf"], "candidate-models"],
    ["zero replicates", ["--stage1-replicates", "0"], "stage1-replicates"],
    ["zero budget", ["--max-duration", "0"], "max-duration"],
    ["zero ready timeout", ["--ready-timeout", "0"], "ready-timeout"],
    ["request timeout within the gate", ["--gate-ttft-ms", "5000", "--request-timeout", "5"], "request-timeout"],
    ["N-3 background cores neither a number nor off", ["--max-background-cores", "lots"], "max-background-cores"],
    ["N-2 a replicate cap below the replicates", ["--stage2-replicates", "5", "--max-replicates", "3"], "max-replicates"],
    ["N-3 a quiet wait of zero seconds", ["--wait-quiet", "0"], "wait-quiet"],
    ["F-5 a reply budget of zero", ["--reply-tokens", "0"], "reply-tokens"],
    ["F-5 a reply budget below the probe length", ["--reply-tokens", "32", "--max-tokens", "64"], "reply-tokens"],
    ["F-6 --verify without --apply", ["--verify"], "verify"],
    ["C-1 zero users", ["--concurrency", "0"], "concurrency"],
    ["C-1 an objective TTFT above the gate", ["--gate-ttft-ms", "5000", "--slo-ttft-p95-ms", "6000"], "slo-ttft-p95-ms"],
    ["C-1 a max-batch cell with fewer slots than users", ["--concurrency", "4", "--max-batch-axis", "2,4"], "max-batch-axis"],
    ["C-3 a memory headroom of zero", ["--memory-headroom", "0"], "memory-headroom"],
    ["a flash-attention axis for a provider without the setting", ["--provider", "macprovider", "--candidate-models", "org/model-1B", "--flash-attn-axis", "on,off"], "flash-attn-axis"],
    ["issue 14 flash attention off with every KV cell quantized", ["--kv-bits-axis", "8", "--flash-attn-axis", "off"], "flash-attn-axis"],
    ["issue 14 a flash-attention cell other than on or off", ["--flash-attn-axis", "on,maybe"], "flash-attn-axis"],
    ["an ubatch axis for a provider without the setting", ["--ubatch-axis", "64"], "ubatch-axis"],
    ["a batch axis for a provider without the setting", ["--batch-axis", "512"], "batch-axis"],
    ["C-1 an ITL objective of zero", ["--slo-itl-p95-ms", "0"], "slo-itl-p95-ms"],
    ["C-1 a decode objective of zero", ["--slo-decode-tps", "0"], "slo-decode-tps"]
  ]
  for (const [name, args, flag] of cases) {
    it(`B-1 ${name}: exit 64 naming --${flag}, no database written`, async () => {
      const dir = tempDir()
      const db = Path.join(dir, "runs.db")
      const withModel = args.includes("--candidate-models") ? args : [...args, "--candidate-models", tinyModelPath()]
      const r = await runCli(["tune", ...withModel, "--db-path", db], { env: env(dir) })
      expect(r.code).toBe(64)
      expect(r.stderr).toContain(`--${flag}`)
      expect(r.stdout).toBe("")
      expect(Fs.existsSync(db)).toBe(false)
    })
  }

  it("B-1 a non-numeric flag value is a usage error too (exit 64)", async () => {
    const dir = tempDir()
    const r = await runCli(["tune", "--target-context", "lots", "--db-path", Path.join(dir, "x.db")], { env: env(dir) })
    expect(r.code).toBe(64)
    expect(r.stderr).toContain("target-context")
  })
})

describe("autotune tune --dry-run (SPEC H-5)", () => {
  it("H-5 prints candidates in order, axes and cells, and touches nothing", async () => {
    const dir = tempDir()
    const db = Path.join(dir, "runs.db")
    const r = await runCli([
      "tune", "--dry-run", "--candidate-models", `${smallModelPath()},${tinyModelPath()}`,
      "--kv-bits-axis", "unset,8", "--max-batch-axis", "1,2", "--db-path", db
    ], { env: env(dir) })
    expect(r.code).toBe(0)
    expect(r.stdout.indexOf(smallModelPath())).toBeLessThan(r.stdout.indexOf(tinyModelPath()))
    expect(r.stdout).toContain("= 4 cell(s)")
    expect(Fs.existsSync(db)).toBe(false)
    expect(Fs.readdirSync(dir)).toEqual([])
  })

  it("H-5 a dry run on llama-server starts no process: its binary is not even asked for --help or --version", async () => {
    const dir = tempDir()
    const work = tempDir()
    const marker = Path.join(work, "ran")
    const bin = Path.join(work, "llama-server")
    Fs.writeFileSync(bin, `#!/bin/sh\necho "$@" >> '${marker}'\necho usage: --cache-ram\n`, { mode: 0o755 })
    const r = await runCli([
      "tune", "--dry-run", "--provider", "llama-server", "--provider-bin", bin, "--candidate-models", tinyModelPath(),
      "--db-path", Path.join(dir, "runs.db")
    ], { env: env(dir) })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain("provider:        llama-server")
    expect(Fs.existsSync(marker)).toBe(false)
    expect(Fs.readdirSync(dir)).toEqual([])
  })

  it.effect("R-2 issue 14: a demo run's pinned flags make the same plan on --resume, its flash-attention and threads axes included", () =>
    Effect.gen(function*() {
      const demo = yield* planFromFlags(yield* parseTuneFlags([]))
      expect((demo.axes.flashAttn ?? []).length).toBe(2)
      const resumed = yield* planFromFlags(pinnedFlags(yield* parseTuneFlags([]), demo), true)
      expect(renderPlan(resumed)).toBe(renderPlan(demo))
    }).pipe(Effect.provide(NodeContext.layer)))

  it.effect("R-2 A-1 a demo run made with the earlier ladder (1.1B top rung) is still a demo run when resumed (its files written again where missing); the same list given by an operator is an operator's list", () =>
    Effect.gen(function*() {
      const ladderDir = Path.join(cacheDir(), "models")
      const earlier = ["1.1b", "42m", "15m"].map((l) => Path.join(ladderDir, `synth-${l}-q4_0.gguf`)).join(",")
      const flags = yield* parseTuneFlags(["--provider", "embedded", "--candidate-models", earlier])
      expect((yield* planFromFlags(flags, true)).demoLadderDir).toBe(ladderDir)
      expect((yield* planFromFlags(flags)).demoLadderDir).toBeNull()
      const current = yield* parseTuneFlags(["--provider", "embedded", "--candidate-models", LADDER.map((r) => rungPath(ladderDir, r)).join(",")])
      expect((yield* planFromFlags(current)).demoLadderDir).toBe(ladderDir)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.effect("C-1 E-5 issue 14 an ITL objective below twice the embedded provider's write interval starts it, and prints its serve command, with half the objective as --stream-interval-ms", () =>
    Effect.gen(function*() {
      const spec = { model: "/m/a.gguf", port: 4000, knobs: Knobs.defaults, targetContext: 512, replyTokens: 512 }
      const argsOf = (flags: ReadonlyArray<string>) =>
        Effect.map(Effect.flatMap(parseTuneFlags(["--provider", "embedded", "--candidate-models", "/m/a.gguf", ...flags]), planFromFlags), (p) => ({
          argv: p.adapter.argv(spec, true).args.join(" "),
          serve: p.adapter.serveCommand(spec),
          plan: renderPlan(p)
        }))
      const tight = yield* argsOf(["--slo-itl-p95-ms", "25"])
      expect(tight.argv).toContain("--stream-interval-ms 12")
      expect(tight.serve).toContain("--stream-interval-ms 12")
      expect(tight.plan).toContain("stream writes:   at most every 12 ms (the embedded provider's --stream-interval-ms, default 20: the ITL objective is tighter than twice it)")
      const tightest = yield* argsOf(["--slo-itl-p95-ms", "1"])
      expect(tightest.argv).toContain("--stream-interval-ms 0")
      expect(tightest.plan).toContain("stream writes:   each token as it comes")
      for (const loose of [[], ["--slo-itl-p95-ms", "40"], ["--concurrency", "2"]]) {
        const d = yield* argsOf(loose)
        expect(d.argv).not.toContain("--stream-interval-ms")
        expect(d.plan).not.toContain("stream writes:")
      }
    }).pipe(Effect.provide(NodeContext.layer)))

  it("H-5 the demo ladder's dry run generates no model; issue 14: its axes list the provider's defaults first (all cores, flash attention on) and measure flash attention off", async () => {
    const dir = tempDir()
    const r = await runCli(["tune", "--dry-run", "--db-path", Path.join(dir, "runs.db")], { env: env(dir) })
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("synth-3b-q4_0.gguf")
    const cores = physicalCores()
    const threads = cores === 1 ? [1] : [cores, 1]
    expect(r.stdout).toContain(`× threads ${threads.join(",")} × flash-attn on,off = ${threads.length * 3} cell(s)`)
    expect(r.stdout).toContain(`cell 1: kv=unset ctx=512 batch=1 threads=${cores} fa=on\n`)
    expect(r.stdout).toContain(`cell 2: kv=unset ctx=512 batch=1 threads=${cores} fa=off\n`)
    expect(r.stdout).not.toMatch(/kv=8 .*fa=off/)
    expect(Fs.readdirSync(dir)).toEqual([])
  })
})


interface TrialDbRow {
  stage: number
  model: string
  kv_bits: number | null
  max_batch: number | null
  max_context_cap: number | null
  threads: number | null
  kept: number
  fits: number
  notes: string | null
  ttft_ms: number | null
  tps: number | null
  replicates_n: number
}

describe("autotune tune on the real embedded provider (SPEC A, B, F, S)", () => {
  it("A-1 A-2 B-4 S-1 H-1: small,big with a generous gate picks small, never starts big, keeps exactly one Stage 2 row", async () => {
    const dir = tempDir()
    const db = Path.join(dir, "runs.db")
    const small = tinyModelPath()
    const big = smallModelPath()
    const r = await runCli([
      "tune", "--candidate-models", `${small},${big}`, "--target-context", "256", "--max-tokens", "16",
      "--stage1-replicates", "2", "--stage2-replicates", "2", "--max-replicates", "2", "--max-batch-axis", "1,2", "--gate-ttft-ms", "60000",
      "--json", "--db-path", db
    ], { env: env(dir) })
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    expect(doc.exit_reason).toBe("ok")
    expect(doc.recommendation?.model).toBe(small)
    expect(doc.infeasible).toEqual([])
    expect(doc.alternates).toEqual([]) // the bigger one is no alternate (F-1: smaller only)
    expect(doc.recipe_hash).toMatch(/^sha256:[0-9a-f]{64}$/)
    expect(doc.recommendation?.knobs.threads).not.toBeUndefined()
    // F-2h with none of issue 17's flags: the knobs and inputs are keyed as they always were (so the recipe hashes the same).
    expect(Object.keys(doc.recommendation!.knobs).sort()).toEqual(["kv_bits", "max_concurrency_override", "max_context_override", "threads"])
    expect(Object.keys(doc.inputs).sort()).toEqual(
      ["candidate_models", "gate_ttft_ms", "stage1_replicates", "stage2_replicates", "target_context", "tps_tie_epsilon"]
    )
    expect(doc.recommendation?.tps_median).toBeGreaterThan(0)

    const trials = await readRows<TrialDbRow>(db, "SELECT * FROM tune_trials ORDER BY trial_id")
    // the big one was never started: no trial and no provider log for it.
    expect(trials.every((t) => t.model === small)).toBe(true)
    const logs = logFiles(Path.join(dir, "logs")).map((f) => Path.basename(f))
    expect(logs.some((l) => l.startsWith("synth-60M"))).toBe(false)
    expect(logs.filter((l) => l.startsWith("synth-15M")).length).toBe(3) // stage 1 + two cells
    // E-3: one log per start, named <model>-<port>-<unix-ts>-<uuid8>.log
    for (const l of logs) expect(l).toMatch(/^synth-15M-q4_0-\d{2,5}-\d{10}-[0-9a-f]{8}\.log$/)
    // S-1: stage 1 rows kept = 0 with NULL knobs; B-4: exactly one stage 2 row kept = 1
    const s1 = trials.filter((t) => t.stage === 1)
    expect(s1).toHaveLength(1)
    expect(s1[0]).toMatchObject({ kept: 0, kv_bits: null, max_batch: null, max_context_cap: null, fits: 1 })
    const s2 = trials.filter((t) => t.stage === 2)
    expect(s2.map((t) => t.max_batch)).toEqual([1, 2])
    expect(s2.filter((t) => t.kept === 1)).toHaveLength(1)
    const kept = s2.find((t) => t.kept === 1)!
    expect(doc.recommendation?.knobs.max_concurrency_override).toBe(kept.max_batch)
    // F-1: the printed serve command runs as printed (here with a free port) and serves the model
    const serveArgs = doc.recommendation!.serve_command.split(" ")
    expect(serveArgs[0]).toBe("autotune")
    const port = await Effect.runPromise(freePort)
    const served = ChildProcess.spawn(process.execPath, [cliPath, ...serveArgs.slice(1), "--port", `${port}`], {
      stdio: "ignore"
    })
    try {
      let status = 0
      for (let i = 0; i < 100 && status !== 200; i++) {
        status = await fetch(`http://127.0.0.1:${port}/v1/models`).then((x) => x.status, () => 0)
        if (status !== 200) await new Promise((res) => setTimeout(res, 100))
      }
      expect(status).toBe(200)
    } finally {
      served.kill("SIGKILL")
    }
    // H-1: the run row was updated, not replaced
    const runs = await readRows<{ exit_reason: string; ended_at: string | null; recipe_hash: string; run_id: string }>(
      db, "SELECT * FROM tune_runs")
    expect(runs).toHaveLength(1)
    expect(runs[0]).toMatchObject({ exit_reason: "ok", recipe_hash: doc.recipe_hash, run_id: doc.run_id })
    expect(runs[0]!.ended_at).not.toBeNull()
  })

  it("A-1 A-2 G-1: big,small with the gate between their TTFTs recommends small and lists big as infeasible by TTFT", async () => {
    const dir = tempDir()
    const db = Path.join(dir, "runs.db")
    const small = tinyModelPath()
    const big = mediumModelPath()
    // A long prompt, so prefill compute (≈ 8× apart for these sizes) outweighs fixed per-request costs.
    const common = ["--target-context", "1536", "--max-tokens", "8", "--stage2-replicates", "1", "--db-path", db]
    // Measure each model's TTFT on this machine first, under the same conditions.
    const ttftOf = async (model: string) => {
      const r = await runCli(["tune", "--candidate-models", model, "--stage1-replicates", "3", "--json", ...common], {
        env: env(dir)
      })
      expect(r.code, r.stderr).toBe(0)
      const rows = await readRows<TrialDbRow>(db, `SELECT * FROM tune_trials WHERE stage = 1 AND model = '${model}'`)
      return { median: rows.at(-1)!.ttft_ms!, p95: decodeDoc(r.stdout).recommendation!.ttft_p95_ms! }
    }
    const s = await ttftOf(small)
    const b = await ttftOf(big)
    // The gate sits between them in log space: at least 1.6× from each (a noisy replicate has room).
    expect(b.median, `big median ${b.median} ms, small p95 ${s.p95} ms`).toBeGreaterThan(s.p95 * 2.5)
    const gate = Math.round(Math.sqrt(b.median * s.p95))
    const r = await runCli([
      "tune", "--candidate-models", `${big},${small}`, "--gate-ttft-ms", `${gate}`, "--stage1-replicates", "3",
      "--json", ...common
    ], { env: env(dir) })
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    expect(doc.recommendation?.model).toBe(small)
    expect(doc.infeasible).toHaveLength(1)
    expect(doc.infeasible[0]).toMatchObject({ model: big, rank: 1 })
    expect(doc.infeasible[0]!.reason).toMatch(/TTFT/)
    expect(doc.alternates).toEqual([])
    // H-1: three runs in one database file; reopening it (and re-running migrations) kept every row
    const runs = await readRows<{ exit_reason: string }>(db, "SELECT exit_reason FROM tune_runs")
    expect(runs.map((x) => x.exit_reason)).toEqual(["ok", "ok", "ok"])
  })

  it("A-4 H-2: every candidate infeasible exits all_infeasible and leads with the smallest", async () => {
    const dir = tempDir()
    const db = Path.join(dir, "runs.db")
    const r = await runCli([
      "tune", "--candidate-models", `${smallModelPath()},${tinyModelPath()}`, "--target-context", "256",
      "--max-tokens", "8", "--gate-ttft-ms", "1", "--stage1-replicates", "1", "--json", "--db-path", db
    ], { env: env(dir) })
    expect(r.code).toBe(2)
    const doc = decodeDoc(r.stdout)
    expect(doc.exit_reason).toBe("all_infeasible")
    expect(doc.recommendation).toBeNull()
    expect(doc.recipe_hash).toBeNull()
    expect(doc.infeasible.map((i) => i.rank)).toEqual([1, 2])
    expect(r.stderr).toMatch(new RegExp(`even ${tinyModelPath().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(14\\.\\dM\\): TTFT > 1 ms gate \\(no first token yet\\)`))
    const runs = await readRows<{ exit_reason: string }>(db, "SELECT exit_reason FROM tune_runs")
    expect(runs).toEqual([{ exit_reason: "all_infeasible" }])
    const trials = await readRows<TrialDbRow>(db, "SELECT * FROM tune_trials")
    expect(trials.map((t) => t.fits)).toEqual([0, 0])
  })
})

describe("autotune serve --config: usage errors (SPEC F-4)", () => {
  it("F-4 a missing file, a key of the wrong type, no model anywhere, or flash attention off with a quantized KV cache (issue 14) exits 64 naming the file or flag; no server starts", async () => {
    const dir = tempDir()
    const bad = Path.join(dir, "bad.yaml")
    Fs.writeFileSync(bad, "model: /m/a.gguf\nthreads_override: two\n")
    const kv8Off = Path.join(dir, "kv8-off.yaml")
    Fs.writeFileSync(kv8Off, `model: ${tinyModelPath()}\nkv_bits_override: 8\nflash_attn_override: false\n`)
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
      [["--config", Path.join(dir, "missing.yaml")], "missing.yaml"],
      [["--config", bad], `--config ${bad}: threads_override must be an integer`],
      [[], "--model <gguf> or --config <file> is required"],
      [["--model", tinyModelPath(), "--kv-bits", "8", "--flash-attn", "off"], "flash attention off (--flash-attn off): a KV cache of 8 bits (--kv-bits 8) needs it on"],
      [["--model", tinyModelPath(), "--flash-attn", "maybe"], "Expected one of the following cases: on, off, auto"],
      [["--config", kv8Off], `flash attention off (flash_attn_override in ${kv8Off}): a KV cache of 8 bits (kv_bits_override in ${kv8Off}) needs it on (llama.cpp quantizes the V cache only with it)`]
    ]
    for (const [args, want] of cases) {
      const r = await runCli(["serve", ...args, "--port", "1"], { env: env(dir) })
      expect(r.code, r.stderr).toBe(64)
      expect(r.stderr).toContain(want)
      expect(r.stderr).not.toContain("listening on")
    }
  })
})

