/**
 * The trial ledger (SPEC ): every measurement a run makes is kept
 * under its trial key, and a resumed run replays its parent's measurements of
 * the same key, in order, instead of starting a provider for them.
 */
import { Console, Effect } from "effect"
import type { Candidate } from "../domain/Candidate.js"
import type { Knobs } from "../domain/Knobs.js"
import type { TrialOutcome } from "../domain/Trial.js"
import { type RunIdentity, trialKey } from "../domain/TrialKey.js"

/** One measurement of a run's ledger: its key, whole outcome, and the run that measured it. */
export interface LedgerEntry {
  readonly trialKey: string
  readonly outcome: TrialOutcome
  /** The run whose provider measured it (the parent's own parent, for a measurement it replayed too). */
  readonly measuredIn: string
}

/**
 * Measures trials through the ledger: `measure(stage, candidate, knobs,
 * replicates, trial)` replays the next unused parent measurement of the
 * trial's key when there is one over the same number of replicates (the
 * outcome then carries `reusedFrom`, and `trial` never runs: no provider
 * starts), else runs `trial` and saves its outcome to this run's ledger.
 */
export interface TrialLedger {
  readonly measure: <E, R>(
    stage: 1 | 2,
    candidate: Candidate,
    knobs: Knobs,
    replicates: number,
    trial: Effect.Effect<TrialOutcome, E, R>
  ) => Effect.Effect<TrialOutcome, E, R>
  /** The key of a trial of this run (SPEC R-1), as its row records it. */
  readonly keyOf: (stage: 1 | 2, candidate: Candidate, knobs: Knobs) => string
  /** Whether the next `measure` of this trial would be replayed (no provider started). */
  readonly willReplay: (stage: 1 | 2, candidate: Candidate, knobs: Knobs, replicates: number) => boolean
}

/**
 * A ledger for a run of `identity` (SPEC R-2). `parent`: the measurements of
 * the run it resumes, in their order (empty for a fresh run), already copied
 * into this run's ledger when its row was written (`TrialStore.startRun`). Each
 * is replayed at most once, to the trial of the same key that asks for it in
 * the same turn (the k-th request for a key gets the parent's k-th
 * measurement of it) when it asks for the replicates that measurement was
 * made with — so a resumed run decides on exactly the figures the parent
 * measured and reaches the same recommendation; a mismatch is measured (the
 * parent's entry is dropped). `save(key, outcome)` records a measurement this
 * run made; a failure to save is said on stderr and costs only a
 * re-measurement on a later resume.
 */
export const makeLedger = <E>(
  identity: RunIdentity,
  parent: ReadonlyArray<LedgerEntry>,
  save: (key: string, outcome: TrialOutcome) => Effect.Effect<void, E>
): TrialLedger => {
  const queues = new Map<string, Array<LedgerEntry>>()
  for (const e of parent) {
    const q = queues.get(e.trialKey)
    if (q === undefined) queues.set(e.trialKey, [e])
    else q.push(e)
  }
  const keyOf = (stage: 1 | 2, candidate: Candidate, knobs: Knobs) => trialKey(identity, stage, candidate.id, knobs)
  const kept = (key: string, outcome: TrialOutcome) =>
    save(key, outcome).pipe(
      Effect.catchAll((e) =>
        Console.error(`autotune: ledger: ${(e as { message?: string }).message ?? String(e)} (a later --resume measures this trial again)`)
      )
    )
  return {
    keyOf,
    willReplay: (stage, candidate, knobs, replicates) => queues.get(keyOf(stage, candidate, knobs))?.[0]?.outcome.replicates === replicates,
    measure: (stage, candidate, knobs, replicates, trial) =>
      Effect.suspend(() => {
        const key = keyOf(stage, candidate, knobs)
        const next = queues.get(key)?.shift()
        if (next !== undefined && next.outcome.replicates === replicates) {
          return Effect.succeed<TrialOutcome>({ ...next.outcome, reusedFrom: next.measuredIn })
        }
        return Effect.tap(trial, (outcome) => kept(key, outcome))
      })
  }
}

/** Whether `ledger` (absent: none) would replay the next measurement of this trial (`TrialLedger.willReplay`). */
export const replaysNext = (ledger: TrialLedger | undefined, stage: 1 | 2, candidate: Candidate, knobs: Knobs, replicates: number) =>
  ledger?.willReplay(stage, candidate, knobs, replicates) ?? false

/** Runs `trial` of `replicates` through `ledger` when the settings carry one (a tune's pipeline does), else as is. */
export const throughLedger = <E, R>(
  ledger: TrialLedger | undefined,
  stage: 1 | 2,
  candidate: Candidate,
  knobs: Knobs,
  replicates: number,
  trial: Effect.Effect<TrialOutcome, E, R>
): Effect.Effect<TrialOutcome, E, R> =>
  ledger === undefined ? trial : ledger.measure(stage, candidate, knobs, replicates, trial)
