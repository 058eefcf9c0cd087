/**
 * `autotune report` (run + trials as a self-contained HTML page): the store's
 * read methods, the pure renderer, the CLI's exits, and the page rendered in
 * headless Chromium with no network. The run comes from a real `autotune tune`
 * against the fake provider (fixtures/fake-provider.mjs): one infeasible
 * Stage 1 candidate (http503), then four Stage 2 cells, two of them
 * infeasible (kv-bits 8 answers 503 via FAKE_PROVIDER_FAIL_FLAG).
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import { chromium } from "playwright-core"
import { beforeAll } from "vitest"
import { RunRow } from "../../src/domain/Run.js"
import { TrialRow } from "../../src/domain/Trial.js"
import { bestSoFarSeries, escapeHtml, isEstimated, jsonForScript, renderReport, runTieEpsilon, winnerIndex } from "../../src/report/ReportHtml.js"
import { TrialStore } from "../../src/services/TrialStore.js"
import { cliPath, type CliResult, runCli, tempDir } from "../support/cli.js"
import { readRows } from "../support/db.js"
import { repoRoot } from "../support/models.js"

const fake = Path.join(repoRoot, "fixtures", "fake-provider.mjs")

/** Runs the CLI with `cwd` as its working directory (runCli always uses the repo root). */
const runCliIn = (cwd: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const child = ChildProcess.spawn(process.execPath, [cliPath, ...args], {
      cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

/** Runs `effect` against a migrated store on `db` (created when missing, as tune does). */
const withStore = <A, E>(db: string, effect: Effect.Effect<A, E, TrialStore>): Promise<A> =>
  Effect.runPromise(effect.pipe(Effect.provide(TrialStore.layer(db).pipe(Layer.provide(NodeContext.layer)))))

interface DbTrial {
  readonly trial_id: number
  readonly stage: number
  readonly kept: number
  readonly fits: number
  readonly kv_bits: number | null
}

/** The run tuned once for this file. */
let dir = ""
let db = ""
let runId = ""
let dbTrials: ReadonlyArray<DbTrial> = []

beforeAll(async () => {
  dir = tempDir("autotune-report-")
  db = Path.join(dir, "runs.db")
  const r = await runCli([
    "tune", "--provider", "macprovider", "--provider-bin", fake, "--candidate-models", "http503,ok-5",
    "--target-context", "100", "--max-tokens", "8", "--stage1-replicates", "1", "--stage2-replicates", "1",
    "--kv-bits-axis", "unset,8", "--max-batch-axis", "1,2", "--db-path", db
  ], { env: { XDG_DATA_HOME: dir, FAKE_PROVIDER_FAIL_FLAG: "--kv-bits" } })
  if (r.code !== 0) throw new Error(`tune failed (${r.code}): ${r.stderr}`)
  runId = (await readRows<{ run_id: string }>(db, "SELECT run_id FROM tune_runs"))[0]!.run_id
  dbTrials = await readRows<DbTrial>(db,
    `SELECT trial_id, stage, kept, fits, kv_bits FROM tune_trials WHERE run_id = '${runId}' ORDER BY trial_id`)
})

describe("TrialStore read methods (SPEC S-1, S-2)", () => {
  it("S-2 run(id) decodes the tune_runs row as RunRow; an unknown id is None", async () => {
    const raw = (await readRows<Record<string, unknown>>(db, "SELECT * FROM tune_runs"))[0]!
    const [found, missing] = await withStore(db, Effect.gen(function*() {
      const store = yield* TrialStore
      return [yield* store.run(runId), yield* store.run("no-such-run")] as const
    }))
    expect(Option.isNone(missing)).toBe(true)
    const run = Option.getOrThrow(found)
    expect(run).toBeInstanceOf(RunRow)
    expect({ ...run }).toEqual(raw)
    expect(run.exit_reason).toBe("ok")
  })

  it("S-2 latestRunId is the greatest started_at, not the last inserted; None on an empty database", async () => {
    const file = Path.join(tempDir(), "runs.db")
    const start = (id: string, at: string) => ({
      run_id: id, started_at: at, spec_version: "1", machine_json: "{}", inputs_json: "{}"
    })
    const [empty, latest] = await withStore(file, Effect.gen(function*() {
      const store = yield* TrialStore
      const none = yield* store.latestRunId()
      yield* store.startRun(start("newer", "2026-02-01T00:00:00.000Z"))
      yield* store.startRun(start("older", "2026-01-01T00:00:00.000Z"))
      return [none, yield* store.latestRunId()] as const
    }))
    expect(empty).toEqual(Option.none())
    expect(latest).toEqual(Option.some("newer"))
  })
})

// ---- the pure renderer -------------------------------------------------------

const run = (over: Partial<ConstructorParameters<typeof RunRow>[0]> = {}) =>
  new RunRow({
    run_id: "r-1234567890", started_at: "2026-01-01T00:00:00.000Z", ended_at: "2026-01-01T00:01:00.000Z",
    exit_reason: "ok", spec_version: "1",
    machine_json: JSON.stringify({ ram_gb: 8, chip: "M1", os_version: "Darwin 24", binary_version: null }),
    inputs_json: JSON.stringify({
      target_context: 2000, candidate_models: ["big", "small"], stage1_replicates: 3, stage2_replicates: 3,
      gate_ttft_ms: 60000, tps_tie_epsilon: 0.1
    }),
    recommendation_json: JSON.stringify({
      model: "small", target_context: 2000, knobs: { kv_bits: null, max_concurrency_override: null, max_context_override: null },
      tps_median: 9.7, ttft_p95_ms: 2400, replicates: 3, serve_command: "macprovider-cli serve --model small"
    }),
    recipe_hash: `sha256:${"a".repeat(64)}`, partial: 0, parent_run_id: null, flags_json: null, identity_json: null, ...over
  })

const trial = (over: Partial<ConstructorParameters<typeof TrialRow>[0]>) =>
  new TrialRow({
    run_id: "r-1234567890", stage: 1, model: "small", target_context: 2000, kv_bits: null, max_context_cap: null,
    max_batch: null, threads: null, replicates_n: 3, tps: 9.7, ttft_ms: 2300, ttft_p95_ms: 2400, n_err: 0, fits: 1,
    kept: 0, notes: null, started_at: "2026-01-01T00:00:10.000Z", prompt_tokens: null, server_prompt_n: null,
    server_prompt_tps: null, server_decode_tps: null, server_request_ms: null, load_ms: null, prewarm_ms: null, probe_ms: null, model_params: null,
    model_bytes: null, verdict: null, tps_ci95_lo: null, tps_ci95_hi: null, ttft_ci95_lo_ms: null, ttft_ci95_hi_ms: null,
    tps_cv: null, ttft_cv: null, marginal: null, background_cores: null, disturbed: null, superseded: null,
    trial_key: null, reused_from_run: null, ...over
  })

/** The `<tbody>` rows of `table#trials`. */
const trialRows = (html: string): Array<string> =>
  html.split(`id="trials"`)[1]!.split("</tbody>")[0]!.split("\n").filter((l) => l.startsWith("<tr"))

describe("renderReport (SPEC S-1, F-1)", () => {
  it("F-1 escapes every text; kv_bits null shows unset; the kept Stage 2 row is the winner", () => {
    const evil = `</script><script>window.__pwned = 1</script>`
    const trials = [
      trial({ model: "big", fits: 0, tps: null, ttft_ms: null, ttft_p95_ms: null, notes: `TTFT <gate> & ${evil}` }),
      trial({}),
      trial({ stage: 2, kv_bits: null, max_context_cap: 2000, max_batch: 1, tps: 9.5 }),
      trial({ stage: 2, kv_bits: 8, max_context_cap: 2000, max_batch: 1, tps: 9.9, kept: 1 })
    ]
    const html = renderReport({ run: run({ run_id: `r"<b>` }), trials, chartJs: "" })
    expect(html).not.toContain("__pwned = 1</script>")
    expect(html).not.toContain("<b>")
    expect(html).toContain(escapeHtml(`TTFT <gate> & ${evil}`))
    const rows = trialRows(html)
    expect(rows).toHaveLength(4)
    expect(rows.filter((r) => r.includes(`class="winner`))).toEqual([rows[3]])
    expect(rows[3]).toContain("★ winner")
    expect(rows[2]).toContain("<td>unset</td>")
    expect(rows[3]).toContain("<td>8</td>")
  })

  it("B-5 with no kept cell the winner is the recommended model's Stage 1 row; no recommendation, no winner", () => {
    const trials = [
      trial({ model: "big", fits: 0, tps: null }),
      trial({}),
      trial({ stage: 2, kv_bits: 4, max_context_cap: 2000, max_batch: 1, fits: 0, tps: null, notes: "HTTP 503" })
    ]
    expect(winnerIndex(run(), trials)).toBe(1)
    expect(trialRows(renderReport({ run: run(), trials, chartJs: "" })).findIndex((r) => r.includes(`class="winner`))).toBe(1)
    expect(winnerIndex(run({ recommendation_json: null, exit_reason: "all_infeasible" }), trials)).toBeNull()
    expect(renderReport({ run: run({ recommendation_json: null }), trials, chartJs: "" })).not.toContain(`class="winner`)
  })

  it("S-1 trials whose notes start with \"estimated \" are listed as skipped, not among measured trials or charts", () => {
    const trials = [
      trial({ model: "huge", fits: 0, tps: null, replicates_n: 0, notes: "estimated 14.2 GiB > 8.0 GiB available" }),
      trial({})
    ]
    const html = renderReport({ run: run(), trials, chartJs: "" })
    const rows = trialRows(html)
    expect(rows).toHaveLength(1)
    expect(rows[0]).toContain(`data-trial="2"`)
    const skipped = html.split(`<section id="skipped">`)[1]!.split("</section>")[0]!
    expect(skipped).toContain("Skipped (estimated)")
    expect(skipped).toContain("estimated 14.2 GiB &gt; 8.0 GiB available")
    const data = JSON.parse(html.split(`id="report-data">`)[1]!.split("</script>")[0]!)
    expect(data.infeasible).toEqual([]) // the skipped one is not charted as a measured infeasible trial
    expect(data.feasible).toEqual([{ x: 2, y: 9.7 }])
    expect(renderReport({ run: run(), trials: [trial({})], chartJs: "" })).not.toContain(`id="skipped"`)
  })

  it("S-1 a row's recorded verdict decides what was skipped; notes are read only on rows stored without one", () => {
    const trials = [
      // Recorded as an estimate skip: skipped, whatever its notes say.
      trial({ model: "huge", fits: 0, tps: null, replicates_n: 0, notes: "never launched", verdict: "EstimatedOver" }),
      // A measured failure whose text happens to start with "estimated ": measured, not skipped.
      trial({ model: "odd", fits: 0, tps: null, notes: "estimated tokens were missing from the stream", verdict: "RequestFailed" }),
      trial({ verdict: "Fits" })
    ]
    expect(trials.map(isEstimated)).toEqual([true, false, false])
    const html = renderReport({ run: run(), trials, chartJs: "" })
    expect(trialRows(html).map((r) => /data-trial="(\d+)"/.exec(r)?.[1])).toEqual(["2", "3"])
    const skipped = html.split(`<section id="skipped">`)[1]!.split("</section>")[0]!
    expect(skipped).toContain("never launched")
    // A row stored before verdicts were recorded is read by its notes.
    expect(isEstimated(trial({ notes: "estimated 9.0 GiB > 8.0 GiB available" }))).toBe(true)
    expect(isEstimated(trial({ notes: "HTTP 503" }))).toBe(false)
  })

  it("B-3 best so far replays isNewBest: the winner at lower tok/s but lower TTFT ends the line, not the Stage 1 max", () => {
    const trials = [
      trial({ model: "big", fits: 0, tps: null, ttft_ms: null, notes: "HTTP 503" }),
      trial({ tps: 12, ttft_ms: 400 }),
      trial({ stage: 2, kv_bits: 8, tps: 10, ttft_ms: 500, kept: 1 }),
      trial({ stage: 2, kv_bits: 4, tps: 10.5, ttft_ms: 900 })
    ]
    const series = bestSoFarSeries(trials, 0.1)
    expect(series).toEqual([null, 12, 10, 10])
    const w = winnerIndex(run(), trials)
    expect(w).toBe(2)
    expect(series.at(-1)).toBe(trials[w!]!.tps)
    // The page's progress line is this series (trial # = index + 1).
    const html = renderReport({ run: run(), trials, chartJs: "" })
    const data = JSON.parse(html.split(`id="report-data">`)[1]!.split("</script>")[0]!)
    expect(data.best).toEqual([{ x: 1, y: null }, { x: 2, y: 12 }, { x: 3, y: 10 }, { x: 4, y: 10 }])
  })

  it("B-3 tie band ε·best: within it lower TTFT wins, a missing TTFT never wins; outside it higher tok/s wins", () => {
    const trials = [
      trial({ tps: 9, ttft_ms: 300 }),
      trial({ stage: 2, kv_bits: 8, tps: 10, ttft_ms: 800 }),
      trial({ stage: 2, kv_bits: 4, tps: 9.2, ttft_ms: 600 }), // |Δ| 0.8 ≤ 1.0: lower TTFT wins
      trial({ stage: 2, max_batch: 2, tps: 9.9, ttft_ms: null }), // in band, missing TTFT: keeps 9.2
      trial({ stage: 2, max_batch: 6, tps: 9.0, ttft_ms: 100, fits: 0, notes: "TTFT over gate" }), // infeasible: ignored
      trial({ stage: 2, max_batch: 5, tps: 10.2, ttft_ms: 700, kept: 1 }) // |Δ| 1.0 ≤ 0.92? no: higher tok/s wins
    ]
    expect(bestSoFarSeries(trials, 0.1)).toEqual([9, 10, 9.2, 9.2, 9.2, 10.2])
    // A narrower band turns the first in-band replacement into a loss (9.2 < 10 outside 0.01·10).
    expect(bestSoFarSeries(trials, 0.01)).toEqual([9, 10, 10, 10, 10, 10.2])
    expect(bestSoFarSeries(trials, 0.1).at(-1)).toBe(trials[winnerIndex(run(), trials)!]!.tps)
    // ε comes from the run's inputs_json, 0.1 when missing.
    expect(runTieEpsilon(run())).toBe(0.1)
    expect(runTieEpsilon(run({ inputs_json: JSON.stringify({ tps_tie_epsilon: 0.25 }) }))).toBe(0.25)
    expect(runTieEpsilon(run({ inputs_json: "{}" }))).toBe(0.1)
  })

  it("B-5 with no feasible Stage 2 cell the line stays at the Stage 1 choice, the winner's tok/s", () => {
    const trials = [
      trial({ model: "big", fits: 0, tps: 15, notes: "TTFT over gate" }), // infeasible: never sets best
      trial({ tps: 9.7 }),
      trial({ stage: 2, kv_bits: 8, fits: 0, tps: 20, notes: "HTTP 503" }),
      trial({ stage: 2, kv_bits: 4, fits: 0, tps: null, notes: "HTTP 503" }),
      trial({ stage: 2, max_batch: 2, fits: 0, tps: 0, replicates_n: 0, notes: "estimated 9.0 GiB > 8.0 GiB available" })
    ]
    const series = bestSoFarSeries(trials, 0.1, "small")
    expect(series).toEqual([null, 9.7, 9.7, 9.7, 9.7])
    expect(bestSoFarSeries(trials, 0.1)).toEqual(series) // chosen model taken from the Stage 2 rows
    const w = winnerIndex(run(), trials)
    expect(w).toBe(1)
    expect(series.at(-1)).toBe(trials[w!]!.tps)
  })

  it("C-4 the capacity section: the largest users met and the first missed, from the stage-3 rows; a disturbed step measured again decides nothing", () => {
    const steps = [
      trial({ stage: 3, streams: 4, fits: 1 }),
      trial({ stage: 3, streams: 8, fits: 1, superseded: 1 }),
      trial({ stage: 3, streams: 8, fits: 0, notes: "TTFT p95 1600 ms > 1000 ms objective at 8 users" }),
      trial({ stage: 3, streams: 6, fits: 1 }),
      trial({ stage: 3, streams: 7, fits: 0 })
    ]
    const html = renderReport({ run: run({}), trials: [trial({}), trial({ stage: 2, kept: 1 }), ...steps], chartJs: "" })
    const section = html.split(`<section id="capacity">`)[1]!.split("</section>")[0]!
    expect(section).toContain("Serves up to 6 concurrent user(s) within the objective; 7 did not.")
    expect(section.match(/<tr data-users/g)).toHaveLength(4)
    // Capacity steps are not points of the search's timeline.
    const data = JSON.parse(html.split(`id="report-data">`)[1]!.split("</script>")[0]!)
    expect(data.feasible.length + data.infeasible.length).toBe(2)
    expect(renderReport({ run: run({}), trials: [trial({})], chartJs: "" })).not.toContain(`id="capacity"`)
    // A run that stopped during the search (budget, Ctrl-C) did not finish it; one whose every step met reached the cap.
    const cut = renderReport({ run: run({ exit_reason: "budget_exhausted", partial: 1 }), trials: [trial({}), ...steps.slice(0, 1)], chartJs: "" })
    expect(cut).toContain("The search did not finish (the run ended budget_exhausted): 4 user(s) met the objective, the most measured so far.")
    // A search that ended (7 missed next to 6 met) is reported as such even if the run stopped later (during --verify).
    const late = renderReport({ run: run({ exit_reason: "interrupted" }), trials: [trial({}), ...steps], chartJs: "" })
    expect(late).toContain("Serves up to 6 concurrent user(s) within the objective; 7 did not.")
    const all = renderReport({ run: run({}), trials: [trial({}), trial({ stage: 3, streams: 256, fits: 1 })], chartJs: "" })
    expect(all).toContain("Serves at least 256 concurrent user(s) within the objective: the search stops at 256.")
  })

  it("issue 17 part 3: the trials table shows llama-server's throughput knobs where they were searched, a dash elsewhere", () => {
    const html = renderReport({
      run: run({}),
      trials: [trial({}), trial({ stage: 2, kept: 1, flash_attn: 1, ubatch: 128 }), trial({ stage: 2, flash_attn: 0, batch: 512 })],
      chartJs: ""
    })
    const rows = trialRows(html)
    expect(rows[0]).toContain("<td>—</td><td>9.70</td>")
    expect(rows[1]).toContain("<td>on / 128 / default</td>")
    expect(rows[2]).toContain("<td>off / default / 512</td>")
  })

  it("embedded JSON cannot close its <script> element", () => {
    expect(jsonForScript({ s: "</script><!--" })).toBe(`{"s":"\\u003c/script\\u003e\\u003c!--"}`)
  })
})

// ---- the CLI -----------------------------------------------------------------

describe("autotune report (SPEC S-1, S-2, H-2)", () => {
  it("S-2 report --db-path --out exits 0, writes the file atomically and prints its path", async () => {
    const outDir = tempDir()
    const out = Path.join(outDir, "r.html")
    const r = await runCli(["report", runId, "--db-path", db, "--out", out])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.trim()).toBe(out)
    expect(Fs.readdirSync(outDir)).toEqual(["r.html"]) // no temp file left behind
    const html = Fs.readFileSync(out, "utf8")
    expect(html).toContain(runId)
    expect(html).toContain("Chart.js v4")
    expect(html).not.toMatch(/<script[^>]*\ssrc=/i)
    expect(html).not.toMatch(/<link[^>]*\shref=/i)
  })

  it("S-2 no run id: the latest run, to autotune-report-<first 8>.html in the current directory", async () => {
    const cwd = tempDir()
    const r = await runCliIn(cwd, ["report", "--db-path", db])
    expect(r.code, r.stderr).toBe(0)
    const name = `autotune-report-${runId.slice(0, 8)}.html`
    expect(Fs.readdirSync(cwd)).toEqual([name])
    expect(r.stdout.trim()).toBe(Path.join(Fs.realpathSync(cwd), name))
  })

  it("H-2 an unknown run id exits 64 naming it and writes nothing", async () => {
    const outDir = tempDir()
    const r = await runCli(["report", "no-such-run", "--db-path", db, "--out", Path.join(outDir, "r.html")])
    expect(r.code).toBe(64)
    expect(r.stderr).toContain(`"no-such-run"`)
    expect(r.stdout).toBe("")
    expect(Fs.readdirSync(outDir)).toEqual([])
  })

  it("H-2 a missing database file exits 64 naming it and creates no database", async () => {
    const d = tempDir()
    const missing = Path.join(d, "nope.db")
    const r = await runCli(["report", "--db-path", missing, "--out", Path.join(d, "r.html")])
    expect(r.code).toBe(64)
    expect(r.stderr).toContain(missing)
    expect(Fs.readdirSync(d)).toEqual([])
  })

  it("H-2 a database with no runs exits 64 naming it and writes nothing", async () => {
    const d = tempDir()
    const empty = Path.join(d, "empty.db")
    await withStore(empty, Effect.void)
    const r = await runCli(["report", "--db-path", empty, "--out", Path.join(d, "r.html")])
    expect(r.code).toBe(64)
    expect(r.stderr).toContain(empty)
    expect(Fs.existsSync(Path.join(d, "r.html"))).toBe(false)
  })
})

// ---- the page in a browser ------------------------------------------------------

/** Counts pixels of canvas `id` within `tol` of `rgb` per channel and alpha > 200, and all non-transparent ones. */
const pixelCounts = (id: string, rgb: readonly [number, number, number], tol = 12) =>
  `(() => {
    const c = document.getElementById(${JSON.stringify(id)});
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const [r, g, b] = ${JSON.stringify(rgb)};
    let color = 0, painted = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 0) painted++;
      if (d[i + 3] > 200 && Math.abs(d[i] - r) <= ${tol} && Math.abs(d[i + 1] - g) <= ${tol} && Math.abs(d[i + 2] - b) <= ${tol}) color++;
    }
    return { color, painted, size: c.width * c.height };
  })()`

describe("the report page in headless Chromium (SPEC S-1)", () => {
  it("S-1 renders offline: one row per trial, the kept trial is the winner, both charts drawn", async () => {
    const out = Path.join(tempDir(), "report.html")
    const r = await runCli(["report", "--db-path", db, "--out", out])
    expect(r.code, r.stderr).toBe(0)
    const browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    })
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } })
      const requests: Array<string> = []
      const errors: Array<string> = []
      page.on("request", (q) => requests.push(q.url()))
      page.on("pageerror", (e) => errors.push(String(e)))
      await page.goto(pathToFileURL(out).href)
      await page.waitForFunction(() => (globalThis as unknown as { __reportReady?: boolean }).__reportReady === true, null,
        { timeout: 5000 })
      expect(errors).toEqual([])
      expect(requests.filter((u) => /^https?:/i.test(u))).toEqual([])
      expect(await page.getAttribute("body", "data-report-ready")).toBe("true")

      // S-1: every trial of the run is a row, in trial order; the kept Stage 2 row is the one winner.
      expect(dbTrials.length).toBe(6) // http503, ok-5, four cells
      expect(await page.locator("#trials tbody tr").count()).toBe(dbTrials.length)
      const kept = dbTrials.findIndex((t) => t.stage === 2 && t.kept === 1)
      expect(kept).toBeGreaterThan(0)
      const winners = page.locator("#trials tbody tr.winner")
      expect(await winners.count()).toBe(1)
      expect(await winners.getAttribute("data-trial")).toBe(`${kept + 1}`)
      expect(await winners.getAttribute("data-kept")).toBe("1")
      expect(await winners.innerText()).toContain("winner")
      const stages = await page.locator("#trials tbody tr").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-stage")))
      expect(stages).toEqual(dbTrials.map((t) => `${t.stage}`))

      // Both canvases drew their data (series colours), not just empty axes.
      type Counts = { readonly color: number; readonly painted: number; readonly size: number }
      const counts = (id: string, rgb: readonly [number, number, number]) => page.evaluate<Counts>(pixelCounts(id, rgb))
      const progressLine = await counts("chart-progress", [220, 90, 30])
      const feasibleBars = await counts("chart-cells", [30, 100, 200])
      const winnerBar = await counts("chart-cells", [230, 160, 20])
      expect(progressLine.color).toBeGreaterThan(200)
      expect(feasibleBars.color).toBeGreaterThan(1000)
      expect(winnerBar.color).toBeGreaterThan(1000)
      expect(progressLine.painted).toBeLessThan(progressLine.size)
      // One bar per Stage 2 cell; the infeasible ones are labelled.
      const labels = await page.evaluate(() =>
        (globalThis as unknown as { Chart: { getChart: (id: string) => { data: { labels: Array<string> } } } })
          .Chart.getChart("chart-cells").data.labels)
      expect(labels).toHaveLength(dbTrials.filter((t) => t.stage === 2).length)
      expect(labels.filter((l) => l.endsWith("(infeasible)"))).toHaveLength(
        dbTrials.filter((t) => t.stage === 2 && t.fits === 0).length)
      expect(dbTrials.filter((t) => t.stage === 2 && t.fits === 0).length).toBe(2)

      // Issue 17 part 6: the Pareto plot has every feasible cell, a front, and the recommendation as a star, all drawn.
      const datasets = await page.evaluate(() =>
        (globalThis as unknown as { Chart: { getChart: (id: string) => { data: { datasets: Array<{ label: string; data: Array<unknown> }> } } } })
          .Chart.getChart("chart-pareto").data.datasets.map((d) => [d.label, d.data.length] as const))
      const size = Object.fromEntries(datasets)
      expect(size["Stage 2 cell"]).toBe(dbTrials.filter((t) => t.stage === 2 && t.fits === 1).length)
      expect(size["recommended"]).toBe(1)
      expect(size["Pareto front"]).toBeGreaterThanOrEqual(1)
      expect(size["Pareto front"]).toBeLessThanOrEqual(size["Stage 2 cell"]!)
      expect((await counts("chart-pareto", [40, 160, 80])).color).toBeGreaterThan(50)
      expect((await counts("chart-pareto", [230, 160, 20])).color).toBeGreaterThan(50)
    } finally {
      await browser.close()
    }
  }, 20_000)
})
