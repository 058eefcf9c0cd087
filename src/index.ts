/**
 * The library entry point of llm-autotune (`import { … } from "llm-autotune"`).
 *
 * Every pipeline step is an Effect with typed errors; compose them in your own
 * scripts and provide `ProviderLive` (steps that start providers and probe)
 * or `AutotuneLive(dbPath)` (the whole `tune`, with SQLite). The CLI uses
 * these same exports. The rule ids (A-1, D-2, F-3, …) refer to the SPEC.
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
export { type ApplyPlan, planInputs, tune, type TunePlan } from "./Pipeline.js"
export { AutotuneLive, PlatformLive, ProviderLive } from "./Live.js"

// ---- steps -----------------------------------------------------------------
export {
  conflicting,
  describeFindings,
  detectProviders,
  type Findings,
  preflight,
  type PreflightOptions,
  preflightOptionsFor
} from "./steps/Preflight.js"
export { holdSignals } from "./HoldSignals.js"
export { drain, DRAIN_GRACE } from "./steps/Drain.js"
export { parseCandidateList, resolveCandidates } from "./steps/Candidates.js"
export { modelParamCount, paramCountFromHfConfig } from "./steps/ModelSize.js"
export { binaryVersion, machineOf, physicalCores } from "./steps/MachineInfo.js"
export {
  availableMemoryBytes,
  EstimateUnavailable,
  estimatedReason,
  estimateMemory,
  type EstimateOptions,
  isEstimatedSkip,
  MemoryEstimate
} from "./steps/MemoryEstimate.js"
export { preWarm, type PreWarmResult, type PreWarmSpec } from "./steps/PreWarm.js"
export { classifyPreWarmFailure, type FailureKind, INTEGRITY_MARKERS, type IntegrityMarker } from "./steps/PreWarmFailure.js"
export { probeOnce, type ProbeRequest, type ProbeSample, STOP_TOKENS } from "./steps/Probe.js"
export { type Calibration, calibrate, promptOfWords, wordsForTokens } from "./steps/Prompt.js"
export { runTrial, type TrialOutcome, type TrialSettings } from "./steps/RunTrial.js"
export {
  abortOnIntegrity,
  allInfeasibleMessage,
  bySizeAscending,
  type Chosen,
  formatParams,
  type Rejected,
  stage1
} from "./steps/Stage1.js"
export { type CellScore, type ClimbCell, hillClimb, isNewBest } from "./steps/HillClimb.js"
export { buildDocument, knobsJson, type Recommended, renderBlock, type RunSummary } from "./steps/Recommend.js"
export {
  type ApplyRequest,
  type ApplyResult,
  applyRecommendation,
  checkApplyTarget,
  defaultConfigPath,
  editConfigText,
  OWNED_KEYS,
  type OwnedKey,
  type OwnedValues
} from "./steps/Apply.js"
export { restartInstructions } from "./steps/RestartHint.js"
export { DEMO_DEFAULTS, ensureLadder, LADDER, rungPath } from "./steps/DemoLadder.js"
export { bestSoFarSeries, renderReport, type ReportInput, winnerIndex } from "./report/ReportHtml.js"
export { report, type ReportFlags } from "./ReportCommand.js"
export { serve } from "./serve/Serve.js"

// ---- services --------------------------------------------------------------
export { CandidateProvider, type StartOptions } from "./services/CandidateProvider.js"
export { type RunEnd, type RunStart, TrialStore } from "./services/TrialStore.js"
export { jobState, type JobState, resolveServiceManager, type ServiceManagerKind } from "./services/ServiceManager.js"
export { acquireRunLock, runLockPaths } from "./services/RunLock.js"
export { findExecutable, findLlamaServer } from "./services/Executables.js"

// ---- providers -------------------------------------------------------------
export { embedded, embeddedContextSize } from "./providers/Embedded.js"
export { llamaServer, llamaServerContextSize, type LlamaServerFlags, llamaServerFlags } from "./providers/LlamaServer.js"
export { macProvider } from "./providers/MacProvider.js"
export { type LaunchSpec, type ProviderAdapter, type ProviderName, shellQuote } from "./providers/ProviderAdapter.js"

// ---- errors and exit reasons -----------------------------------------------
export {
  AllInfeasible,
  ApplyFailed,
  AutotuneError,
  BudgetExhausted,
  PreWarmIntegrityFailure,
  ProviderConflict,
  ProviderStartFailed,
  RunLocked,
  ServeFailed,
  StoreFailed,
  SynthFailed,
  UsageError
} from "./domain/AutotuneError.js"
export { exitCode, exitCodeOf, ExitReason, fromError, fromExit } from "./domain/ExitReason.js"

// ---- schemas and domain ----------------------------------------------------
export { type Axes, cells, parseKvBitsAxis, parseMaxBatchAxis, parseMaxContextAxis, parseThreadsAxis } from "./domain/Axes.js"
export type { Candidate } from "./domain/Candidate.js"
export { describeKnobs, Knobs, KvBits } from "./domain/Knobs.js"
export { canonicalJson, recipeHash, type RecipeHashInput } from "./domain/RecipeHash.js"
export { RunRow } from "./domain/Run.js"
export type { ProcessExit, RunningServer } from "./domain/RunningServer.js"
export { median, percentile } from "./domain/Stats.js"
export { TrialRow } from "./domain/Trial.js"
export {
  encodeTuneDocument,
  InfeasibleJson,
  Inputs,
  KnobsJson,
  Machine,
  RecommendationJson,
  SPEC_VERSION,
  TuneDocument
} from "./domain/TuneDocument.js"
export { cacheDir, dataDir, defaultDbPath } from "./domain/UserDirs.js"
export { readModelInfo, GgufInvalid, type ModelInfo } from "./gguf/ModelInfo.js"
export { writeSyntheticModel } from "./gguf/SyntheticModel.js"
