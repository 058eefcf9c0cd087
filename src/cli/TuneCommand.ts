/**
 * `autotune tune`: the flags, `planFromFlags` (every string-to-plan check:
 * usage errors exit 64 before anything is touched, SPEC B-1) and the
 * `--dry-run` rendering (SPEC H-5). The run itself is `Pipeline.tune`.
 */
import { CliConfig, Command, Options } from "@effect/cli"
import { Config, Console, Effect, Option } from "effect"
import * as path from "node:path"
import {
  cells,
  parseBatchAxis,
  parseFlashAttnAxis,
  parseKvBitsAxis,
  parseMaxBatchAxis,
  parseMaxContextAxis,
  parseThreadsAxis,
  parseUbatchAxis
} from "../domain/Axes.js"
import { UsageError } from "../domain/AutotuneError.js"
import { describeKnobs, kvBitsText } from "../domain/Knobs.js"
import { DEMO_DEFAULTS, demoThreadsAxis, LADDER, ladderOf, rungPath } from "../gguf/DemoLadder.js"
import { tune } from "../Pipeline.js"
import { embedded } from "../providers/Embedded.js"
import { llamaServer, NO_OPTIONAL_FLAGS } from "../providers/LlamaServer.js"
import { macProvider } from "../providers/MacProvider.js"
import { adapterExecutable, type ProviderName } from "../providers/ProviderAdapter.js"
import { parseCandidateList, resolveCandidates } from "../steps/Candidates.js"
import { preflightOptionsFor } from "../steps/Preflight.js"
import { findExecutable, findLlamaServer } from "../system/Executables.js"
import { physicalCores } from "../system/MachineInfo.js"
import { cacheDir, dataDir, defaultDbPath } from "../system/UserDirs.js"
import { checkInputs, type TunePlan, validatePlan } from "../TunePlan.js"
import { withExistingStore } from "../services/TrialStore.js"
import { floatOption, integerOption } from "./CliOptions.js"
import { checkResumeFlags, checkStartedHere, decodeFlags, encodeFlags, isOwnFlag, runToResume, withOwnFlags } from "./Resume.js"
import { MAX_KEEP_RUNS, MAX_REPLICATES, MAX_SLOTS_OR_THREADS, MAX_TARGET_CONTEXT, MAX_TIMER_MS } from "../domain/Limits.js"
import { DEFAULT_REPLY_TOKENS } from "../domain/Prompt.js"
import { isDefaultObjective, type Objective, STREAM_STAGGER_MS } from "../domain/Objective.js"
import { DEFAULT_MEMORY_HEADROOM } from "../steps/RunTrial.js"
import { MAX_CAPACITY_USERS } from "../steps/Capacity.js"
import { DEFAULT_STREAM_INTERVAL_MS, streamIntervalForItl } from "../domain/StreamInterval.js"

/** SPEC N-2: the default cap on replicates (9: the first count at which the median's interval leaves out a replicate on each side). */
const DEFAULT_MAX_REPLICATES = 9

/**
 * `--max-background-cores` (SPEC N-3): `off` (null: the guard off) or a number
 * of cores; anything else is a UsageError naming the flag (its range is
 * checked with the plan).
 */
const parseBackgroundCores = (text: string): Effect.Effect<number | null, UsageError> => {
  const t = text.trim()
  if (t.toLowerCase() === "off") return Effect.succeed(null)
  const n = Number(t)
  return t !== "" && Number.isFinite(n)
    ? Effect.succeed(n)
    : Effect.fail(new UsageError({ flag: "max-background-cores", message: `--max-background-cores must be a number of cores or off, got "${text}"` }))
}

/** The longest wait a timer holds, in whole seconds (the unit of --ready-timeout, --request-timeout, --max-duration). */
const MAX_TIMER_S = Math.floor(MAX_TIMER_MS / 1000)

const opt = {
  provider: Options.choice("provider", ["embedded", "macprovider", "llama-server"]).pipe(Options.optional,
    Options.withDescription("provider to tune (default: macprovider when macprovider-cli is on PATH, else embedded)")),
  providerBin: Options.text("provider-bin").pipe(Options.optional,
    Options.withDescription("provider executable (default: macprovider-cli on PATH; llama-server: $LLAMA_SERVER, $LLAMA_CPP_BIN_DIR/llama-server, then PATH; embedded: this tool's own `serve`)")),
  candidateModels: Options.text("candidate-models").pipe(Options.optional,
    Options.withDescription("comma-separated model ids or GGUF paths, tried in this order (default: the built-in ladder)")),
  targetContext: integerOption("target-context", { min: 1, max: MAX_TARGET_CONTEXT }).pipe(Options.optional,
    Options.withDescription("prompt context of each probe, in tokens (default 2048; demo ladder 512)")),
  gateTtftMs: integerOption("gate-ttft-ms", { min: 1, max: MAX_TIMER_MS }).pipe(Options.optional,
    Options.withDescription("time-to-first-token gate, in ms (default 60000; demo ladder 2500)")),
  stage1Replicates: integerOption("stage1-replicates", { min: 1, max: MAX_REPLICATES }).pipe(Options.withDefault(3),
    Options.withDescription("requests per Stage 1 candidate (default 3)")),
  stage2Replicates: integerOption("stage2-replicates", { min: 1, max: MAX_REPLICATES }).pipe(Options.withDefault(3),
    Options.withDescription("requests per Stage 2 cell (default 3)")),
  maxReplicates: integerOption("max-replicates", { min: 1, max: MAX_REPLICATES }).pipe(Options.optional,
    Options.withDescription("cap on the replicates a close decision gets: a Stage 1 TTFT within 15 % of the gate, a Stage 2 cell within the noise of the best (default 9, or the stage replicates when more; SPEC N-2)")),
  maxBackgroundCores: Options.text("max-background-cores").pipe(
    Options.withFallbackConfig(Config.string("AUTOTUNE_MAX_BACKGROUND_CORES")),
    Options.withDefault("0.25"),
    Options.withDescription("a trial during which other processes used more CPU cores than this on average is disturbed and re-run when the machine is quiet; `off` turns the guard off (default 0.25, or $AUTOTUNE_MAX_BACKGROUND_CORES; SPEC N-3)")),
  waitQuietS: integerOption("wait-quiet", { min: 1, max: MAX_TIMER_S }).pipe(Options.optional,
    Options.withDescription("before the first trial, wait up to this many seconds for other processes to use at most --max-background-cores (SPEC N-3)")),
  kvBitsAxis: Options.text("kv-bits-axis").pipe(Options.optional,
    Options.withDescription("Stage 2 KV-cache bits, from 4, 8, unset (default unset; demo ladder unset,8)")),
  maxContextAxis: Options.text("max-context-axis").pipe(Options.withDefault(""),
    Options.withDescription("Stage 2 context caps in tokens, each >= --target-context (default: the target context)")),
  maxBatchAxis: Options.text("max-batch-axis").pipe(Options.optional,
    Options.withDescription("Stage 2 parallel requests (default 1)")),
  threadsAxis: Options.text("threads-axis").pipe(Options.optional,
    Options.withDescription("Stage 2 CPU threads, embedded and llama-server only (default: the physical core count; demo ladder the core count,1)")),
  flashAttnAxis: Options.text("flash-attn-axis").pipe(Options.optional,
    Options.withDescription("Stage 2 flash attention, embedded and llama-server only: on, off or on,off (default: not searched, the engine's auto; demo ladder on,off; a quantized KV cache always runs with it on)")),
  ubatchAxis: Options.text("ubatch-axis").pipe(Options.optional,
    Options.withDescription("Stage 2 physical batch sizes in tokens (--ubatch-size), llama-server only (default: not searched, the build's 512)")),
  batchAxis: Options.text("batch-axis").pipe(Options.optional,
    Options.withDescription("Stage 2 logical batch sizes in tokens (--batch-size), llama-server only (default: not searched, the build's 2048)")),
  tpsTieEpsilon: floatOption("tps-tie-epsilon").pipe(Options.withDefault(0.1),
    Options.withDescription("tie band for tok/s as a fraction of the best (default 0.10, SPEC B-3)")),
  maxTokens: integerOption("max-tokens", { min: 2, max: MAX_TARGET_CONTEXT }).pipe(Options.withDefault(64),
    Options.withDescription("reply length of each probe, in tokens (default 64): what a probe generates, not what the server is sized for (--reply-tokens)")),
  replyTokens: integerOption("reply-tokens", { min: 1, max: MAX_TARGET_CONTEXT }).pipe(Options.optional,
    Options.withDescription("reply budget, in tokens (default 1024, or --max-tokens when larger): every candidate is started, and the recipe's context sized, for a target-length prompt plus this many reply tokens (per slot), so production replies are not cut (SPEC F-5)")),
  readyTimeoutS: integerOption("ready-timeout", { min: 1, max: MAX_TIMER_S }).pipe(Options.withDefault(300),
    Options.withDescription("seconds a started provider may take to answer GET /v1/models (default 300); over it, that candidate is infeasible")),
  requestTimeoutS: integerOption("request-timeout", { min: 1, max: MAX_TIMER_S }).pipe(Options.optional,
    Options.withDescription("seconds one probe request may take in all (default: the TTFT gate + 120 s); over it, that trial is infeasible")),
  serviceManager: Options.choice("service-manager", ["auto", "launchd", "systemd", "none"]).pipe(
    Options.withDefault("auto" as const),
    Options.withDescription("where pre-flight looks for the operator's provider job: launchd, systemd (user units), none, or auto (launchd on macOS, systemd when `systemctl --user` answers)")),
  serviceLabel: Options.text("service-label").pipe(Options.withDefault("live.streamvc.macprovider"),
    Options.withDescription("the provider's launchd label or systemd user unit (default live.streamvc.macprovider)")),
  drain: Options.boolean("drain").pipe(
    Options.withDescription("stop a running provider (service job or foreground process) for the tune and restore it afterwards (SPEC E-2)")),
  restartForeground: Options.boolean("restart-foreground").pipe(
    Options.withDescription("with --drain: restart a drained foreground provider afterwards with its original command, directory and environment")),
  maxDurationS: integerOption("max-duration", { min: 1, max: MAX_TIMER_S }).pipe(Options.optional,
    Options.withDescription("time budget for the whole tune, in seconds; when it runs out the best recommendation so far is printed as partial (SPEC H-3)")),
  memoryLimitGiB: floatOption("memory-limit").pipe(Options.optional,
    Options.withDescription("memory a candidate may use, in GiB (default: what the machine has available when the trial starts); GGUF candidates estimated above it are skipped without launching, and a trial whose measured peak goes above --memory-headroom of it is infeasible")),
  memoryHeadroom: floatOption("memory-headroom").pipe(Options.withDefault(DEFAULT_MEMORY_HEADROOM),
    Options.withDescription("a trial whose provider (its whole process group) peaks above this fraction of the memory limit while it is probed is infeasible, with the peak in the reason (default 0.9; SPEC C-3)")),
  concurrency: integerOption("concurrency", { min: 1, max: MAX_SLOTS_OR_THREADS }).pipe(Options.withDefault(1),
    Options.withDescription("users served at once: every replicate sends this many streams (started 50 ms apart), every candidate and cell gets at least this many slots, and Stage 2 maximises goodput, the decode tok/s of the streams that met the objective (default 1; SPEC C-1, C-2)")),
  sloTtftP95Ms: integerOption("slo-ttft-p95-ms", { min: 1, max: MAX_TIMER_MS }).pipe(Options.optional,
    Options.withDescription("objective: TTFT p95 over a replicate's streams, in ms, at most the gate (default: the TTFT gate; SPEC C-1)")),
  sloItlP95Ms: floatOption("slo-itl-p95-ms").pipe(Options.optional,
    Options.withDescription(`objective: every stream's inter-token latency p95, in ms (default none; SPEC C-1). The embedded provider writes tokens at most every ${DEFAULT_STREAM_INTERVAL_MS} ms by default, so its ITL is at least about that whenever it decodes faster: under an objective below ${2 * DEFAULT_STREAM_INTERVAL_MS} ms tune starts it (and writes its serve command and config) with half the objective as --stream-interval-ms`)),
  sloDecodeTps: floatOption("slo-decode-tps").pipe(Options.optional,
    Options.withDescription("objective: every stream's decode rate, in tok/s (default none; SPEC C-1)")),
  findMaxConcurrency: Options.boolean("find-max-concurrency").pipe(
    Options.withDescription("after Stage 2, find how many concurrent users the recommended configuration serves within the objective (--slo-*, else the gate): double the users until a replicate misses, then bisect (SPEC C-4)")),
  noEstimate: Options.boolean("no-estimate").pipe(
    Options.withDescription("launch every candidate, even one whose memory estimate exceeds the memory available")),
  keepRuns: integerOption("keep-runs", { min: 0, max: MAX_KEEP_RUNS }).pipe(Options.withDefault(100),
    Options.withDescription("after each run, keep only the newest N runs in the database, with their trials, provider logs and config backups (default 100; 0 keeps all; SPEC S-4)")),
  dbPath: Options.text("db-path").pipe(Options.optional,
    Options.withDescription("SQLite file for runs and trials (default <user data dir>/llm-autotune/autotune.db)")),
  json: Options.boolean("json").pipe(Options.withDescription("print the result as one JSON document (SPEC F-2)")),
  apply: Options.boolean("apply").pipe(Options.withDescription(
    "write the recommendation into the provider's config.yaml after a finished tune (only model, kv_bits_override, max_context_override, max_concurrency_override, and for the embedded provider threads_override, flash_attn_override and stream_interval_ms_override, change; a backup is made first; SPEC F-3, F-4)")),
  configPath: Options.text("config-path").pipe(Options.optional,
    Options.withDescription("with --apply: the provider config to edit (default: macprovider's ~/.config/macprovider/config.yaml; the embedded provider's ~/.config/llm-autotune/config.yaml, read by `autotune serve --config`, created when missing)")),
  verify: Options.boolean("verify").pipe(Options.withDescription(
    "with --apply: start the provider from the written config as the restart line says, probe it with the recipe's replicates, and put the original config back (exit 6) when it misses the gate or regressed (SPEC F-6)")),
  dryRun: Options.boolean("dry-run").pipe(Options.withDescription("print the plan and touch nothing (SPEC H-5)")),
  resume: Options.text("resume").pipe(Options.optional,
    Options.withDescription("continue an interrupted or budget-cut run (default: the newest run that did not end ok and was not resumed yet) with the flags it was started with: its measured trials whose key still matches are reused, no provider started for them; only --json, --max-duration, --keep-runs, --db-path, --dry-run, --drain, --restart-foreground, --service-manager, --service-label, --wait-quiet, --apply, --config-path, --verify and (when the executable moved) --provider-bin may be given with it (SPEC R-2)"))
}

const allOptions = Options.all(opt)
/** The parsed flags of `autotune tune`. */
export type TuneFlags = typeof allOptions extends Options.Options<infer A> ? A : never

/** The llama-server binary (see findLlamaServer); UsageError naming every place looked when there is none. */
const llamaServerBinary = (providerBin: string | null): Effect.Effect<string, UsageError> => {
  const r = findLlamaServer(providerBin)
  return r.found !== null
    ? Effect.succeed(r.found)
    : Effect.fail(new UsageError({
      flag: "provider-bin",
      message: `--provider llama-server: no llama-server executable found; looked at ${r.looked.join(", ")}. ` +
        `Pass --provider-bin <path> or set $LLAMA_SERVER.`
    }))
}

/**
 * The plan of `autotune tune` from its flags: every string parsed (candidate
 * list, axes, numbers with their units), defaults filled in (the demo ladder's
 * when no `--candidate-models` is given, SPEC's otherwise), then checked by
 * `validatePlan`. Starts no process (SPEC H-5): the llama-server binary is
 * only located here; the pipeline asks it for its flags. Fails with
 * UsageError (exit 64) naming the flag. `resumed`: the flags of a run being resumed (R-2), whose
 * candidates may be an earlier demo ladder's files.
 */
export const planFromFlags = (f: TuneFlags, resumed = false): Effect.Effect<TunePlan, UsageError> =>
  Effect.gen(function*() {
    const providerName: ProviderName = Option.getOrElse(f.provider, () => findExecutable("macprovider-cli") !== null ? "macprovider" : "embedded")
    const providerBin = Option.getOrNull(f.providerBin)
    const adapter = providerName === "embedded"
      // Under an ITL objective tighter than its writes' default interval it writes more often (C-1, E-5).
      ? embedded(providerBin, streamIntervalForItl(Option.getOrNull(f.sloItlP95Ms)))
      : providerName === "llama-server"
      // Its optional flags are asked of the binary when the run starts (`adapter.probe`), never here (H-5).
      ? llamaServer(yield* llamaServerBinary(providerBin), NO_OPTIONAL_FLAGS)
      : macProvider(providerBin ?? "macprovider-cli")
    const demo = Option.isNone(f.candidateModels)
    if (demo && providerName === "macprovider") {
      return yield* new UsageError({ flag: "candidate-models", message: "--candidate-models is required with --provider macprovider (the built-in ladder is GGUF files)" })
    }
    const ladderDir = path.join(cacheDir(), "models")
    const candidateIds = Option.isSome(f.candidateModels)
      ? yield* parseCandidateList(f.candidateModels.value)
      : LADDER.map((r) => rungPath(ladderDir, r))
    const targetContext = Option.getOrElse(f.targetContext, () => demo ? DEMO_DEFAULTS.targetContext : 2048)
    const gateTtftMs = Option.getOrElse(f.gateTtftMs, () => demo ? DEMO_DEFAULTS.gateTtftMs : 60_000)
    const requestTimeoutS = Option.getOrElse(f.requestTimeoutS, () => Math.ceil(gateTtftMs / 1000) + 120)
    const dbPath = Option.getOrElse(f.dbPath, defaultDbPath)
    // With no home directory ($HOME empty) the default paths would be relative to wherever the tool runs.
    if (!path.isAbsolute(dataDir())) {
      return yield* new UsageError({
        flag: "db-path",
        message: `no home directory to keep runs in ($HOME is empty and $XDG_DATA_HOME unset): pass --db-path <file> and set $XDG_DATA_HOME`
      })
    }
    const inputs: Omit<TunePlan, "axes"> = {
      adapter,
      candidateIds,
      // A resumed demo run names the ladder's files (pinned): they are still written when missing.
      demoLadderDir: demo || ladderOf(candidateIds, ladderDir, resumed) !== null ? ladderDir : null,
      targetContext,
      gateTtftMs,
      maxTokens: f.maxTokens,
      replyTokens: Option.getOrElse(f.replyTokens, () => Math.max(DEFAULT_REPLY_TOKENS, f.maxTokens)),
      requestTimeoutMs: requestTimeoutS * 1000,
      readyTimeoutMs: f.readyTimeoutS * 1000,
      logDir: path.join(path.dirname(path.resolve(dbPath)), "logs"),
      stage1Replicates: f.stage1Replicates,
      stage2Replicates: f.stage2Replicates,
      maxReplicates: Option.getOrElse(f.maxReplicates, () => Math.max(DEFAULT_MAX_REPLICATES, f.stage1Replicates, f.stage2Replicates)),
      maxBackgroundCores: yield* parseBackgroundCores(f.maxBackgroundCores),
      waitQuietMs: Option.match(f.waitQuietS, { onNone: () => null, onSome: (sec) => sec * 1000 }),
      tpsTieEpsilon: f.tpsTieEpsilon,
      json: f.json,
      estimate: !f.noEstimate,
      memoryLimitGiB: Option.getOrNull(f.memoryLimitGiB),
      memoryHeadroom: f.memoryHeadroom,
      objective: objectiveOf(f, gateTtftMs),
      findMaxConcurrency: f.findMaxConcurrency,
      budgetMs: Option.match(f.maxDurationS, { onNone: () => null, onSome: (sec) => sec * 1000 }),
      dbPath,
      dataDir: dataDir(),
      lifecycle: {
        preflight: preflightOptionsFor(adapter, providerBin, f.serviceManager, f.serviceLabel),
        drain: f.drain,
        restartForeground: f.restartForeground
      },
      apply: f.apply ? { configPath: Option.getOrNull(f.configPath), verify: f.verify } : null,
      keepRuns: f.keepRuns
    }
    // The scalar checks first, then the axes: the order in which usage errors have always been named.
    yield* checkInputs(inputs)
    if (Option.isSome(f.configPath) && !f.apply) {
      return yield* new UsageError({ flag: "config-path", message: "--config-path is only used with --apply" })
    }
    if (f.verify && !f.apply) {
      return yield* new UsageError({ flag: "verify", message: "--verify checks what --apply wrote: give it with --apply (or run autotune verify <run-id>)" })
    }
    if (Option.isSome(f.threadsAxis) && !adapter.hasThreads) {
      return yield* new UsageError({ flag: "threads-axis", message: `--threads-axis: the ${adapter.name} provider has no thread-count setting` })
    }
    // The throughput axes' providers (issue 17 part 3, issue 14) are checked by validatePlan (checkAxes).
    const flashAttnAxis = Option.orElse(f.flashAttnAxis, () =>
      demo && adapter.hasFlashAttn ? Option.some(DEMO_DEFAULTS.flashAttnAxis) : Option.none())
    const threadsAxis = adapter.hasThreads
      ? Option.getOrElse(f.threadsAxis, () => demo ? demoThreadsAxis(physicalCores()) : `${physicalCores()}`)
      : null
    return yield* validatePlan({
      ...inputs,
      axes: {
        kvBits: yield* parseKvBitsAxis(Option.getOrElse(f.kvBitsAxis, () => demo ? DEMO_DEFAULTS.kvBitsAxis : "unset")),
        maxContext: yield* parseMaxContextAxis(f.maxContextAxis, targetContext),
        // SPEC C-1: N users need N slots; the default axis gives exactly that.
        maxBatch: yield* parseMaxBatchAxis(Option.getOrElse(f.maxBatchAxis, () => `${f.concurrency}`)),
        threads: threadsAxis === null ? [] : yield* parseThreadsAxis(threadsAxis),
        flashAttn: Option.isNone(flashAttnAxis) ? [] : yield* parseFlashAttnAxis(flashAttnAxis.value),
        ubatch: Option.isNone(f.ubatchAxis) ? [] : yield* parseUbatchAxis(f.ubatchAxis.value),
        batch: Option.isNone(f.batchAxis) ? [] : yield* parseBatchAxis(f.batchAxis.value)
      }
    })
  })

/**
 * SPEC C-1: the objective the flags ask for — null (one user, judged by the
 * gate alone) unless `--concurrency` is above 1 or an `--slo-*` flag asks
 * more than that (`isDefaultObjective`); the TTFT bound defaults to the gate.
 */
const objectiveOf = (f: TuneFlags, gateTtftMs: number): Objective | null => {
  const o: Objective = {
    streams: f.concurrency,
    ttftP95Ms: Option.getOrElse(f.sloTtftP95Ms, () => gateTtftMs),
    itlP95Ms: Option.getOrNull(f.sloItlP95Ms),
    decodeTps: Option.getOrNull(f.sloDecodeTps)
  }
  return isDefaultObjective(o, gateTtftMs) ? null : o
}

/** An executable made absolute where it is a path (`bin/x`), left to PATH where it is a bare name. */
const absoluteIfPath = (exe: string): string => (exe.includes("/") ? path.resolve(exe) : exe)

/** A provider executable as the plan shows it: absolute where it is a path, the tool itself for the embedded default. */
const executableText = (exe: string | null): string => (exe === null ? "this tool's own serve" : absoluteIfPath(exe))

/** The `--dry-run` plan (SPEC H-5): candidates in order, axes and cells, gate, where results would go. */
export const renderPlan = (p: TunePlan): string => {
  const grid = cells(p.axes)
  return [
    `provider:        ${p.adapter.name} (${executableText(adapterExecutable(p.adapter))})`,
    `candidates:      (tried in this order; stop at the first feasible)`,
    ...p.candidateIds.map((id, i) => `  #${i + 1} ${id}`),
    `target context:  ${p.targetContext} tokens; servers sized for replies of ${p.replyTokens} tokens (--reply-tokens), probes generate ${p.maxTokens}`,
    `TTFT gate:       ${p.gateTtftMs} ms`,
    `replicates:      stage 1 ${p.stage1Replicates}, stage 2 ${p.stage2Replicates}, up to ${p.maxReplicates} where a decision is close`,
    `quiet machine:   ${
      p.maxBackgroundCores === null ? "not checked (--max-background-cores off)" : `trials with other processes above ${p.maxBackgroundCores} cores are re-run`
    }${p.waitQuietMs === null ? "" : `; wait up to ${p.waitQuietMs / 1000} s for quiet first`}`,
    `stage 2 axes:    kv-bits ${p.axes.kvBits.map(kvBitsText).join(",")} × max-context ${p.axes.maxContext.join(",")} × max-batch ${p.axes.maxBatch.join(",")}${
      p.axes.threads.length > 0 ? ` × threads ${p.axes.threads.join(",")}` : ""
    }${(p.axes.flashAttn ?? []).length > 0 ? ` × flash-attn ${p.axes.flashAttn!.map((b) => (b ? "on" : "off")).join(",")}` : ""}${
      (p.axes.ubatch ?? []).length > 0 ? ` × ubatch ${p.axes.ubatch!.join(",")}` : ""
    }${(p.axes.batch ?? []).length > 0 ? ` × batch ${p.axes.batch!.join(",")}` : ""} = ${grid.length} cell(s)`,
    ...grid.map((k, i) => `  cell ${i + 1}: ${describeKnobs(k)}`),
    ...(p.objective == null ? [] : [
      `objective:       ${p.objective.streams} concurrent user(s), streams ${STREAM_STAGGER_MS} ms apart; TTFT p95 <= ${p.objective.ttftP95Ms} ms${
        p.objective.itlP95Ms === null ? "" : `, ITL p95 <= ${p.objective.itlP95Ms} ms`
      }${p.objective.decodeTps === null ? "" : `, >= ${p.objective.decodeTps} tok/s per stream`}; Stage 2 maximises goodput`,
    ]),
    ...(p.adapter.streamIntervalMs == null ? [] : [
      `stream writes:   ${
        p.adapter.streamIntervalMs === 0 ? "each token as it comes" : `at most every ${p.adapter.streamIntervalMs} ms`
      } (the embedded provider's --stream-interval-ms, default ${DEFAULT_STREAM_INTERVAL_MS}: the ITL objective is tighter than twice it)`
    ]),
    ...(p.findMaxConcurrency === true
      ? [`capacity:        after Stage 2, double the users on the recommendation until the objective fails, then bisect (up to ${MAX_CAPACITY_USERS})`]
      : []),
    `tie band:        ${p.tpsTieEpsilon}`,
    `timeouts:        provider ready ${p.readyTimeoutMs / 1000} s, request ${p.requestTimeoutMs / 1000} s`,
    `budget:          ${p.budgetMs === null ? "none" : `${p.budgetMs / 1000} s`}`,
    `memory:          ${
      !p.estimate
        ? "no estimate (--no-estimate): every candidate is launched"
        : `GGUF candidates estimated above ${p.memoryLimitGiB === null ? "the memory available at each trial" : `${p.memoryLimitGiB} GiB`} are skipped`
    }; a trial peaking above ${Math.round((p.memoryHeadroom ?? DEFAULT_MEMORY_HEADROOM) * 100)} % of ${
      p.memoryLimitGiB === null ? "the memory available" : `${p.memoryLimitGiB} GiB`
    } is infeasible`,
    `apply:           ${
      p.apply === null
        ? "no (print only)"
        : `write ${p.apply.configPath} after a finished tune, with a backup${p.apply.verify ? ", then start the provider from it and verify (restored on a miss)" : ""}`
    }`,
    `database:        ${p.dbPath} (keeps ${p.keepRuns === 0 ? "every run" : `the newest ${p.keepRuns} runs`})`,
    ...(p.resume == null ? [] : [`resume:          run ${p.resume.parentRunId}: its trials whose key still matches are reused (SPEC R-2)`]),
    `dry run: nothing was started or written`
  ].join("\n")
}

/**
 * The flags as the run resolved them (SPEC R-2): every default this
 * invocation filled in from its machine and environment — the provider, the
 * candidate list (the demo ladder's files), target context, gate, timeouts,
 * replicate cap, the quiet guard's cores, every axis — written out, and
 * `--provider-bin` made absolute, so `--resume` from another shell continues
 * the same plan. An executable found on PATH or through `$LLAMA_SERVER` is
 * looked up again on resume; a different build there changes the trial keys.
 */
export const pinnedFlags = (f: TuneFlags, p: TunePlan): TuneFlags => ({
  ...f,
  provider: Option.some(p.adapter.name),
  // The executable as the operator named it, made absolute; one found on PATH or through
  // $LLAMA_SERVER is looked up again (a package upgrade moves it): its identity (R-1) tells a new build.
  providerBin: Option.map(f.providerBin, absoluteIfPath),
  candidateModels: Option.some(p.candidateIds.join(",")),
  targetContext: Option.some(p.targetContext),
  gateTtftMs: Option.some(p.gateTtftMs),
  requestTimeoutS: Option.some(p.requestTimeoutMs / 1000),
  maxReplicates: Option.some(p.maxReplicates),
  maxBackgroundCores: p.maxBackgroundCores === null ? "off" : `${p.maxBackgroundCores}`,
  kvBitsAxis: Option.some(p.axes.kvBits.map(kvBitsText).join(",")),
  maxContextAxis: p.axes.maxContext.join(","),
  maxBatchAxis: Option.some(p.axes.maxBatch.join(",")),
  threadsAxis: p.adapter.hasThreads ? Option.some(p.axes.threads.join(",")) : Option.none(),
  // The demo's default (issue 14) is not in `f`: pinned, or a resumed demo run (no longer "the demo") would drop it.
  flashAttnAxis: (p.axes.flashAttn ?? []).length > 0 ? Option.some(p.axes.flashAttn!.map((on) => (on ? "on" : "off")).join(",")) : Option.none(),
  resume: Option.none()
})

/**
 * The flags `tune <args>` parses to (defaults filled in by @effect/cli). Fails with @effect/cli's
 * ValidationError where the command line would (an unknown flag, a value of the wrong type).
 */
export const parseTuneFlags = (args: ReadonlyArray<string>) =>
  Options.processCommandLine(allOptions, [...args], CliConfig.defaultConfig).pipe(Effect.map(([, , flags]) => flags))

/**
 * SPEC R-2 `tune --resume <run-id | latest>`: the plan of the run to continue,
 * from the flags it was started with (kept in its row, as resolved then) and
 * this invocation's own (`withOwnFlags`: output, budget, retention, database,
 * dry run, pre-flight and drain, quiet wait, apply), marked to replay that
 * run's measurements. Fails with UsageError (exit 64), before the database
 * is opened when another flag is given with `--resume`; when there is no
 * database, no such run, no run left to resume, the run kept no flags, it must
 * be resumed from the directory it was started in, or its stored flags no
 * longer make a plan here (a provider binary gone: named as the run's).
 */
const resumePlan = (f: TuneFlags, runId: string) =>
  Effect.gen(function*() {
    const [, , defaults] = yield* Options.processCommandLine(allOptions, [], CliConfig.defaultConfig)
    yield* checkResumeFlags(f, defaults)
    const db = path.resolve(Option.getOrElse(f.dbPath, defaultDbPath))
    const parent = yield* withExistingStore(db, (store) => runToResume(store, runId, db))
    const stored = yield* decodeFlags(parent.flags_json!, defaults, parent.run_id)
    const flags: TuneFlags = { ...withOwnFlags(stored.flags, f), dbPath: Option.some(db), resume: Option.none() }
    if (Option.isSome(flags.candidateModels)) {
      yield* checkStartedHere(yield* parseCandidateList(flags.candidateModels.value), stored.cwd, parent.run_id)
    }
    const plan = yield* planFromFlags(flags, true).pipe(
      // A stored flag the operator never typed here is named as the run's.
      Effect.mapError((e) =>
        isOwnFlag(e.flag) || (e.flag === "provider-bin" && Option.isSome(f.providerBin))
          ? e
          : new UsageError({ flag: e.flag, message: `run ${parent.run_id}'s stored flags: ${e.message}` })
      )
    )
    return { ...plan, resume: { parentRunId: parent.run_id }, flagsJson: encodeFlags(pinnedFlags(flags, plan), process.cwd()) } satisfies TunePlan
  })

/** `autotune tune` (SPEC §2): the plan (a fresh one, or the resumed run's, R-2), then `--dry-run`'s rendering or the run. */
export const tuneCommand = Command.make("tune", opt, (f) =>
  Effect.gen(function*() {
    const plan: TunePlan = Option.isSome(f.resume)
      ? yield* resumePlan(f, f.resume.value)
      : yield* Effect.map(planFromFlags(f), (p) => ({ ...p, flagsJson: encodeFlags(pinnedFlags(f, p), process.cwd()) }))
    if (!f.dryRun) return yield* tune(plan)
    // Validate the operator's candidates as a real run would (read-only); ladder files may not exist yet.
    if (plan.demoLadderDir === null) yield* resolveCandidates(plan.candidateIds, plan.adapter.name)
    yield* Console.log(renderPlan(plan))
  })).pipe(
    Command.withDescription("Measure candidates and recommend the biggest model this machine serves well, with its knobs")
  )
