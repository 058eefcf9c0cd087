/**
 * The library entry point of llm-autotune (`import { … } from "llm-autotune"`):
 * the documented surface, and nothing else (the modules behind it are internal
 * and may change). Every pipeline step is an Effect with typed errors; compose
 * them in your own scripts and provide `ProviderLive` (steps that start
 * providers and probe) or `AutotuneLive` (the whole `tune`). The CLI uses
 * these same exports. The rule ids (A-1, D-2, F-3, …) refer to docs/SPEC.md.
 *
 * @example
 * import { Effect } from "effect"
 * import { embedded, ProviderLive, resolveCandidates, stage1 } from "llm-autotune"
 * const chosen = await Effect.runPromise(Effect.gen(function*() {
 *   const candidates = yield* resolveCandidates(["big.gguf", "small.gguf"], "embedded")
 *   return yield* stage1(settings, candidates, 3, () => Effect.void)
 * }).pipe(Effect.provide(ProviderLive)))
 */

// ---- the whole run ---------------------------------------------------------
export { tune } from "./Pipeline.js"
export { type ApplyPlan, type LifecyclePlan, planInputs, type TunePlan, validatePlan } from "./TunePlan.js"
export { AutotuneLive, PlatformLive, ProviderLive } from "./Live.js"

// ---- steps, in pipeline order ----------------------------------------------
export {
  conflicting,
  describeFindings,
  detectProviders,
  type Findings,
  preflight,
  type PreflightOptions,
  preflightOptionsFor
} from "./steps/Preflight.js"
export { drain, DRAIN_GRACE, type JournaledDrain, restoreDrained, restoreJournaled } from "./steps/Drain.js"
export { DrainJournal, drainJournalPath } from "./system/DrainJournal.js"
export { parseCandidateList, resolveCandidates } from "./steps/Candidates.js"
export { preWarm, type PreWarmResult, type PreWarmSpec } from "./steps/PreWarm.js"
export { probeOnce, type ProbeRequest, STOP_TOKENS } from "./steps/Probe.js"
export { runTrial, type TrialSettings } from "./steps/RunTrial.js"
export { abortOnIntegrity, allInfeasibleMessage, type Chosen, type Rejected, stage1 } from "./steps/Stage1.js"
export {
  type ClimbCell,
  climbCell,
  decideOver,
  driftCheck,
  type DriftCheck,
  type GridResult,
  gridSearch,
  type MeasuredCell,
  type NoisePolicy,
  stage2,
  type Stage2Hooks,
  type Stage2Result
} from "./steps/Stage2.js"
export { DISTURBED_RERUNS, measureQuietly, QUIET_WAIT_MS } from "./steps/QuietGuard.js"
export { type CellInterval, decidedByNoise, type NoisyScore } from "./domain/NewBest.js"
export { cv, median, medianCi95, medianCoverage, percentile } from "./domain/Stats.js"
export { buildDocument, knobsJson, type Recommended, renderBlock, type RunSummary, serveCommandOf } from "./steps/Recommend.js"
export {
  type ApplyRequest,
  type ApplyResult,
  applyRecommendation,
  checkApplyTarget,
  type ConfigEditor,
  defaultConfigPath,
  restoreApplied
} from "./steps/Apply.js"
export { editPresetText, PRESET_OWNED_KEYS, type PresetValues, presetValuesOf } from "./domain/PresetIni.js"
export { DEFAULT_REPLY_TOKENS } from "./domain/Prompt.js"
export { readServeConfig, type ServeConfig } from "./serve/ServeConfig.js"
export { report, type ReportFlags } from "./report/Report.js"
export { type LedgerEntry, makeLedger, type TrialLedger } from "./steps/Ledger.js"
export {
  DEFAULT_VERIFY_TOLERANCE,
  knobsOfRecipe,
  launchOf,
  type RecipeFigures,
  type RecordedRecipe,
  regressionsOf,
  renderVerify,
  verifyRecipe,
  type VerifyResult
} from "./steps/Verify.js"
export { identityChanges, ModelIdentity, ProviderIdentity, RunIdentity, trialKey } from "./domain/TrialKey.js"
export { decodeOutcome, encodeOutcome } from "./domain/OutcomeJson.js"
export { modelIdentity, providerIdentity } from "./steps/Identity.js"
export { serve } from "./serve/Serve.js"

// ---- services --------------------------------------------------------------
export { CandidateProvider, serverWithoutProcess, type StartOptions, type StubEvent } from "./services/CandidateProvider.js"
export { CpuMeter, type CpuSnapshot, othersCores } from "./services/CpuMeter.js"
export { Exec, type RunResult, SpawnFailed, stopProcess, type StopResult, type StopTarget } from "./services/Exec.js"
export { type ProcessInfo, ProcessTable } from "./services/ProcessTable.js"
export { type JobState, ServiceManager, type ServiceManagerKind } from "./services/ServiceManager.js"
export { MeasurementRow, type RunEnd, type RunStart, TrialStore, withExistingStore } from "./services/TrialStore.js"

// ---- providers -------------------------------------------------------------
export { embedded } from "./providers/Embedded.js"
export { llamaServer, llamaServerAdapter, type LlamaServerFlags, llamaServerFlags, NO_OPTIONAL_FLAGS } from "./providers/LlamaServer.js"
export { macProvider } from "./providers/MacProvider.js"
export { type LaunchSpec, type ProviderAdapter, type ProviderName } from "./providers/ProviderAdapter.js"

// ---- models ----------------------------------------------------------------
export { estimateMemory, type EstimateOptions, EstimateUnavailable, MemoryEstimate } from "./gguf/MemoryEstimate.js"
export { modelParamCount } from "./gguf/ModelSize.js"
export { GgufInvalid, type ModelInfo, readModelInfo } from "./gguf/ModelInfo.js"
export { writeSyntheticModel } from "./gguf/SyntheticModel.js"

// ---- the machine -----------------------------------------------------------
export { machineOf, physicalCores } from "./system/MachineInfo.js"
export { findLlamaServer } from "./system/Executables.js"
export { dataDir, defaultDbPath } from "./system/UserDirs.js"

// ---- errors and exit reasons -----------------------------------------------
export {
  AllInfeasible,
  ApplyFailed,
  AutotuneError,
  BudgetExhausted,
  PreWarmIntegrityFailure,
  ProviderConflict,
  ProviderStartFailed,
  RecipeMiss,
  RunLocked,
  ServeFailed,
  StoreFailed,
  SynthFailed,
  UsageError
} from "./domain/AutotuneError.js"
export { exitCode, exitCodeOf, ExitReason, fromError, fromExit } from "./domain/ExitReason.js"

// ---- schemas and domain ----------------------------------------------------
export { type Axes, cells } from "./domain/Axes.js"
export { type Candidate, formatParams } from "./domain/Candidate.js"
export { DEFAULT_STREAM_INTERVAL_MS, MAX_STREAM_INTERVAL_MS, streamIntervalForItl } from "./domain/StreamInterval.js"
export { editConfigText, FLASH_ATTN_KEY, OWNED_KEYS, type OwnedKey, type OwnedValues, STREAM_INTERVAL_KEY, THREADS_KEY } from "./domain/ConfigYaml.js"
export { describeKnobs, Knobs, KvBits } from "./domain/Knobs.js"
export { type CellScore, isNewBest } from "./domain/NewBest.js"
export { canonicalJson, recipeHash, type RecipeHashInput } from "./domain/RecipeHash.js"
export { RunRow } from "./domain/Run.js"
export type { ProcessExit, RunningServer } from "./domain/RunningServer.js"
export { type ProbeSample, type TrialOutcome, TrialRow } from "./domain/Trial.js"
export {
  encodeTuneDocument,
  InfeasibleJson,
  Inputs,
  KnobsJson,
  Machine,
  RecommendationJson,
  StoredRecommendation,
  SPEC_VERSION,
  TuneDocument
} from "./domain/TuneDocument.js"
export { notesOf, type ProbeFailure, Verdict, type VerdictTag } from "./domain/Verdict.js"
