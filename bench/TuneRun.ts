/**
 * Runs one real tune, as an operator does (`node bin/autotune.js tune … --json`),
 * while sampling it from `/proc` (TreeSampler), and collects what it left:
 * the result document (stdout), its trial rows (SQLite, through the project's
 * own TrialStore) and its provider logs (one file per provider start).
 */
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer, Schema } from "effect"
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { decodeOutcome } from "../src/domain/OutcomeJson.js"
import type { TrialRow } from "../src/domain/Trial.js"
import { TuneDocument } from "../src/domain/TuneDocument.js"
import { type MeasurementRow, TrialStore } from "../src/services/TrialStore.js"
import { sampleTree, type TreeSampling } from "./TreeSampler.js"
import { autotuneBin } from "./Tools.js"

/** A provider log file: its path, creation time (ms) and first line (`$ command args`). */
export interface ProviderLog {
  readonly file: string
  readonly createdMs: number
  readonly command: string
}

/**
 * One provider start of the tune, from its ledger (SPEC R-2: one measurement per start, where a trial row
 * may sum several): its trial key, when its trial started (ms), the tuner's time before the spawn (the pre-load
 * check and memory estimate; 0 in an outcome recorded before it was measured), its load + pre-warm + probe
 * and its probe alone (ms), and whether other processes disturbed it (N-3: the tuner then waits for a quiet
 * machine and measures it again, up to twice). The provider's phases run from `startMs + preLoadMs`.
 * (A ledger row that cannot be read is left out; beside it a wait may be miscounted by one start's gap.)
 */
export interface MeasuredStart {
  readonly trialKey: string
  readonly startMs: number
  readonly preLoadMs: number
  readonly phasesMs: number
  readonly probeMs: number
  readonly disturbed: boolean
}

/** What one tune run produced. Times are wall-clock ms (Date.now). */
export interface TuneRun {
  readonly args: ReadonlyArray<string>
  readonly exitCode: number | null
  readonly spawnedAt: number
  readonly exitedAt: number
  /** Spawn → exit of the tune process, ms: the tune's wall time as an operator waits for it. */
  readonly wallMs: number
  readonly doc: TuneDocument | null
  readonly trials: ReadonlyArray<TrialRow>
  /** Its provider starts in the order they were made (measurements replayed from a parent run left out). */
  readonly measurements: ReadonlyArray<MeasuredStart>
  readonly logs: ReadonlyArray<ProviderLog>
  readonly sampling: TreeSampling
  readonly stderrPath: string
}

/** Exit code of a tune refused because another run holds its provider's run lock. */
const LOCKED = 75

/**
 * The tuner's helper processes, counted on the tuner's side: the provider shim
 * (bin/provider-shim.mjs, which runs llama-server as its child) and
 * `<binary> --version` calls.
 */
export const isHelper = (argv: ReadonlyArray<string>): boolean =>
  argv.includes("--version") || argv.some((a) => path.basename(a) === "provider-shim.mjs")

const decodeDoc = Schema.decodeUnknownOption(Schema.parseJson(TuneDocument))

/** One ledger row as the bench reads it (`readRun`), or null when it cannot be read (a corrupt outcome, no start time). */
const measuredStart = (m: MeasurementRow): MeasuredStart | null => {
  try {
    const o = decodeOutcome(m.outcome_json)
    const startMs = Date.parse(o.startedAt)
    if (Number.isNaN(startMs)) return null
    return {
      trialKey: m.trial_key,
      startMs,
      preLoadMs: o.phases.preLoadMs ?? 0,
      phasesMs: (o.phases.loadMs ?? 0) + (o.phases.preWarmMs ?? 0) + (o.phases.probeMs ?? 0),
      probeMs: o.phases.probeMs ?? 0,
      disturbed: o.background?.disturbed === true
    }
  } catch {
    return null
  }
}

/**
 * The trial rows of `runId` in `dbPath`, in insertion order, and the measurements it made itself (its
 * ledger, SPEC R-2), in order, from one open of the database; a measurement that cannot be read is left out,
 * as the ledger leaves it out of a resume. (The bench's tunes are fresh runs: none of their measurements is
 * replayed from a parent run.)
 */
const readRun = (dbPath: string, runId: string): Promise<Pick<TuneRun, "trials" | "measurements">> =>
  Effect.runPromise(
    Effect.flatMap(TrialStore, (s) =>
      Effect.all({ trials: s.trials(runId), ledger: s.measurements(runId) })).pipe(
        Effect.map(({ trials, ledger }) => ({
          trials,
          measurements: ledger.filter((m) => m.reused_from_run === null).map(measuredStart).filter((m) => m !== null)
        })),
        Effect.provide(TrialStore.layer(dbPath).pipe(Layer.provide(NodeContext.layer)))
      )
  )

/** The provider logs under `logDir` (a tune keeps each run's in `logs/<run-id>/`, SPEC S-4), oldest first. */
const readLogs = (logDir: string): Array<ProviderLog> =>
  (fs.existsSync(logDir) ? fs.readdirSync(logDir, { recursive: true, encoding: "utf8" }) : [])
    .filter((f) => f.endsWith(".log"))
    .map((f) => {
      const file = path.join(logDir, f)
      const st = fs.statSync(file)
      const first = fs.readFileSync(file, "utf8").split("\n", 1)[0] ?? ""
      // birthtime is 0 where the filesystem does not keep it; ctime then bounds it from above.
      return { file, createdMs: st.birthtimeMs > 0 ? st.birthtimeMs : st.ctimeMs, command: first.replace(/^\$ /, "") }
    })
    .sort((a, b) => a.createdMs - b.createdMs)

const spawnTune = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv, stderrPath: string) =>
  new Promise<{ code: number | null; stdout: string; spawnedAt: number; exitedAt: number; sampling: TreeSampling }>(
    (resolve, reject) => {
      const err = fs.openSync(stderrPath, "w")
      const spawnedAt = Date.now()
      const child = ChildProcess.spawn(process.execPath, [autotuneBin, "tune", ...args], {
        stdio: ["ignore", "pipe", err],
        env
      })
      fs.closeSync(err)
      const sampler = sampleTree(child.pid!, 250, isHelper)
      let stdout = ""
      child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d))
      child.once("error", reject)
      child.once("close", (code) => {
        const exitedAt = Date.now()
        resolve({ code, stdout, spawnedAt, exitedAt, sampling: sampler.stop() })
      })
    }
  )

/**
 * Runs `autotune tune <args> --db-path <dir>/tune.db --json` in a fresh `dir`
 * (its own database and `logs/`), retrying up to 10 times, 15 s apart, when
 * another run holds the provider's run lock (exit 75: someone else's tune).
 * Never throws for a tune that fails: the exit code and document say how it ended.
 */
export const runTune = async (dir: string, args: ReadonlyArray<string>, log: (line: string) => void): Promise<TuneRun> => {
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  const dbPath = path.join(dir, "tune.db")
  const fullArgs = [...args, "--db-path", dbPath, "--json"]
  const stderrPath = path.join(dir, "tune.stderr.txt")
  for (let attempt = 1;; attempt++) {
    const r = await spawnTune(fullArgs, process.env, stderrPath)
    if (r.code === LOCKED && attempt < 10) {
      log(`bench: another run holds the run lock; retrying in 15 s (${fs.readFileSync(stderrPath, "utf8").trim().split("\n").at(-1)})`)
      await new Promise((res) => setTimeout(res, 15_000))
      continue
    }
    const doc = decodeDoc(r.stdout)
    const runId = doc._tag === "Some" ? doc.value.run_id : null
    return {
      args: fullArgs,
      exitCode: r.code,
      spawnedAt: r.spawnedAt,
      exitedAt: r.exitedAt,
      wallMs: r.exitedAt - r.spawnedAt,
      doc: doc._tag === "Some" ? doc.value : null,
      ...(runId === null || !fs.existsSync(dbPath) ? { trials: [], measurements: [] } : await readRun(dbPath, runId)),
      logs: readLogs(path.join(dir, "logs")),
      sampling: r.sampling,
      stderrPath
    }
  }
}
