/**
 * One tune run, top to bottom (SPEC §2). `tune` reads as the step list:
 *
 *   signals held → run lock → restore of a dead tuner's journaled drain →
 *   candidates, provider and machine → run row →
 *   pre-flight and drain → Stage 1 → Stage 2 → recommend → apply → finish
 *   (record the end, print the result, print the apply report)
 *
 * with the budget (H-3) around pre-flight…apply and `Effect.onExit` running
 * finish on every exit path. Each step is an Effect from `steps/`; what they
 * need to share (the best recommendation so far, the kept trial, the
 * candidates found infeasible, the apply result, whether a provider was
 * drained) lives in Refs outside the budgeted part, so a partial result
 * survives the budget. Scoped resources (held signals, run locks, the trial
 * store, each candidate provider, the drain) are released on every exit
 * path, in reverse order: the drained provider is restored before the locks go.
 */
import { Clock, Console, Context, Effect, Exit, Layer, Option, Ref } from "effect"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { cells } from "./domain/Axes.js"
import { ApplyFailed, BudgetExhausted, ProviderConflict, UsageError } from "./domain/AutotuneError.js"
import { decodeOutcome, encodeOutcome } from "./domain/OutcomeJson.js"
import { decodeRunIdentity, encodeRunIdentity, identityChanges, type ModelIdentity, RunIdentity } from "./domain/TrialKey.js"
import { type LedgerEntry, makeLedger, type TrialLedger } from "./steps/Ledger.js"
import { modelIdentity, providerIdentity } from "./steps/Identity.js"
import { preWarmPolicy } from "./steps/PreWarm.js"
import { THROUGHPUT_POLICY } from "./steps/Probe.js"
import { AUTOTUNE_VERSION } from "./system/Versions.js"
import { type Candidate, formatParams } from "./domain/Candidate.js"
import { type ExitReason, fromExit } from "./domain/ExitReason.js"
import { describeKnobs, Knobs } from "./domain/Knobs.js"
import { TrialRow, type TrialOutcome } from "./domain/Trial.js"
import { encodeTuneDocument, type Machine, SPEC_VERSION, type TuneDocument } from "./domain/TuneDocument.js"
import { notesOf } from "./domain/Verdict.js"
import { ensureLadder, ladderOf } from "./gguf/DemoLadder.js"
import { adapterBinary, adapterExecutable, type ProviderAdapter } from "./providers/ProviderAdapter.js"
import { restartInstructions, ServiceManager } from "./services/ServiceManager.js"
import { TrialStore } from "./services/TrialStore.js"
import { applyRecommendation, type ApplyResult, defaultConfigPath, pruneBackups, restoreApplied } from "./steps/Apply.js"
import { MIN_COMPARED_REPLICATES, renderVerify, verifyMissText, type VerifyResult, verifyRecipe } from "./steps/Verify.js"
import { resolveCandidates } from "./steps/Candidates.js"
import { drain, restoreJournaled } from "./steps/Drain.js"
import { conflicting, preflight } from "./steps/Preflight.js"
import { buildDocument, formatCi, type Recommended, renderBlock, type RunSummary, serveCommandOf } from "./steps/Recommend.js"
import { type Capacity, findCapacity } from "./steps/Capacity.js"
import { measureQuietly } from "./steps/QuietGuard.js"
import { DEFAULT_MEMORY_HEADROOM } from "./steps/RunTrial.js"
import { type Rejected, stage1, stage1Knobs } from "./steps/Stage1.js"
import { type MeasuredCell, stage2, type Stage2Result } from "./steps/Stage2.js"
import { CpuMeter } from "./services/CpuMeter.js"
import { drainJournalPath } from "./system/DrainJournal.js"
import { holdSignals } from "./system/HoldSignals.js"
import { noteRecorded } from "./system/RunOutcome.js"
import { machineOf } from "./system/MachineInfo.js"
import { acquireRunLock, runLockPaths } from "./system/RunLock.js"
import { type LifecyclePlan, planInputs, type TunePlan } from "./TunePlan.js"

/** What the steps of one run share; Refs live outside the budget so a partial result survives it (H-3). */
interface RunState {
  /** The best recommendation so far: Stage 1's choice, then each new best Stage 2 cell. */
  readonly recommended: Ref.Ref<Recommended | null>
  /** The trial id of the best Stage 2 cell so far (B-4 marks it kept). */
  readonly keptTrialId: Ref.Ref<number | null>
  /** Candidates (and a Stage 2 integrity failure) found infeasible, in trial order (F-1, F-2). */
  readonly rejected: Ref.Ref<ReadonlyArray<Rejected>>
  /** The config written by `--apply`, once written. */
  readonly applied: Ref.Ref<ApplyResult | null>
  /** What `--apply --verify` found (F-6), once it probed. */
  readonly verified: Ref.Ref<VerifyResult | null>
  /** Why the applied config was put back (F-6: it did not verify, or the run stopped during the verification); null: it was not. */
  readonly restored: Ref.Ref<string | null>
  /** Why an applied config that did not verify could not be put back (F-6), null otherwise. */
  readonly restoreFailed: Ref.Ref<string | null>
  /** Whether the drain stopped something that comes back when the run ends (E-2). */
  readonly drainedComesBack: Ref.Ref<boolean>
  /** Trials measured while other processes were busy (SPEC N-3), measured again or not. */
  readonly disturbedTrials: Ref.Ref<number>
  /** The row of each Stage 2 cell, by its knobs: a cell given more replicates updates its row (N-2). */
  readonly cellRows: Map<Knobs, number>
  /** The Stage 1 trial that chose the model (N-2 marginal, N-3 disturbed), once chosen. */
  readonly stage1: Ref.Ref<TrialOutcome | null>
  /** Stage 2's noise findings (N-2): cells tied with the winner within the noise, and the drift check. */
  readonly noise: Ref.Ref<Pick<Stage2Result, "tiedWithinNoise" | "drift">>
  /** SPEC C-4: the capacity of the recommendation, once `--find-max-concurrency` found it. */
  readonly capacity: Ref.Ref<Capacity | null>
  /** Every Stage 2 cell measured, with its figures over all its replicates (the Pareto front, F-2 `pareto`). */
  readonly cells: Map<Knobs, TrialOutcome>
}

/** One run's identity and fixed facts, as its row records them (S-2). */
interface Run {
  readonly runId: string
  readonly startedAt: string
  readonly plan: TunePlan
  readonly candidates: ReadonlyArray<Candidate>
  readonly machine: Machine
  /** What its trial keys are made of (SPEC R-1). */
  readonly identity: RunIdentity
  /** Its trial ledger (R-2): every measurement kept, a resumed run's parent's replayed. */
  readonly ledger: TrialLedger
  /** The run it resumes (R-2), null for a fresh tune. */
  readonly parentRunId: string | null
}

/**
 * Runs a tune (SPEC §2, A, B, E-1, E-2, F-1..F-3, H-1..H-4, S-1, S-2) from a
 * validated plan (`validatePlan`): see the step list above. Prints the F-2
 * document (`--json`) or the F-1 terminal block on stdout, progress on stderr.
 * Fails with RunLocked (another run holds the database or provider lock:
 * nothing written), UsageError (a candidate file is missing), SynthFailed
 * (the demo ladder could not be written), StoreFailed, ProviderConflict (E-1,
 * E-2; recorded in the run row), AllInfeasible (A-4), PreWarmIntegrityFailure
 * (D-2, after its trial row), BudgetExhausted (H-3; the best recommendation so
 * far printed as partial when Stage 1 had chosen) or ApplyFailed (F-3; the
 * recommendation still printed). Interrupted (H-4): the row is marked
 * `interrupted` with `ended_at` null, nothing is applied.
 * For the run's life it holds SIGINT, SIGTERM and SIGHUP (system/HoldSignals.ts),
 * so a script calling it is interrupted through its fiber (as `runMain` does
 * on Ctrl-C), never killed between a stop and its SIGKILL.
 */
export const tune = Effect.fn("tune")(function*(plan: TunePlan) {
  yield* holdSignals
  yield* lockRun(plan)
  yield* restoreEarlierDrain(plan.dbPath)
  const candidates = yield* candidatesOf(plan)
  const adapter = yield* plan.adapter.probe
  const runId = randomUUID()
  const startedAt = new Date(yield* Clock.currentTimeMillis).toISOString()
  const version = yield* adapter.version
  const machine = machineOf(version)
  const identity = yield* runIdentityOf(plan, adapter, version, machine, candidates)
  const store = yield* openStore(plan.dbPath)
  const parentRunId = plan.resume?.parentRunId ?? null
  const ledger = makeLedger(identity, yield* parentLedger(store, plan, identity), (key, outcome) =>
    store.insertMeasurement({ run_id: runId, trial_key: key, outcome_json: encodeOutcome(outcome), reused_from_run: null }))
  const run: Run = {
    runId,
    startedAt,
    // Each run's provider logs in a directory of its own, so retention can take them with the run (S-4).
    plan: { ...plan, adapter, logDir: path.join(plan.logDir, runId), ledger },
    candidates,
    machine,
    identity,
    ledger,
    parentRunId
  }
  // R-2: a resumed run's row comes with its parent's whole ledger, so however early it stops, resuming it loses nothing.
  yield* startRun(store, run)
  const state: RunState = {
    recommended: yield* Ref.make<Recommended | null>(null),
    keptTrialId: yield* Ref.make<number | null>(null),
    rejected: yield* Ref.make<ReadonlyArray<Rejected>>([]),
    applied: yield* Ref.make<ApplyResult | null>(null),
    verified: yield* Ref.make<VerifyResult | null>(null),
    restored: yield* Ref.make<string | null>(null),
    restoreFailed: yield* Ref.make<string | null>(null),
    drainedComesBack: yield* Ref.make(false),
    disturbedTrials: yield* Ref.make(0),
    cellRows: new Map(),
    stage1: yield* Ref.make<TrialOutcome | null>(null),
    noise: yield* Ref.make<Pick<Stage2Result, "tiedWithinNoise" | "drift">>({ tiedWithinNoise: [], drift: null }),
    capacity: yield* Ref.make<Capacity | null>(null),
    cells: new Map()
  }

  const steps = Effect.gen(function*() {
    yield* Ref.set(state.drainedComesBack, yield* preflightAndDrain(plan.lifecycle, plan.dbPath))
    yield* Console.error(
      `autotune: run ${run.runId}: ${candidates.length} candidate(s) on ${adapter.name}, target context ${plan.targetContext} tokens, TTFT gate ${plan.gateTtftMs} ms`
    )
    if (plan.waitQuietMs !== null && plan.maxBackgroundCores !== null) yield* waitQuiet(plan.maxBackgroundCores, plan.waitQuietMs)
    const chosen = yield* stage1(run.plan, candidates, plan.stage1Replicates, (candidate, outcome, superseded) =>
      recordTrial(store, state, run, 1, candidate, stage1Knobs(plan), outcome, superseded), plan.maxReplicates)
    const stage1Choice: Recommended = { candidate: chosen.candidate, knobs: stage1Knobs(plan), outcome: chosen.outcome }
    yield* Ref.set(state.recommended, stage1Choice)
    yield* Ref.set(state.stage1, chosen.outcome)

    const grid = cells(plan.axes)
    yield* Console.error(`autotune: stage 2 on ${chosen.candidate.id}: ${grid.length} cell(s)`)
    const record = (cell: MeasuredCell, superseded: boolean) =>
      Effect.zipRight(
        Effect.sync(() => (superseded ? undefined : state.cells.set(cell.knobs, cell.outcome))),
        recordTrial(store, state, run, 2, chosen.candidate, cell.knobs, cell.outcome, superseded)
      )
    const result = yield* stage2(run.plan, chosen, grid, plan.stage2Replicates, {
      epsilon: plan.tpsTieEpsilon,
      maxReplicates: plan.maxReplicates
    }, {
      measured: (cell) => record(cell, false),
      superseded: (cell) => record(cell, true),
      updated: (cell, more) =>
        Effect.zipRight(Effect.sync(() => state.cells.set(cell.knobs, cell.outcome)), updateCell(store, state, run, chosen.candidate, cell, more)),
      // The best so far (B-4's kept row), so a budget or an interrupt finds it (H-3); none feasible: Stage 1's (B-5).
      best: (cell) =>
        Effect.gen(function*() {
          yield* Ref.set(state.recommended, cell === null ? stage1Choice : { candidate: chosen.candidate, knobs: cell.knobs, outcome: cell.outcome })
          yield* Ref.set(state.keptTrialId, cell === null ? null : state.cellRows.get(cell.knobs) ?? null)
          if (cell !== null) yield* Console.error(`[stage 2] ${describeKnobs(cell.knobs)}  <- best so far`)
        })
    })
    yield* Ref.set(state.noise, { tiedWithinNoise: result.tiedWithinNoise, drift: result.drift })
    const best = result.best
    if (best === null) {
      yield* Console.error("autotune: no feasible Stage 2 cell; recommending the Stage 1 configuration (SPEC B-5)")
    }
    // Recommend: the Stage 2 winner, else Stage 1's choice (B-4, B-5).
    const recommendation = (yield* Ref.get(state.recommended))!
    if (plan.findMaxConcurrency === true) {
      // C-4: on the recommended configuration, under the run's objective (a single user's, judged by the gate, when none).
      const objective = plan.objective ?? { streams: 1, ttftP95Ms: plan.gateTtftMs, itlP95Ms: null, decodeTps: null }
      yield* Console.error(`autotune: capacity of ${recommendation.candidate.id} with ${describeKnobs(recommendation.knobs)} (--find-max-concurrency)`)
      // The recommendation's own trial is the first step when it was measured as a step would be: a Stage 2 cell (its
      // replicates, every one judged; not Stage 1's marginal median, B-5) under this objective, and not disturbed (N-3).
      const o = recommendation.outcome
      const measuredAtStart = plan.objective != null && best !== null && o.load?.streams === objective.streams && !o.marginal &&
        o.background?.disturbed !== true
      const capacity = yield* findCapacity(
        run.plan,
        recommendation.candidate,
        recommendation.knobs,
        objective,
        plan.stage2Replicates,
        recommendation.outcome.calibration,
        measuredAtStart ? recommendation.outcome : null,
        // N-3: a disturbed step is on record, and measured again when the machine is quiet.
        (trial) =>
          measureQuietly(trial, plan.maxBackgroundCores, (o) => recordTrial(store, state, run, 3, recommendation.candidate, recommendation.knobs, o, true)),
        (step) => recordTrial(store, state, run, 3, recommendation.candidate, recommendation.knobs, step.outcome, false)
      )
      yield* Ref.set(state.capacity, capacity)
    }
    if (plan.apply !== null) {
      const { configPath, verify } = plan.apply
      // F-6: from the write to the verdict nothing but the probe can be interrupted, and an interrupted probe puts the original back.
      yield* Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(apply(run, configPath, recommendation, state), (applied) =>
          verify ? Effect.asVoid(verifyApplied(run, applied, recommendation, state, restore)) : Effect.void)
      )
    }
  })

  yield* withBudget(steps, plan.budgetMs).pipe(Effect.onExit((exit) => finish(store, state, run, exit)))
}, Effect.scoped)

// ---- the steps, in the order tune takes them --------------------------------

/**
 * One run at a time per database and per provider (system/RunLock.ts), held
 * until the run's scope closes. A database directory that cannot be made or
 * written is a usage error naming `--db-path` (nothing was written).
 */
const lockRun = (plan: TunePlan) =>
  Effect.gen(function*() {
    const dir = path.dirname(path.resolve(plan.dbPath))
    yield* Effect.try({
      try: () => {
        // Level by level, not `recursive: true`, which can loop forever on a pseudo-filesystem (/proc).
        const missing: Array<string> = []
        for (let d = dir; !fs.existsSync(d) && path.dirname(d) !== d; d = path.dirname(d)) missing.unshift(d)
        for (const d of missing) fs.mkdirSync(d)
        if (!fs.statSync(dir).isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" })
        fs.accessSync(dir, fs.constants.W_OK)
      },
      catch: (e) =>
        new UsageError({
          flag: "db-path",
          message: `--db-path ${plan.dbPath}: cannot write in ${dir} (${(e as NodeJS.ErrnoException).code ?? String(e)}); ` +
            "pass --db-path <file> in a directory you can write"
        })
    })
    yield* acquireRunLock(runLockPaths(plan.dbPath, adapterBinary(plan.adapter), plan.dataDir))
  })

/**
 * L-2: what a tune that died (SIGKILL, a crash) drained and never restored is
 * brought back first, from its journal beside the database (this run holds
 * the database's lock, so that tuner is gone). A journal that cannot be read,
 * or a restore that failed, stops this run (exit 4, ProviderConflict): the
 * operator's provider is down, and tuning beside or without it helps nobody.
 */
const restoreEarlierDrain = (dbPath: string) =>
  Effect.gen(function*() {
    const file = drainJournalPath(dbPath)
    const r = yield* restoreJournaled(file)
    if (r._tag === "Unreadable" || (r._tag === "Restored" && r.failed.length > 0)) {
      return yield* new ProviderConflict({
        message: `an earlier tune's drain could not be restored (${
          r._tag === "Unreadable" ? `${file} cannot be read` : r.failed.join("; ")
        }): bring the provider back by hand, then \`autotune restore --forget\` drops the journal (${file})`
      })
    }
  })

/** The run's candidates in the operator's order (A-1), the demo ladder's files written first when missing. */
const candidatesOf = (plan: TunePlan) =>
  Effect.gen(function*() {
    // The plan named the ladder's directory only for a ladder's files (an earlier ladder's only when resumed).
    const dir = plan.demoLadderDir
    const rungs = dir === null ? null : ladderOf(plan.candidateIds, dir, true)
    if (dir !== null && rungs !== null) yield* ensureLadder(dir, rungs)
    return yield* resolveCandidates(plan.candidateIds, plan.adapter.name)
  })

/** The trial store on `dbPath` (S-1..S-3), opened only now, when the run holds its locks; closed with the run's scope. */
const openStore = (dbPath: string) => Effect.map(Layer.build(TrialStore.layer(dbPath)), Context.get(TrialStore))

/** The run row at start (H-1, S-2), with what `--resume` and `verify` read back (R-1, R-2). */
const startRun = (store: TrialStore, run: Run) =>
  store.startRun({
    run_id: run.runId,
    started_at: run.startedAt,
    spec_version: SPEC_VERSION,
    machine_json: JSON.stringify(run.machine),
    inputs_json: JSON.stringify(planInputs(run.plan)),
    parent_run_id: run.parentRunId,
    flags_json: run.plan.flagsJson ?? null,
    identity_json: encodeRunIdentity(run.identity)
  })

/**
 * SPEC R-1: the identities this run's trial keys are made of — the machine,
 * the provider's binary, every candidate's model file (header hashed), and
 * the measurement policy of the plan.
 */
const runIdentityOf = (plan: TunePlan, adapter: ProviderAdapter, version: string | null, machine: Machine, candidates: ReadonlyArray<Candidate>) =>
  Effect.gen(function*() {
    const models: Record<string, ModelIdentity> = {}
    for (const c of candidates) models[c.id] = yield* modelIdentity(c)
    return new RunIdentity({
      tool_version: AUTOTUNE_VERSION,
      machine,
      provider: providerIdentity(adapter.name, adapterExecutable(adapter), version),
      models,
      policy: {
        target_context: plan.targetContext,
        max_tokens: plan.maxTokens,
        reply_tokens: plan.replyTokens,
        gate_ttft_ms: plan.gateTtftMs,
        request_timeout_ms: plan.requestTimeoutMs,
        ready_timeout_ms: plan.readyTimeoutMs,
        estimate: plan.estimate,
        memory_limit_gib: plan.memoryLimitGiB,
        stage1_replicates: plan.stage1Replicates,
        stage2_replicates: plan.stage2Replicates,
        max_replicates: plan.maxReplicates,
        max_background_cores: plan.maxBackgroundCores,
        ...(plan.objective == null ? {} : {
          objective: {
            streams: plan.objective.streams,
            ttft_p95_ms: plan.objective.ttftP95Ms,
            itl_p95_ms: plan.objective.itlP95Ms,
            decode_tps: plan.objective.decodeTps
          }
        }),
        ...(plan.memoryHeadroom === undefined || plan.memoryHeadroom === DEFAULT_MEMORY_HEADROOM ? {} : { memory_headroom: plan.memoryHeadroom }),
        prewarm: preWarmPolicy(adapter.shortWarmUpSuffices, adapter.countsTokens),
        throughput: THROUGHPUT_POLICY,
        ...(adapter.streamIntervalMs == null ? {} : { stream_interval_ms: adapter.streamIntervalMs })
      }
    })
  })

/**
 * SPEC R-2: the measurements of the run `plan.resume` continues, to replay
 * (none for a fresh tune). What changed since — the machine, the provider
 * binary, a model file, the policy — is said on stderr: trials whose key it
 * changes are measured again. A measurement that no longer decodes is left
 * out (measured again). Fails with UsageError naming `--resume` when the
 * database has no such run.
 */
const parentLedger = (store: TrialStore, plan: TunePlan, identity: RunIdentity) =>
  Effect.gen(function*() {
    const parentId = plan.resume?.parentRunId
    if (parentId === undefined) return []
    const parent = yield* store.run(parentId)
    if (Option.isNone(parent)) {
      return yield* new UsageError({ flag: "resume", message: `--resume ${parentId}: no such run in ${plan.dbPath} (autotune history lists the runs)` })
    }
    const before = decodeRunIdentity(parent.value.identity_json)
    const changes = before === null ? ["the run recorded no identities (an older version): nothing can be reused"] : identityChanges(before, identity)
    for (const c of changes) yield* Console.error(`autotune: resume: ${c}; the trials this changes are measured again`)
    const entries = (yield* store.measurements(parentId)).flatMap((m): Array<LedgerEntry> => {
      try {
        return [{ trialKey: m.trial_key, outcome: decodeOutcome(m.outcome_json), measuredIn: m.reused_from_run ?? m.run_id }]
      } catch {
        return []
      }
    })
    yield* Console.error(
      `autotune: resuming run ${parentId}: ${entries.length} measurement(s) on record; those whose trial key still matches are reused without starting a provider (SPEC R-2)`
    )
    return entries
  })

/**
 * Pre-flight then drain (E-1, E-2), as the first recorded step: a conflict or
 * a failed drain finalizes the run row as provider_conflict. With `--drain`
 * the provider is stopped now, journaled beside the database (L-2), and
 * restored when the run's scope closes, on every exit path. Returns whether a
 * drained provider comes back then.
 */
const preflightAndDrain = (l: LifecyclePlan, dbPath: string) =>
  Effect.gen(function*() {
    const found = yield* preflight(l.preflight, l.drain)
    return conflicting(found)
      ? yield* drain(found, { restartForeground: l.restartForeground, journal: drainJournalPath(dbPath), preflight: l.preflight })
      : false
  })

/** Whether a trial's replicates were judged against an objective (SPEC C-1): its tok/s is then goodput. */
const underObjective = (o: TrialOutcome) => o.load !== undefined && o.samples.some((x) => x.streams !== undefined)

/** One progress line per finished trial, on stderr (stdout carries the result only). */
const progress = (stage: 1 | 2 | 3, label: string, o: TrialOutcome, note: string) => {
  const fmt = (n: number | null, unit: string, digits = 1) => (n === null ? `n/a ${unit}` : `${n.toFixed(digits)} ${unit}`)
  return Console.error(
    `[stage ${stage}] ${label}: ${
      o.verdict._tag === "Fits"
        ? `fits, ${underObjective(o) ? "goodput " : ""}${fmt(o.tpsMedian, "tok/s")} ${formatCi(o.spread.tpsCi95, 1)}${
          underObjective(o) ? ` at ${o.load!.streams} users (aggregate ${fmt(o.load!.aggregateTps, "tok/s")})` : ""
        }, TTFT median ${fmt(o.ttftMedianMs, "ms", 0)} ${
          formatCi(o.spread.ttftCi95Ms, 0)
        } p95 ${fmt(o.ttftP95Ms, "ms", 0)} over ${o.samples.length} replicate(s)`
        : `infeasible: ${notesOf(o.verdict)}`
    }${o.marginal ? " (marginal: called on the median TTFT, SPEC N-2)" : ""}${
      o.background === null ? "" : `; other processes ${o.background.othersCores.toFixed(2)} cores`
    }${note}`
  )
}

/**
 * Records one finished trial (S-1) and what the run learns from it: a Stage 1
 * infeasible candidate or a Stage 2 integrity failure joins the rejected
 * list (F-1); a new best Stage 2 cell becomes the recommendation so far and
 * its row the one to keep (B-4). Prints its progress line.
 */
const recordTrial = (
  store: TrialStore,
  state: RunState,
  run: Run,
  stage: 1 | 2 | 3,
  candidate: Candidate,
  knobs: Knobs,
  outcome: TrialOutcome,
  superseded: boolean
) =>
  Effect.gen(function*() {
    const trialId = yield* store.insertTrial(
      TrialRow.fromOutcome(run.runId, stage, candidate, run.plan.targetContext, knobs, outcome, superseded,
        // A capacity step (C-4) is measured outside the ledger: a resumed run searches again.
        stage === 3 ? null : run.ledger.keyOf(stage, candidate, knobs))
    )
    if (outcome.background?.disturbed === true) yield* Ref.update(state.disturbedTrials, (n) => n + 1)
    if (stage === 3) return yield* progress(3, `${outcome.load?.streams ?? "?"} user(s)`, outcome, superseded ? "  (disturbed: measured again)" : "")
    const label = stage === 1 ? `#${candidate.rank} ${candidate.id} (${formatParams(candidate.paramCount)})` : describeKnobs(knobs)
    const reused = outcome.reusedFrom === undefined ? "" : `  (reused from run ${outcome.reusedFrom}: no provider started, SPEC R-2)`
    // A disturbed trial measured again (N-3) is on record, and decides nothing.
    if (superseded) return yield* progress(stage, label, outcome, `  (disturbed: measured again)${reused}`)
    if (stage === 2) state.cellRows.set(knobs, trialId)
    const rejected = stage === 1 ? outcome.verdict._tag !== "Fits" : outcome.verdict._tag === "Integrity"
    if (rejected) yield* Ref.update(state.rejected, (rs) => [...rs, { candidate, verdict: outcome.verdict, outcome }])
    yield* progress(stage, label, outcome, reused)
  })

/**
 * A Stage 2 cell given more replicates (N-2): its row takes the figures over
 * all of them; a still-disturbed extra trial counts (N-3); the recommendation
 * so far follows when it is that cell and still feasible (an infeasible one
 * is replaced through Stage 2's `best` hook).
 */
const updateCell = (store: TrialStore, state: RunState, run: Run, candidate: Candidate, cell: MeasuredCell, more: TrialOutcome) =>
  Effect.gen(function*() {
    const { knobs, outcome } = cell
    const trialId = state.cellRows.get(knobs)
    if (trialId !== undefined) {
      yield* store.updateTrial(trialId, TrialRow.fromOutcome(run.runId, 2, candidate, run.plan.targetContext, knobs, outcome, false))
    }
    if (more.background?.disturbed === true) yield* Ref.update(state.disturbedTrials, (n) => n + 1)
    if (outcome.verdict._tag === "Fits") {
      yield* Ref.update(state.recommended, (r) => (r !== null && r.knobs === knobs ? { ...r, outcome } : r))
    }
    yield* progress(2, describeKnobs(knobs), outcome, "  (figures over all its replicates)")
  })

/** `--wait-quiet` (N-3): before the first trial, wait for other processes to use at most `maxCores`, up to `maxWaitMs`. */
const waitQuiet = (maxCores: number, maxWaitMs: number) =>
  Effect.gen(function*() {
    yield* Console.error(`autotune: waiting up to ${maxWaitMs / 1000} s for other processes to use at most ${maxCores} cores (--wait-quiet)`)
    const quiet = yield* (yield* CpuMeter).awaitQuiet(maxCores, maxWaitMs)
    yield* Console.error(quiet ? "autotune: the machine is quiet" : "autotune: the machine is still busy; tuning anyway (trials measured while busy are re-run)")
  })

/**
 * `--apply` (F-3, F-4) after a finished Stage 2: the recommendation written
 * into the config (`configPath`, else the provider's default), as the
 * provider reads it (`adapter.config.valuesOf`). Once the write starts it
 * finishes and is recorded, so an interrupt or budget arriving mid-apply never
 * leaves a written config reported as not applied.
 */
const apply = (run: Run, configPath: string | null, rec: Recommended, state: RunState) =>
  Effect.gen(function*() {
    const { adapter } = run.plan
    const target = configPath ?? defaultConfigPath(adapter.name)
    if (adapter.config === null || target === null) {
      return yield* new ApplyFailed({ message: `this tool writes no config the ${adapter.name} provider reads` })
    }
    const spec = { model: rec.candidate.model, port: null, knobs: rec.knobs, targetContext: run.plan.targetContext, replyTokens: run.plan.replyTokens }
    return yield* Effect.uninterruptible(Effect.tap(
      applyRecommendation({
        configPath: path.resolve(target),
        edit: adapter.config.edit(spec, path.resolve(target)),
        nowMs: yield* Clock.currentTimeMillis,
        createIfMissing: adapter.config.createIfMissing
      }),
      (result) => Ref.set(state.applied, result)
    ))
  })

/**
 * `--apply --verify` (F-6): the provider started from the written config
 * exactly as the restart line says (`adapter.config.launchFrom`), probed at
 * the target context with the recipe's replicates (at least
 * MIN_COMPARED_REPLICATES), and compared with the recipe (`verifyRecipe`: the
 * gate, the memory estimate, its interval and the tie band; figures that
 * regressed are measured again in a second start, which decides, so the written
 * config stays in place, unverified, for that start too). A miss puts the
 * original config back byte for byte (`restoreApplied`) and fails with
 * ApplyFailed (exit 6) naming what missed; the recommendation is still printed.
 */
const verifyApplied = (
  run: Run,
  applied: ApplyResult,
  rec: Recommended,
  state: RunState,
  interruptible: <A, E, R>(probe: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
) =>
  Effect.gen(function*() {
    const launchFrom = run.plan.adapter.config?.launchFrom ?? null
    if (launchFrom === null) return
    // The path the operator gave (a symlink stays a symlink in the restart line).
    const configFile = path.resolve(applied.configPath)
    yield* Console.error(`autotune: verifying ${configFile}: starting the provider from it`)
    const doc = buildDocument(yield* summarize(state, run, "ok"))
    const { ledger: _ledger, ...settings } = run.plan
    /** Puts the original back (F-6); a restore that cannot be done is recorded and said, never silent. */
    const putBack = (why: string) =>
      restoreApplied(applied).pipe(
        Effect.zipRight(Ref.set(state.restored, why)),
        Effect.tapError((e) => Ref.set(state.restoreFailed, e.message))
      )
    // Only the probe is interruptible; however it ends without a verdict (Ctrl-C, the budget, a defect),
    // the original goes back before that end goes on.
    const probed = yield* Effect.exit(interruptible(verifyRecipe(
      { ...settings, adapter: launchFrom(configFile), logDir: path.join(run.plan.logDir, "verify") },
      { recommendation: doc.recommendation!, inputs: doc.inputs, machine: run.machine, identity: run.identity },
      rec.candidate,
      Math.max(MIN_COMPARED_REPLICATES, rec.outcome.samples.length)
    )))
    if (Exit.isFailure(probed)) {
      yield* putBack("the run was stopped before the verification finished").pipe(Effect.ignore)
      return yield* Effect.failCause(probed.cause)
    }
    const result = probed.value
    yield* Ref.set(state.verified, result)
    if (result.verdict === "holds") return
    const missed = verifyMissText(result)
    yield* putBack(`the applied config did not verify: ${missed}`).pipe(Effect.mapError((e) =>
      new ApplyFailed({ message: `the applied config did not verify (${missed}), and ${e.message}` })
    ))
    return yield* new ApplyFailed({
      message: `the applied config did not verify: ${missed}; ${
        applied.backupPath === null ? `${applied.target} removed (it did not exist before)` : `${applied.target} restored from ${applied.backupPath}`
      }`
    })
  })

/** H-3: the budget interrupts the steps (their trial and provider stop through their scopes) and fails with BudgetExhausted. */
const withBudget = <A, E, R>(steps: Effect.Effect<A, E, R>, budgetMs: number | null) =>
  budgetMs === null ? steps : steps.pipe(
    Effect.timeoutFail({
      duration: `${budgetMs} millis`,
      onTimeout: () => new BudgetExhausted({ budgetMs, message: `the --max-duration budget of ${budgetMs / 1000} s ran out` })
    })
  )

// ---- finish: on every exit path ---------------------------------------------

/**
 * However the run ended: its document (F-2), then record the end, print the
 * result, print the apply report, and prune what retention lets go (S-4).
 */
const finish = (store: TrialStore, state: RunState, run: Run, exit: Exit.Exit<unknown, unknown>) =>
  Effect.gen(function*() {
    const summary = yield* summarize(state, run, fromExit(exit))
    const doc = buildDocument(summary)
    yield* recordEnd(store, state, run, doc)
    yield* Console.log(run.plan.json ? encodeTuneDocument(doc) : renderBlock(doc, summary))
    yield* printApplyReport(state, run, summary)
    yield* prune(store, state, run)
  })

/**
 * Retention (SPEC S-4, L-3), once this run is recorded: only the newest
 * `--keep-runs` runs stay in the database (trials then runs, one `BEGIN
 * IMMEDIATE` transaction), with their provider log directories; with
 * `--apply`, only as many backups of the config. A failure is said on stderr:
 * the run's own result stands.
 */
const prune = (store: TrialStore, state: RunState, run: Run) =>
  Effect.gen(function*() {
    const keep = run.plan.keepRuns
    if (keep === 0) return
    const gone = yield* store.pruneRuns(keep).pipe(
      Effect.catchAll((e) => Console.error(`autotune: retention: ${e.message}`).pipe(Effect.as([] as ReadonlyArray<string>)))
    )
    const logs = path.dirname(run.plan.logDir)
    // Only a run id that names one directory below logs/ (a UUID): never a path a database could smuggle in.
    for (const id of gone.filter((g) => /^[0-9a-f-]{36}$/.test(g))) {
      yield* Effect.try(() => fs.rmSync(path.join(logs, id), { recursive: true, force: true })).pipe(Effect.ignore)
    }
    const applied = yield* Ref.get(state.applied)
    const backups = applied?.backupPath == null ? [] : pruneBackups(applied.backupPath, keep)
    if (gone.length + backups.length > 0) {
      yield* Console.error(
        `autotune: retention (--keep-runs ${keep}): removed ${gone.length} older run(s) with their logs` +
          (backups.length > 0 ? ` and ${backups.length} older config backup(s)` : "")
      )
    }
  })

/**
 * What the run's document is built from (F-1, F-2). Its recommendation is the
 * best so far when the run finished (ok), failed only to apply (F-3: the
 * config is untouched) or ran out of budget after Stage 1 had chosen (H-3:
 * partial); else none.
 */
const summarize = (state: RunState, run: Run, exitReason: ExitReason) =>
  Effect.gen(function*() {
    const best = yield* Ref.get(state.recommended)
    const partial = exitReason === "budget_exhausted" && best !== null
    const recommended = exitReason === "ok" || exitReason === "apply_failed" || partial ? best : null
    return {
      runId: run.runId,
      startedAt: run.startedAt,
      endedAt: exitReason === "interrupted" ? null : new Date(yield* Clock.currentTimeMillis).toISOString(),
      exitReason,
      partial,
      machine: run.machine,
      inputs: planInputs(run.plan),
      adapter: run.plan.adapter,
      candidates: run.candidates,
      targetContext: run.plan.targetContext,
      replyTokens: run.plan.replyTokens,
      recommended,
      rejected: yield* Ref.get(state.rejected),
      disturbedTrials: yield* Ref.get(state.disturbedTrials),
      stage1: recommended === null ? null : yield* Ref.get(state.stage1),
      noisePolicy: { maxReplicates: run.plan.maxReplicates, maxBackgroundCores: run.plan.maxBackgroundCores },
      capacity: recommended === null ? null : yield* Ref.get(state.capacity),
      cells: recommended === null ? [] : [...state.cells].map(([knobs, outcome]) => ({ knobs, outcome })),
      ...(recommended === null ? { tiedWithinNoise: [], drift: null } : yield* Ref.get(state.noise))
    } satisfies RunSummary
  })

/**
 * The end of the run in the store: the kept Stage 2 row (B-4; final, or the
 * best so far of a partial run) and the run row updated, never replaced
 * (H-1; `ended_at` null when interrupted, H-4). A store failure here is said
 * on stderr: the result is still printed.
 */
const recordEnd = (store: TrialStore, state: RunState, run: Run, doc: TuneDocument) =>
  Effect.gen(function*() {
    const kept = yield* Ref.get(state.keptTrialId)
    const said = (e: { readonly message: string }) => Console.error(`autotune: ${e.message}`)
    if (doc.recommendation !== null && kept !== null) yield* store.markKept(kept).pipe(Effect.catchAll(said))
    yield* store.finishRun(run.runId, {
      ended_at: doc.ended_at,
      exit_reason: doc.exit_reason,
      recommendation_json: doc.recommendation === null ? null : JSON.stringify(doc.recommendation),
      recipe_hash: doc.recipe_hash,
      partial: doc.partial
    }).pipe(
      Effect.zipRight(Effect.sync(() => noteRecorded(doc.exit_reason))),
      Effect.catchAll(said)
    )
  })

/**
 * What `--apply` did, whenever the config was written — even if an interrupt
 * or the budget landed during the (uninterruptible) write: the operator must
 * never find a changed config unannounced. Then how the provider reads it: a
 * drained provider comes back with the new config; else the job's manager
 * restarts it, when the job exists there; else restart it by hand (F-3).
 * stdout carries the document only with `--json`: the report then goes to stderr.
 */
const printApplyReport = (state: RunState, run: Run, summary: RunSummary) =>
  Effect.gen(function*() {
    const done = yield* Ref.get(state.applied)
    const rec = yield* Ref.get(state.recommended)
    if (done === null || rec === null) return
    const say = run.plan.json ? Console.error : Console.log
    const verified = yield* Ref.get(state.verified)
    const verifiedLines = verified === null ? [] : ["verified (SPEC F-6): the provider started from the written config", renderVerify(verified)]
    const restoreFailed = yield* Ref.get(state.restoreFailed)
    if (restoreFailed !== null) {
      return yield* say([
        ...verifiedLines,
        `NOT RESTORED: ${done.target} was to be put back (not verified), and was not: ${restoreFailed}`,
        done.backupPath === null
          ? `  it did not exist before this run: remove it once you have checked it`
          : `  the original is ${done.backupPath}: compare, and put it back by hand`
      ].join("\n"))
    }
    const restored = yield* Ref.get(state.restored)
    if (restored !== null) {
      return yield* say([
        ...verifiedLines,
        done.backupPath === null
          ? `not applied:  ${done.target} removed again (it did not exist before): ${restored}`
          : `not applied:  ${done.target} put back from ${done.backupPath}, byte for byte: ${restored}`
      ].join("\n"))
    }
    const { serviceLabel, serviceManager } = run.plan.lifecycle.preflight
    const manager = yield* ServiceManager
    const kind = yield* manager.resolve(serviceManager)
    const job = yield* manager.jobState(kind, serviceLabel)
    const launchFrom = run.plan.adapter.config?.launchFrom ?? null
    const written = [
      `applied:      ${done.configPath} (${
        done.changed.length === 0 ? "already up to date" : `${done.backupPath === null ? "created with" : "changed"} ${done.changed.join(", ")}`
      }${done.backupPath === null ? "" : `; backup ${done.backupPath}`})`,
      ...(summary.exitReason === "ok" ? [] : [`              the config was written before the run ended (${summary.exitReason})`]),
      ...verifiedLines
    ]
    if (launchFrom === null) {
      // macprovider reads its own config at start: its job, or the drained provider coming back, picks it up.
      return yield* say([
        ...written,
        (yield* Ref.get(state.drainedComesBack))
          ? "the provider drained for this run is restored when it ends, and reads the new config then"
          : restartInstructions(
            job._tag === "Absent" ? "none" : kind,
            serviceLabel,
            serveCommandOf(run.plan.adapter, rec, run.plan.targetContext, run.plan.replyTokens),
            process.getuid?.() ?? 0
          )
      ].join("\n"))
    }
    // F-4: the provider reads the file only when started from it, as this line does; a job or a drained
    // provider started with its own command line keeps serving what it did.
    const restartLine = launchFrom(path.resolve(done.configPath)).serveCommand({
      model: rec.candidate.model,
      port: null,
      knobs: rec.knobs,
      targetContext: run.plan.targetContext,
      replyTokens: run.plan.replyTokens
    })
    yield* say([
      ...written,
      `restart your provider from the new config:\n  ${restartLine}`,
      ...(job._tag === "Absent" ? [] : [`  (its ${kind} job ${serviceLabel} reads the file only if it starts the provider with that command line)`]),
      ...((yield* Ref.get(state.drainedComesBack))
        ? ["  (the provider drained for this run was brought back with its own command line, not this one)"]
        : [])
    ].join("\n"))
  })



