/**
 * The `autotune report` page: one run and its trials as a self-contained HTML
 * document (no network: the chart library is inlined). Pure: text in, text out.
 */
import { Option, Schema } from "effect"
import { kvBitsText } from "../domain/Knobs.js"
import { paretoFront } from "../domain/Pareto.js"
import { MAX_CAPACITY_USERS } from "../steps/Capacity.js"
import { type CellInterval, type CellScore, decidedByNoise, isNewBest } from "../domain/NewBest.js"
import type { RunRow } from "../domain/Run.js"
import type { TrialRow } from "../domain/Trial.js"
import { Inputs, Machine, StoredRecommendation } from "../domain/TuneDocument.js"

/** What one report is rendered from. */
export interface ReportInput {
  /** The run's `tune_runs` row (SPEC S-2). */
  readonly run: RunRow
  /** Every `tune_trials` row of the run (SPEC S-1), in insertion (trial) order. */
  readonly trials: ReadonlyArray<TrialRow>
  /** Source text of Chart.js's UMD bundle (defines the global `Chart`), inlined as a `<script>`. */
  readonly chartJs: string
}

/**
 * True for a trial that was skipped on a memory estimate, not measured: its
 * `verdict` is `EstimatedOver`. A row stored before verdicts were recorded
 * (`verdict` NULL) is read by its notes, which then started with "estimated ".
 */
export const isEstimated = (t: TrialRow): boolean =>
  t.verdict !== null ? t.verdict === "EstimatedOver" : t.notes !== null && t.notes.startsWith("estimated ")

/** Escapes text for HTML element content and double- or single-quoted attribute values. */
export const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)

/**
 * JSON safe to embed in a `<script>` element: `<`, `>`, `&` and the JS line
 * separators U+2028/U+2029 are written as `\uXXXX` escapes, so no value can
 * close the element or open a comment.
 */
export const jsonForScript = (value: unknown): string =>
  JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)

/** Script source safe inside `<script>`: any `</script` is broken as `<\/script` (same meaning in JS strings and regexes). */
const scriptSafe = (js: string): string => js.replace(/<\/(script)/gi, "<\\/$1")

const decodeRecommendation = Schema.decodeUnknownOption(Schema.parseJson(StoredRecommendation))
const decodeRecommendedModel = Schema.decodeUnknownOption(Schema.parseJson(Schema.Struct({ model: Schema.String })))
const decodeMachine = Schema.decodeUnknownOption(Schema.parseJson(Machine))
const decodeInputs = Schema.decodeUnknownOption(Schema.parseJson(Inputs))
const decodeEpsilon = Schema.decodeUnknownOption(Schema.parseJson(Schema.Struct({ tps_tie_epsilon: Schema.Number })))

/** The recommended model of a run, when it has a recommendation that decodes. */
const recommendedModel = (run: RunRow): string | null =>
  run.recommendation_json === null
    ? null
    : Option.match(decodeRecommendedModel(run.recommendation_json), { onNone: () => null, onSome: ({ model }) => model })

/** Indexes of the measured (not estimated) Stage 1 rows of `model`, in trial order. */
const stage1Rows = (trials: ReadonlyArray<TrialRow>, model: string): Array<number> =>
  trials.flatMap((t, i) => t.stage === 1 && t.model === model && !isEstimated(t) ? [i] : [])

/** The last feasible measured Stage 1 row of `model` (the Stage 1 choice, SPEC A-3), or null. */
const stage1Choice = (trials: ReadonlyArray<TrialRow>, model: string): number | null =>
  stage1Rows(trials, model).filter((i) => trials[i]!.fits === 1).at(-1) ?? null

/** The run's tok/s tie epsilon (SPEC B-3): `tps_tie_epsilon` of its inputs_json, 0.1 when missing or undecodable. */
export const runTieEpsilon = (run: RunRow): number =>
  Option.match(decodeEpsilon(run.inputs_json), { onNone: () => 0.1, onSome: (i) => i.tps_tie_epsilon })

/**
 * Index (into `trials`) of the run's winning trial, or null:
 * the Stage 2 row with `kept = 1` (SPEC B-4); failing that, when the run has a
 * recommendation, the last feasible Stage 1 row of the recommended model (the
 * Stage 1 configuration was recommended, B-5), else its last Stage 1 row.
 * Estimated (skipped) trials never win.
 */
export const winnerIndex = (run: RunRow, trials: ReadonlyArray<TrialRow>): number | null => {
  const kept = trials.findIndex((t) => t.stage === 2 && t.kept === 1 && !isEstimated(t))
  if (kept >= 0) return kept
  const model = recommendedModel(run)
  if (model === null) return null
  return stage1Choice(trials, model) ?? stage1Rows(trials, model).at(-1) ?? null
}

/**
 * The "best so far" tok/s after each trial (aligned with `trials`), replaying
 * what the tune decided rather than a running maximum:
 * - Stage 1 (SPEC A-1..A-3) has no best until its choice, the feasible Stage 1
 *   row of the chosen model (`chosenModel`; else the model the Stage 2 rows
 *   measured; else the first feasible Stage 1 row, where Stage 1 stops):
 *   infeasible candidates never set it; from the choice on the line is its tok/s.
 * - Stage 2 (SPEC B-2, B-3) replays `gridSearch`: the search starts with no
 *   incumbent, and each feasible row (`fits = 1`), in order, replaces it when
 *   `isNewBest(best, { tps, ttftMs }, epsilon)`: so the first feasible cell
 *   with tok/s > 0 always becomes best, within the tie band ε·best the lower
 *   TTFT wins, and a missing TTFT never beats a present one — unless the
 *   rows' intervals say the noise could flip that (N-2, `decidedByNoise`):
 *   then the incumbent stays. Superseded rows (disturbed, measured again,
 *   N-3) decide nothing. The line shows
 *   the climb's best, or the Stage 1 choice while the climb has none (and to
 *   the end when no Stage 2 cell is feasible, SPEC B-5). A row shows the
 *   cell's figures over all its replicates (N-2), so a drift check that
 *   re-decided can leave the line's last value apart from the kept winner's.
 * Estimated (skipped) rows are infeasible and carry the previous value. The
 * last value is, but for that, the tok/s of the winner (`winnerIndex`, SPEC B-4/B-5).
 */
export const bestSoFarSeries = (
  trials: ReadonlyArray<TrialRow>,
  epsilon: number,
  chosenModel: string | null = null
): Array<number | null> => {
  const model = chosenModel ?? trials.find((t) => t.stage === 2)?.model ?? null
  const choice = model !== null
    ? stage1Choice(trials, model)
    : trials.findIndex((t) => t.stage === 1 && t.fits === 1 && !isEstimated(t))
  const stage1Tps = choice === null || choice < 0 ? null : trials[choice]!.tps
  let stage1Best: number | null = null
  let climbBest: { readonly score: CellScore; readonly interval: CellInterval } | null = null
  const pair = (lo: number | null, hi: number | null) => (lo === null || hi === null ? null : [lo, hi] as const)
  return trials.map((t, i) => {
    if (i === choice) stage1Best = stage1Tps
    // A superseded (disturbed, measured again) row decides nothing (N-3).
    if (t.stage === 2 && t.fits === 1 && t.superseded !== 1 && !isEstimated(t)) {
      const next = {
        score: { tps: t.tps, ttftMs: t.ttft_ms },
        interval: { tps: pair(t.tps_ci95_lo, t.tps_ci95_hi), ttftMs: pair(t.ttft_ci95_lo_ms, t.ttft_ci95_hi_ms) }
      }
      // N-2: a win the noise could flip is no win (rows from before it have no interval: plain B-3).
      const noise = climbBest !== null && decidedByNoise(climbBest, next, epsilon)
      if (!noise && isNewBest(climbBest?.score ?? null, next.score, epsilon)) climbBest = next
    }
    return climbBest?.score.tps ?? stage1Best
  })
}

// ---- formatting ------------------------------------------------------------

const dash = "—"
const MIB = 1024 ** 2
const num = (n: number | null, digits: number): string => n === null ? dash : n.toFixed(digits)
const orDefault = (n: number | null): string => n === null ? "default" : `${n}`

/** Human form of a trial's knobs, e.g. `kv=unset ctx=2048 batch=1 threads=2` (kv-bits null shows `unset`, F-1). */
const knobsText = (t: TrialRow): string =>
  [`kv=${kvBitsText(t.kv_bits)}`, `ctx=${orDefault(t.max_context_cap)}`, `batch=${orDefault(t.max_batch)}`,
    ...(t.threads === null ? [] : [`threads=${t.threads}`]),
    ...(t.flash_attn === null ? [] : [`fa=${t.flash_attn === 1 ? "on" : "off"}`]),
    ...(t.ubatch === null ? [] : [`ubatch=${t.ubatch}`]),
    ...(t.batch === null ? [] : [`batch-size=${t.batch}`])].join(" ")

/** The throughput knobs of a row (llama-server's, issue 17 part 3; flash attention the embedded provider's too, issue 14), `on / 128 / default`; a dash when none was searched. */
const throughputKnobs = (t: TrialRow): string =>
  t.flash_attn === null && t.ubatch === null && t.batch === null
    ? dash
    : `${t.flash_attn === null ? "default" : t.flash_attn === 1 ? "on" : "off"} / ${orDefault(t.ubatch)} / ${orDefault(t.batch)}`

/** `<tr><th>k</th><td>v</td></tr>` rows; values are escaped here. */
const kvRows = (rows: ReadonlyArray<readonly [string, string]>): string =>
  rows.map(([k, v]) => `<tr><th scope="row">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join("\n")

const kvTable = (id: string, rows: ReadonlyArray<readonly [string, string]>): string =>
  `<table class="kv" id="${id}"><tbody>\n${kvRows(rows)}\n</tbody></table>`

/** A JSON column shown field by field when it decodes, else as its raw text. */
const jsonSection = <A>(
  title: string,
  id: string,
  text: string | null,
  decode: (s: string) => Option.Option<A>,
  rows: (a: A) => ReadonlyArray<readonly [string, string]>,
  none: string
): string => {
  const body = text === null
    ? `<p class="none">${escapeHtml(none)}</p>`
    : Option.match(decode(text), {
      onNone: () => `<pre id="${id}">${escapeHtml(text)}</pre>`,
      onSome: (a) => kvTable(id, rows(a))
    })
  return `<section><h2>${escapeHtml(title)}</h2>\n${body}\n</section>`
}

const machineRows = (m: Machine) =>
  [["RAM (GiB)", `${m.ram_gb}`], ["chip", m.chip], ["OS", m.os_version], ["provider binary", m.binary_version ?? dash]] as const

const inputRows = (i: Inputs): ReadonlyArray<readonly [string, string]> =>
  [
    ["target context (tokens)", `${i.target_context}`],
    ["candidate models (in order)", i.candidate_models.join(", ")],
    ["stage 1 replicates", `${i.stage1_replicates}`],
    ["stage 2 replicates", `${i.stage2_replicates}`],
    ["TTFT gate (ms)", `${i.gate_ttft_ms}`],
    ["tok/s tie epsilon", `${i.tps_tie_epsilon}`],
    ...(i.concurrency === undefined ? [] : [["concurrent users (SPEC C-1)", `${i.concurrency}`] as const]),
    ...(i.slo_ttft_p95_ms === undefined ? [] : [["objective: TTFT p95 (ms)", `${i.slo_ttft_p95_ms}`] as const]),
    ...(i.slo_itl_p95_ms === undefined ? [] : [["objective: ITL p95 (ms)", `${i.slo_itl_p95_ms}`] as const]),
    ...(i.slo_decode_tps === undefined ? [] : [["objective: decode tok/s per stream", `${i.slo_decode_tps}`] as const]),
    ...(i.memory_headroom === undefined ? [] : [["memory headroom (SPEC C-3)", `${i.memory_headroom}`] as const]),
    ...(i.find_max_concurrency === undefined ? [] : [["find max concurrency (SPEC C-4)", "yes"] as const])
  ]

/** `lo–hi`, or a dash when there is no interval (runs stored before SPEC N-1). */
const ci = (lo: number | null | undefined, hi: number | null | undefined, digits: number) =>
  lo == null || hi == null ? dash : `${lo.toFixed(digits)}–${hi.toFixed(digits)}`

const recommendationRows = (r: StoredRecommendation) =>
  [
    ["model", r.model],
    ["target context (tokens)", `${r.target_context}`],
    ["kv_bits", kvBitsText(r.knobs.kv_bits)],
    ["max_context_override", orDefault(r.knobs.max_context_override)],
    ["max_concurrency_override", orDefault(r.knobs.max_concurrency_override)],
    ...(r.knobs.threads === undefined ? [] : [["threads", orDefault(r.knobs.threads)] as const]),
    ["median tok/s", num(r.tps_median, 2)],
    ["tok/s 95 % interval", ci(r.tps_ci95?.[0], r.tps_ci95?.[1], 2)],
    ["TTFT p95 (ms)", num(r.ttft_p95_ms, 0)],
    ["TTFT median 95 % interval (ms)", ci(r.ttft_ci95_ms?.[0], r.ttft_ci95_ms?.[1], 0)],
    ["replicates", `${r.replicates}`],
    ...(r.marginal === true ? [["marginal", "yes: TTFT near the gate, called on the median of more replicates (SPEC N-2)"] as const] : []),
    ...(r.disturbed === true ? [["disturbed", "yes: measured while other processes were busy (SPEC N-3)"] as const] : []),
    ...((r.tied_within_noise ?? []).length > 0
      ? [["tied within noise", `${r.tied_within_noise!.length} cell(s) the noise could not tell from it (SPEC N-2)`] as const]
      : []),
    ...(r.drift_check == null ? [] : [["drift check", r.drift_check.moved ? "moved: cells in its tie band measured again" : "held"] as const]),
    ["serve command", r.serve_command]
  ] as const

/** One measured trial as a table row; `n` is its 1-based position in the run's trial order. */
const trialRow = (t: TrialRow, n: number, winner: boolean): string => {
  const cells = [
    `${n}`, `${t.stage}`, t.model, kvBitsText(t.kv_bits), orDefault(t.max_context_cap), orDefault(t.max_batch),
    orDefault(t.threads), throughputKnobs(t), num(t.tps, 2), ci(t.tps_ci95_lo, t.tps_ci95_hi, 2), num(t.ttft_ms, 0),
    ci(t.ttft_ci95_lo_ms, t.ttft_ci95_hi_ms, 0), num(t.ttft_p95_ms, 0), `${t.replicates_n}`,
    t.streams === null ? dash : `${t.streams}`, num(t.aggregate_tps, 2), num(t.itl_p95_ms, 1),
    t.peak_rss_bytes === null ? dash : `${(t.peak_rss_bytes / MIB).toFixed(0)}${t.estimated_bytes === null ? "" : ` (est. ${(t.estimated_bytes / MIB).toFixed(0)})`}`,
    t.fits === 1 ? "yes" : "no",
    [
      t.notes ?? "",
      t.marginal === 1 ? "marginal (N-2)" : "",
      t.disturbed === 1 ? `disturbed: others used ${num(t.background_cores, 2)} cores (N-3)` : "",
      t.superseded === 1 ? "measured again when quiet" : ""
    ]
      .filter(Boolean).join("; "),
    t.started_at
  ].map(escapeHtml)
  const mark = winner ? ` <span class="winner-mark" title="winner">★ winner</span>` : ""
  const cls = [winner ? "winner" : "", t.fits === 1 ? "fits" : "infeasible"].filter(Boolean).join(" ")
  return `<tr class="${cls}" data-trial="${n}" data-stage="${t.stage}" data-kept="${t.kept}">` +
    cells.map((c, i) => i === 0 ? `<td>${c}${mark}</td>` : `<td>${c}</td>`).join("") + "</tr>"
}

/** Chart data: trial order (1-based, the table's `#`) against tok/s. */
interface ChartData {
  readonly feasible: ReadonlyArray<{ readonly x: number; readonly y: number }>
  readonly infeasible: ReadonlyArray<{ readonly x: number; readonly y: number }>
  readonly best: ReadonlyArray<{ readonly x: number; readonly y: number | null }>
  readonly cells: ReadonlyArray<{ readonly label: string; readonly tps: number; readonly fits: boolean; readonly winner: boolean }>
  /** The Pareto plot: feasible Stage 2 cells as TTFT p95 (x, ms) against aggregate tok/s (y), the front, the winner's cell. */
  readonly pareto: {
    readonly cells: ReadonlyArray<{ readonly x: number; readonly y: number; readonly label: string }>
    readonly front: ReadonlyArray<{ readonly x: number; readonly y: number; readonly label: string }>
    readonly recommended: ReadonlyArray<{ readonly x: number; readonly y: number; readonly label: string }>
  }
}

/** `series` is `bestSoFarSeries` over all the run's trials; `n - 1` indexes it. */
const chartData = (
  measured: ReadonlyArray<{ t: TrialRow; n: number }>,
  winner: number | null,
  series: ReadonlyArray<number | null>
): ChartData => {
  const bestSeries: Array<{ x: number; y: number | null }> = []
  const feasible: Array<{ x: number; y: number }> = []
  const infeasible: Array<{ x: number; y: number }> = []
  // A capacity step (C-4, stage 3) measures the recommendation at more users: not a trial of the search.
  for (const { n, t } of measured.filter(({ t }) => t.stage !== 3)) {
    if (t.fits === 1 && t.tps !== null) {
      feasible.push({ x: n, y: t.tps })
    } else {
      infeasible.push({ x: n, y: 0 })
    }
    bestSeries.push({ x: n, y: series[n - 1] ?? null })
  }
  const cells = measured.filter(({ t }) => t.stage === 2).map(({ n, t }) => {
    const fits = t.fits === 1 && t.tps !== null
    return { label: `#${n} ${knobsText(t)}${fits ? "" : " (infeasible)"}`, tps: fits ? t.tps! : 0, fits, winner: n - 1 === winner }
  })
  // Issue 17 part 6: every feasible cell measured (not a disturbed measurement taken again), its aggregate tok/s
  // (every stream's decode summed; rows from before it was recorded: their tok/s) against its TTFT p95.
  const points = measured.flatMap(({ n, t }) => {
    const y = t.aggregate_tps ?? t.tps
    return t.stage === 2 && t.fits === 1 && t.superseded !== 1 && y !== null && t.ttft_p95_ms !== null
      ? [{ n, x: t.ttft_p95_ms, y, label: `#${n} ${knobsText(t)}${t.streams === null ? "" : ` at ${t.streams} user(s)`}` }]
      : []
  })
  const strip = ({ label, x, y }: { label: string; x: number; y: number }) => ({ x, y, label })
  const front = paretoFront(points.map((p) => ({ tps: p.y, ttftP95Ms: p.x }))).map((i) => strip(points[i]!)).sort((a, b) => a.x - b.x)
  const pareto = {
    cells: points.map(strip),
    front,
    recommended: points.filter((p) => p.n - 1 === winner).map(strip)
  }
  return { feasible, infeasible, best: bestSeries, cells, pareto }
}

/**
 * The capacity search's steps (SPEC C-4, stage 3 rows) in the order measured,
 * with the largest number of users that met the objective; empty when the run
 * made none.
 */
const capacitySection = (measured: ReadonlyArray<{ t: TrialRow; n: number }>, run: RunRow): string => {
  // A disturbed step measured again (N-3) decides nothing.
  const steps = measured.filter(({ t }) => t.stage === 3 && t.superseded !== 1)
  if (steps.length === 0) return ""
  const met = steps.filter(({ t }) => t.fits === 1).map(({ t }) => t.streams ?? 0)
  const missed = steps.filter(({ t }) => t.fits === 0).map(({ t }) => t.streams ?? 0)
  const users = Math.max(0, ...met)
  const next = missed.length === 0 ? null : Math.min(...missed)
  // The search ends at a miss next to a met step, or at its cap; anything else stopped before it ended (budget, Ctrl-C).
  const finished = (next !== null && next - users === 1) || users >= MAX_CAPACITY_USERS
  const summary = !finished
    ? `The search did not finish (${
      run.exit_reason === null ? "the run is still going, or its process died" : `the run ended ${run.exit_reason}`
    }): ${users} user(s) met the objective, the most measured so far.`
    : next === null
    ? `Serves at least ${users} concurrent user(s) within the objective: the search stops at ${MAX_CAPACITY_USERS}.`
    : `Serves up to ${users} concurrent user(s) within the objective; ${next} did not.`
  return `<section id="capacity"><h2>Capacity (SPEC C-4)</h2>
<p>${escapeHtml(summary)}</p>
<table class="trials"><thead><tr>${["#", "users", "met", "goodput tok/s", "aggregate tok/s", "TTFT p95 (ms)", "ITL p95 (ms)", "reason"]
    .map((h) => `<th scope="col">${escapeHtml(h)}</th>`).join("")}</tr></thead>
<tbody>
${steps.map(({ n, t }) =>
    `<tr data-users="${t.streams ?? ""}" data-met="${t.fits}">${[
      `${n}`, `${t.streams ?? dash}`, t.fits === 1 ? "yes" : "no", num(t.tps, 2), num(t.aggregate_tps, 2), num(t.ttft_p95_ms, 0),
      num(t.itl_p95_ms, 1), t.notes ?? ""
    ].map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`).join("\n")}
</tbody>
</table>
</section>`
}

/** Draws the three charts from `#report-data`, then sets `window.__reportReady` and `body[data-report-ready]`. */
const chartScript = `(function () {
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var done = function (state) {
    document.body.setAttribute("data-report-ready", state);
    window.__reportReady = state === "true";
  };
  try {
    Chart.defaults.animation = false;
    new Chart(document.getElementById("chart-progress"), {
      type: "scatter",
      data: { datasets: [
        { type: "line", label: "best so far (tok/s)", data: data.best, stepped: "before", spanGaps: false,
          borderColor: "rgb(220, 90, 30)", backgroundColor: "rgb(220, 90, 30)", borderWidth: 3, pointRadius: 0 },
        { label: "feasible trial (tok/s)", data: data.feasible, pointRadius: 5,
          borderColor: "rgb(30, 100, 200)", backgroundColor: "rgb(30, 100, 200)" },
        { label: "infeasible trial (shown at 0)", data: data.infeasible, pointStyle: "crossRot", pointRadius: 6,
          borderColor: "rgb(150, 150, 150)", backgroundColor: "rgb(150, 150, 150)", borderWidth: 2 }
      ] },
      options: { responsive: true, maintainAspectRatio: false,
        scales: { x: { type: "linear", title: { display: true, text: "trial # (run order)" }, ticks: { stepSize: 1, precision: 0 } },
                  y: { beginAtZero: true, title: { display: true, text: "tok/s" } } } }
    });
    new Chart(document.getElementById("chart-cells"), {
      type: "bar",
      data: { labels: data.cells.map(function (c) { return c.label; }),
        datasets: [{ label: "Stage 2 cell median tok/s (infeasible = 0)", data: data.cells.map(function (c) { return c.tps; }),
          backgroundColor: data.cells.map(function (c) { return c.winner ? "rgb(230, 160, 20)" : c.fits ? "rgb(30, 100, 200)" : "rgb(200, 200, 200)"; }),
          borderColor: data.cells.map(function (c) { return c.winner ? "rgb(150, 90, 0)" : "rgba(0, 0, 0, 0)"; }),
          borderWidth: 2 }] },
      options: { responsive: true, maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, title: { display: true, text: "tok/s" } } } }
    });
    var tip = { callbacks: { label: function (c) { return c.raw.label + ": " + c.raw.y.toFixed(1) + " tok/s, TTFT p95 " + c.raw.x.toFixed(0) + " ms"; } } };
    new Chart(document.getElementById("chart-pareto"), {
      type: "scatter",
      data: { datasets: [
        { label: "recommended", data: data.pareto.recommended, pointStyle: "star", pointRadius: 14, borderWidth: 3,
          borderColor: "rgb(230, 160, 20)", backgroundColor: "rgb(230, 160, 20)" },
        { type: "line", label: "Pareto front", data: data.pareto.front, borderColor: "rgb(40, 160, 80)",
          backgroundColor: "rgb(40, 160, 80)", borderWidth: 3, pointRadius: 7 },
        { label: "Stage 2 cell", data: data.pareto.cells, pointRadius: 5,
          borderColor: "rgb(30, 100, 200)", backgroundColor: "rgb(30, 100, 200)" }
      ] },
      options: { responsive: true, maintainAspectRatio: false, plugins: { tooltip: tip },
        scales: { x: { type: "linear", title: { display: true, text: "TTFT p95 (ms), lower is better" } },
                  y: { beginAtZero: true, title: { display: true, text: "aggregate tok/s, higher is better" } } } }
    });
    done("true");
  } catch (e) {
    document.body.setAttribute("data-report-error", String(e));
    done("error");
  }
})();`

const css = `
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 1.6rem; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
table.kv th { background: #f4f4f4; font-weight: 600; }
table.trials thead th { background: #eee; position: sticky; top: 0; }
tr.infeasible td { color: #777; }
tr.winner td { background: #fff1c2; font-weight: 600; color: #222; }
.winner-mark { color: #a66b00; white-space: nowrap; }
.chart { position: relative; height: 320px; max-width: 1000px; }
pre, code { font-family: ui-monospace, monospace; white-space: pre-wrap; word-break: break-all; }
.none { color: #777; font-style: italic; }
`

/**
 * Renders the report page of one run (SPEC S-1, S-2, F-1, F-2): a header with
 * run id, times, exit_reason, partial, spec version, recipe_hash, and the
 * machine, inputs and recommendation JSON columns (field by field, raw text
 * when a column does not decode); `table#trials` with one `<tbody>` row per
 * measured trial (stage, model, knobs with kv_bits `unset` when null, tok/s,
 * TTFT median and p95 in ms, replicates, fits, reason = notes, started_at),
 * the winner row (see `winnerIndex`) with class `winner` and a "★ winner"
 * marker; `section#skipped` listing trials skipped on their memory estimate
 * without launching (`isEstimated`) when there are any; and two
 * `<canvas>`es: `#chart-progress` (best-so-far tok/s as the tune decided it,
 * see `bestSoFarSeries` (SPEC B-3, B-5), a step line over trial order,
 * feasible trials as points, infeasible ones as crosses at 0)
 * and `#chart-cells` (a bar per Stage 2 cell, infeasible cells 0 and
 * labelled "(infeasible)"). When both charts are drawn the page sets
 * `window.__reportReady = true` and `<body data-report-ready="true">`
 * (`"error"` plus `data-report-error` if drawing threw). Every text value is
 * HTML-escaped; embedded data is script-safe JSON. The result needs no network.
 */
export const renderReport = ({ chartJs, run, trials }: ReportInput): string => {
  const winner = winnerIndex(run, trials)
  const numbered = trials.map((t, i) => ({ t, n: i + 1 }))
  const measured = numbered.filter(({ t }) => !isEstimated(t))
  const skipped = numbered.filter(({ t }) => isEstimated(t))
  const data = chartData(measured, winner, bestSoFarSeries(trials, runTieEpsilon(run), recommendedModel(run)))
  const header = kvTable("run", [
    ["run id", run.run_id],
    ["started at", run.started_at],
    ["ended at", run.ended_at ?? `${dash} (not ended${run.exit_reason === "interrupted" ? ": interrupted" : ""})`],
    ["exit reason", run.exit_reason ?? `${dash} (still running, or the process died)`],
    ["partial", run.partial === 1 ? "yes (budget ran out; best so far)" : "no"],
    ["spec version", run.spec_version],
    ["recipe hash", run.recipe_hash ?? dash]
  ])
  const head = ["#", "stage", "model", "kv_bits", "max_context_cap", "max_batch", "threads", "flash-attn / ubatch / batch", "tok/s", "tok/s 95 % CI",
    "TTFT median (ms)", "TTFT 95 % CI (ms)", "TTFT p95 (ms)", "replicates", "users", "aggregate tok/s", "ITL p95 (ms)",
    "peak memory (MiB)", "fits", "reason", "started at"]
  const trialTable = measured.length === 0
    ? `<p class="none">No measured trials.</p>`
    : `<table class="trials" id="trials">
<thead><tr>${head.map((h) => `<th scope="col">${escapeHtml(h)}</th>`).join("")}</tr></thead>
<tbody>
${measured.map(({ n, t }) => trialRow(t, n, n - 1 === winner)).join("\n")}
</tbody>
</table>`
  const skippedSection = skipped.length === 0 ? "" : `<section id="skipped">
<h2>Skipped (estimated): not launched, memory estimate</h2>
<table class="trials"><thead><tr>${["#", "stage", "model", "knobs", "reason", "started at"].map((h) => `<th scope="col">${h}</th>`).join("")}</tr></thead>
<tbody>
${skipped.map(({ n, t }) =>
    `<tr data-trial="${n}">${[`${n}`, `${t.stage}`, t.model, knobsText(t), t.notes ?? "", t.started_at]
      .map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`).join("\n")}
</tbody>
</table>
</section>`
  const winnerNote = winner === null
    ? "No winner: the run has no kept Stage 2 cell and no recommendation."
    : `Winner: trial #${winner + 1} (${trials[winner]!.stage === 2 ? "the kept Stage 2 cell" : "the Stage 1 configuration of the recommended model"}).`
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>autotune report: run ${escapeHtml(run.run_id)}</title>
<style>${css}</style>
</head>
<body data-report-ready="false">
<h1>llm-autotune report: run <code>${escapeHtml(run.run_id)}</code></h1>
<section><h2>Run</h2>
${header}
</section>
${jsonSection("Recommendation", "recommendation", run.recommendation_json, decodeRecommendation, recommendationRows, "No recommendation.")}
${jsonSection("Machine", "machine", run.machine_json, decodeMachine, machineRows, "")}
${jsonSection("Inputs", "inputs", run.inputs_json, decodeInputs, inputRows, "")}
<section><h2>Trials (${measured.length} measured)</h2>
<p>${escapeHtml(winnerNote)}</p>
${trialTable}
</section>
${skippedSection}
<section><h2>Best-so-far tok/s over trial order</h2>
<div class="chart"><canvas id="chart-progress" role="img" aria-label="best-so-far tok/s over trial order"></canvas></div>
</section>
<section><h2>Stage 2 cells: median tok/s</h2>
${data.cells.length === 0 ? `<p class="none">No Stage 2 cells were measured.</p>` : ""}
<div class="chart"><canvas id="chart-cells" role="img" aria-label="median tok/s per Stage 2 cell"></canvas></div>
</section>
<section><h2>Stage 2 cells: aggregate tok/s against TTFT p95, with the Pareto front</h2>
${data.pareto.cells.length === 0 ? `<p class="none">No feasible Stage 2 cell was measured.</p>` : ""}
<div class="chart"><canvas id="chart-pareto" role="img" aria-label="aggregate tok/s against TTFT p95 per Stage 2 cell, Pareto front marked"></canvas></div>
</section>
${capacitySection(measured, run)}
<script type="application/json" id="report-data">${jsonForScript(data)}</script>
<script>${scriptSafe(chartJs)}</script>
<script>${chartScript}</script>
</body>
</html>
`
}
