/**
 * The input of a tune (SPEC §2): every decision the operator's flags make,
 * as typed values, and `validatePlan`, the checks a plan must pass whoever
 * built it (the CLI's `planFromFlags`, or a library user).
 */
import { Effect } from "effect"
import type { Axes } from "./domain/Axes.js"
import { UsageError } from "./domain/AutotuneError.js"
import { MAX_KEEP_RUNS, MAX_REPLICATES, MAX_SLOTS_OR_THREADS, MAX_TARGET_CONTEXT, MAX_TIMER_MS } from "./domain/Limits.js"
import { DEFAULT_REPLY_TOKENS } from "./domain/Prompt.js"
import { Inputs } from "./domain/TuneDocument.js"
import { checkApplyTarget } from "./steps/Apply.js"
import { cells, LLAMA_SERVER_DEFAULT_BATCH } from "./domain/Axes.js"
import { isDefaultObjective } from "./domain/Objective.js"
import { MAX_CAPACITY_USERS } from "./steps/Capacity.js"
import { DEFAULT_MEMORY_HEADROOM, type TrialSettings } from "./steps/RunTrial.js"
import type { PreflightOptions } from "./steps/Preflight.js"

/** Pre-flight and drain (SPEC E-1, E-2): where to look for the operator's provider and what to do about it. */
export interface LifecyclePlan {
  readonly preflight: PreflightOptions
  /** `--drain`: stop a running provider for the tune and restore it afterwards (E-2). */
  readonly drain: boolean
  /** `--restart-foreground`: with a drain, restart a drained foreground provider afterwards. */
  readonly restartForeground: boolean
}

/** `--apply` (SPEC F-3, F-4, F-6): the config file to write after a finished tune, and whether to verify it. */
export interface ApplyPlan {
  /**
   * The provider's config.yaml (`--config-path`); null for the provider's
   * default (steps/Apply.ts `defaultConfigPath`: macprovider's
   * `~/.config/macprovider/config.yaml`, the embedded provider's
   * `~/.config/llm-autotune/config.yaml`). `validatePlan` checks it can be
   * edited and resolves it to an absolute path.
   */
  readonly configPath: string | null
  /**
   * `--verify` (F-6): start the provider from the written file as the restart
   * line says, probe it, and put the original back (exit 6) when it misses.
   */
  readonly verify: boolean
}

/**
 * Everything a tune needs, validated. Units: tokens, ms.
 * `adapter` is the provider as planned: the pipeline asks its binary what it
 * accepts (`adapter.probe`) before any candidate starts.
 */
export interface TunePlan extends TrialSettings {
  /** Model ids or GGUF paths, tried in this order (SPEC A-1). */
  readonly candidateIds: ReadonlyArray<string>
  /**
   * The built-in demo ladder's directory, when `candidateIds` are its rungs:
   * missing rung files are written there before the run resolves them.
   * Null for the operator's own candidates.
   */
  readonly demoLadderDir: string | null
  readonly stage1Replicates: number
  readonly stage2Replicates: number
  /**
   * `--max-replicates` (SPEC N-2, default 9): the cap on replicates a close
   * decision is given (a marginal Stage 1 call, a Stage 2 challenger within
   * the noise of the incumbent); the stage replicate counts stay the minimum.
   */
  readonly maxReplicates: number
  /** `--wait-quiet` in ms (SPEC N-3): wait up to this long for a quiet machine before the first trial; null not to wait. */
  readonly waitQuietMs: number | null
  readonly axes: Axes
  /** `--tps-tie-epsilon` (SPEC B-3), a fraction in [0, 1). */
  readonly tpsTieEpsilon: number
  /** `--json`: print the F-2 document instead of the terminal block. */
  readonly json: boolean
  /** `--max-duration` in ms (SPEC H-3), null for no budget. */
  readonly budgetMs: number | null
  /** The SQLite file of runs and trials (SPEC S-1, S-2), locked for the run. */
  readonly dbPath: string
  /** The per-user data directory: the provider's run lock lives in its `locks/` (one tune per provider). */
  readonly dataDir: string
  readonly lifecycle: LifecyclePlan
  /** `--apply`, or null to print only. */
  readonly apply: ApplyPlan | null
  /**
   * `--keep-runs` (SPEC S-4, L-3): after the run is recorded, only the newest
   * this many runs are kept, with their trials, provider logs and (with
   * `--apply`) config backups; 0 keeps everything.
   */
  readonly keepRuns: number
  /**
   * SPEC R-2 `tune --resume`: the run this one continues — its measurements
   * whose trial key still matches are replayed, the rest measured. Absent or
   * null: a fresh tune.
   */
  readonly resume?: { readonly parentRunId: string } | null
  /**
   * The `tune` flags this plan was made from, as JSON (cli/Resume.ts), kept
   * with the run so `--resume` can continue it; absent for a plan built by a
   * library caller (such a run is resumed by passing `resume` in a plan of one's own).
   */
  readonly flagsJson?: string | null
  /**
   * SPEC C-4 `--find-max-concurrency`: after Stage 2, search how many users
   * the recommended configuration serves within the objective (`objective`,
   * else one user's judged by the gate). Absent or false: no search.
   */
  readonly findMaxConcurrency?: boolean
}

/** F-2 `inputs` of a plan: what the recipe hash covers of the run's inputs (F-2h). */
export const planInputs = (p: TunePlan): Inputs =>
  new Inputs({
    target_context: p.targetContext,
    candidate_models: [...p.candidateIds],
    stage1_replicates: p.stage1Replicates,
    stage2_replicates: p.stage2Replicates,
    gate_ttft_ms: p.gateTtftMs,
    tps_tie_epsilon: p.tpsTieEpsilon,
    // F-5: only when not the default (1024, or the probe length when larger), so a recipe at the default hashes as it always has (F-2h).
    ...(p.replyTokens === Math.max(DEFAULT_REPLY_TOKENS, p.maxTokens) ? {} : { reply_tokens: p.replyTokens }),
    // C-1, C-3, C-4: the same, so a single-user recipe hashes as it always has.
    ...objectiveInputs(p),
    ...(p.findMaxConcurrency === true ? { find_max_concurrency: true } : {})
  })

/** F-2 `inputs`' SPEC C-1/C-3 keys of a plan: each only when not at its default. */
const objectiveInputs = (p: TrialSettings) => {
  const o = p.objective ?? null
  return {
    // Under an objective a replicate is N users whatever the slots (C-1): N is named even at 1.
    ...(o === null ? {} : { concurrency: o.streams }),
    ...(o === null || o.ttftP95Ms === p.gateTtftMs ? {} : { slo_ttft_p95_ms: o.ttftP95Ms }),
    ...(o?.itlP95Ms == null ? {} : { slo_itl_p95_ms: o.itlP95Ms }),
    ...(o?.decodeTps == null ? {} : { slo_decode_tps: o.decodeTps }),
    ...(p.memoryHeadroom === undefined || p.memoryHeadroom === DEFAULT_MEMORY_HEADROOM ? {} : { memory_headroom: p.memoryHeadroom })
  }
}



const usage = (flag: string, message: string) => Effect.fail(new UsageError({ flag, message }))


/**
 * The checks of `validatePlan` that need no Stage 2 axes, in the order the CLI
 * has always made them (so the flag a usage error names stays the same when
 * several are wrong): candidates, counts, timeouts, tie band, memory limit,
 * `--apply`'s provider. See `validatePlan`.
 */
export const checkInputs = (plan: Omit<TunePlan, "axes">): Effect.Effect<void, UsageError> =>
  Effect.gen(function*() {
    const ids = plan.candidateIds
    if (ids.length === 0) return yield* usage("candidate-models", "--candidate-models names no candidate")
    const dup = ids.find((id, i) => ids.indexOf(id) !== i)
    if (dup !== undefined) return yield* usage("candidate-models", `--candidate-models names "${dup}" twice`)
    const counts: ReadonlyArray<readonly [string, number, number]> = [
      ["stage1-replicates", plan.stage1Replicates, MAX_REPLICATES],
      ["stage2-replicates", plan.stage2Replicates, MAX_REPLICATES],
      ["target-context", plan.targetContext, MAX_TARGET_CONTEXT],
      ["gate-ttft-ms", plan.gateTtftMs, MAX_TIMER_MS],
      ["max-tokens", plan.maxTokens, MAX_TARGET_CONTEXT],
      ["reply-tokens", plan.replyTokens, MAX_TARGET_CONTEXT]
    ]
    for (const [flag, n, max] of counts) {
      if (!(Number.isSafeInteger(n) && n >= 1)) return yield* usage(flag, `--${flag} must be an integer >= 1, got ${n}`)
      if (n > max) return yield* usage(flag, `--${flag} must be an integer <= ${max}, got ${n}`)
    }
    if (plan.replyTokens < plan.maxTokens) {
      return yield* usage(
        "reply-tokens",
        `--reply-tokens (${plan.replyTokens}) must leave room for the probe's --max-tokens (${plan.maxTokens}): the server is sized for the reply budget`
      )
    }
    const least = Math.max(plan.stage1Replicates, plan.stage2Replicates)
    if (!(Number.isSafeInteger(plan.maxReplicates) && plan.maxReplicates >= least && plan.maxReplicates <= MAX_REPLICATES)) {
      return yield* usage(
        "max-replicates",
        `--max-replicates must be an integer from the stage replicates (${least}) to ${MAX_REPLICATES}, got ${plan.maxReplicates}`
      )
    }
    if (plan.waitQuietMs !== null && plan.maxBackgroundCores === null) {
      return yield* usage("wait-quiet", "--wait-quiet waits for other processes to use at most --max-background-cores, which is off")
    }
    if (plan.maxBackgroundCores !== null && !(plan.maxBackgroundCores > 0 && plan.maxBackgroundCores <= MAX_SLOTS_OR_THREADS)) {
      return yield* usage(
        "max-background-cores",
        `--max-background-cores must be a number of cores above 0 and at most ${MAX_SLOTS_OR_THREADS}, got ${plan.maxBackgroundCores}`
      )
    }
    const waits: ReadonlyArray<readonly [string, number | null]> = [
      ["ready-timeout", plan.readyTimeoutMs],
      ["request-timeout", plan.requestTimeoutMs],
      ["max-duration", plan.budgetMs],
      ["wait-quiet", plan.waitQuietMs]
    ]
    for (const [flag, ms] of waits) {
      if (ms !== null && !(Number.isSafeInteger(ms) && ms >= 1 && ms <= MAX_TIMER_MS)) {
        return yield* usage(flag, `--${flag} must be between 1 ms and ${MAX_TIMER_MS} ms (about 24.8 days), got ${ms} ms`)
      }
    }
    // A pre-warm request waits for both (D-1): their sum must fit a timer too.
    if (plan.readyTimeoutMs + plan.requestTimeoutMs > MAX_TIMER_MS) {
      return yield* usage(
        "ready-timeout",
        `--ready-timeout and --request-timeout together must be at most ${MAX_TIMER_MS} ms (a pre-warm request waits for both), got ${
          plan.readyTimeoutMs + plan.requestTimeoutMs
        } ms`
      )
    }
    if (plan.requestTimeoutMs <= plan.gateTtftMs) {
      return yield* usage(
        "request-timeout",
        `--request-timeout ${plan.requestTimeoutMs / 1000} s must be longer than --gate-ttft-ms ${plan.gateTtftMs} ms, or the gate never decides (SPEC G-1)`
      )
    }
    if (!(plan.tpsTieEpsilon >= 0 && plan.tpsTieEpsilon < 1)) {
      return yield* usage("tps-tie-epsilon", `--tps-tie-epsilon must be in [0, 1), got ${plan.tpsTieEpsilon}`)
    }
    if (plan.memoryLimitGiB !== null && !(plan.memoryLimitGiB > 0)) {
      return yield* usage("memory-limit", `--memory-limit must be a positive number of GiB, got ${plan.memoryLimitGiB}`)
    }
    if (plan.memoryHeadroom !== undefined && !(plan.memoryHeadroom > 0 && plan.memoryHeadroom <= 1)) {
      return yield* usage("memory-headroom", `--memory-headroom must be a fraction above 0 and at most 1, got ${plan.memoryHeadroom}`)
    }
    const o = plan.objective ?? null
    if (o !== null) {
      if (!(Number.isSafeInteger(o.streams) && o.streams >= 1 && o.streams <= MAX_SLOTS_OR_THREADS)) {
        return yield* usage("concurrency", `--concurrency must be an integer from 1 to ${MAX_SLOTS_OR_THREADS}, got ${o.streams}`)
      }
      if (!(o.ttftP95Ms >= 1 && o.ttftP95Ms <= plan.gateTtftMs)) {
        return yield* usage(
          "slo-ttft-p95-ms",
          `--slo-ttft-p95-ms must be from 1 ms to the TTFT gate (--gate-ttft-ms ${plan.gateTtftMs} ms, its default), got ${o.ttftP95Ms}`
        )
      }
      if (o.itlP95Ms !== null && !(o.itlP95Ms > 0 && o.itlP95Ms <= MAX_TIMER_MS)) {
        return yield* usage("slo-itl-p95-ms", `--slo-itl-p95-ms must be a positive number of ms, got ${o.itlP95Ms}`)
      }
      if (o.decodeTps !== null && !(o.decodeTps > 0 && Number.isFinite(o.decodeTps))) {
        return yield* usage("slo-decode-tps", `--slo-decode-tps must be a positive number of tokens/s, got ${o.decodeTps}`)
      }
    }
    if (plan.findMaxConcurrency === true && (o?.streams ?? 1) > MAX_CAPACITY_USERS) {
      return yield* usage(
        "concurrency",
        `--find-max-concurrency searches up to ${MAX_CAPACITY_USERS} users; --concurrency ${o!.streams} starts beyond it`
      )
    }
    if (!(Number.isSafeInteger(plan.keepRuns) && plan.keepRuns >= 0 && plan.keepRuns <= MAX_KEEP_RUNS)) {
      return yield* usage("keep-runs", `--keep-runs must be an integer from 0 (keep all) to ${MAX_KEEP_RUNS}, got ${plan.keepRuns}`)
    }
    if (plan.apply !== null && plan.adapter.config === null) {
      return yield* usage(
        "apply",
        `--apply: this tool writes no config the ${plan.adapter.name} provider reads (SPEC F-4); start it with the printed serve command instead`
      )
    }
    if (plan.apply?.verify === true && plan.adapter.config?.launchFrom === null) {
      return yield* usage(
        "verify",
        `--verify: this tool cannot start the ${plan.adapter.name} provider from a config file (it reads its own at start); run autotune verify <run-id> after restarting it`
      )
    }
  })

/** B-1's strictness on parsed axes: non-empty, positive integers, no duplicates, caps sorted and ≥ the target. */
const checkAxes = (plan: TunePlan): Effect.Effect<void, UsageError> =>
  Effect.gen(function*() {
    if (plan.axes.threads.length > 0 && !plan.adapter.hasThreads) {
      return yield* usage("threads-axis", `--threads-axis: the ${plan.adapter.name} provider has no thread-count setting`)
    }
    // Issue 17 part 3: llama-server's throughput knobs, optional axes (absent or empty: not searched).
    const extra: ReadonlyArray<readonly [string, ReadonlyArray<unknown>, (c: unknown) => boolean]> = [
      ["flash-attn-axis", plan.axes.flashAttn ?? [], (c) => typeof c === "boolean"],
      ["ubatch-axis", plan.axes.ubatch ?? [], (c) => typeof c === "number" && Number.isSafeInteger(c) && c >= 1 && c <= MAX_TARGET_CONTEXT],
      ["batch-axis", plan.axes.batch ?? [], (c) => typeof c === "number" && Number.isSafeInteger(c) && c >= 1 && c <= MAX_TARGET_CONTEXT]
    ]
    for (const [flag, cells, ok] of extra) {
      if (cells.length === 0) continue
      if (flag === "flash-attn-axis" ? !plan.adapter.hasFlashAttn : plan.adapter.name !== "llama-server") {
        return yield* usage(flag, `--${flag}: ${flag === "flash-attn-axis" ? "only the embedded and llama-server providers have" : "only llama-server has"} this setting (the ${plan.adapter.name} provider does not)`)
      }
      const dup = cells.find((c, i) => cells.indexOf(c) !== i)
      if (dup !== undefined) return yield* usage(flag, `--${flag} has a duplicate cell "${String(dup)}"`)
      const bad = cells.find((c) => !ok(c))
      if (bad !== undefined) return yield* usage(flag, `--${flag} has a bad cell "${String(bad)}"`)
    }
    const axes: ReadonlyArray<readonly [string, ReadonlyArray<unknown>]> = [
      ["kv-bits-axis", plan.axes.kvBits],
      ["max-context-axis", plan.axes.maxContext],
      ["max-batch-axis", plan.axes.maxBatch],
      ...(plan.adapter.hasThreads ? [["threads-axis", plan.axes.threads] as const] : [])
    ]
    for (const [flag, cells] of axes) {
      if (cells.length === 0) return yield* usage(flag, `--${flag} has no cell`)
      const dup = cells.find((c, i) => cells.indexOf(c) !== i)
      if (dup !== undefined) return yield* usage(flag, `--${flag} has a duplicate cell "${String(dup)}"`)
    }
    for (const [flag, cells] of axes.slice(1)) {
      const max = flag === "max-context-axis" ? MAX_TARGET_CONTEXT : MAX_SLOTS_OR_THREADS
      const bad = cells.find((c) => !(typeof c === "number" && Number.isSafeInteger(c) && c >= 1 && c <= max))
      if (bad !== undefined) return yield* usage(flag, `--${flag} has a bad cell "${String(bad)}": expected a positive integer up to ${max}`)
    }
    const bits = plan.axes.kvBits.find((b) => b !== null && b !== 4 && b !== 8)
    if (bits !== undefined) return yield* usage("kv-bits-axis", `--kv-bits-axis has a bad cell "${String(bits)}": expected 4, 8 or unset`)
    // SPEC C-1: N users need N slots in every cell.
    const streams = plan.objective?.streams ?? 1
    const few = plan.axes.maxBatch.find((b) => b < streams)
    if (few !== undefined) {
      return yield* usage("max-batch-axis", `--max-batch-axis cell ${few} has fewer slots than --concurrency ${streams} (each cell must serve every user at once)`)
    }
    const low = plan.axes.maxContext.find((c) => c < plan.targetContext)
    if (low !== undefined) {
      return yield* usage("max-context-axis", `--max-context-axis cell ${low} is below --target-context ${plan.targetContext}`)
    }
    if (plan.axes.maxContext.some((c, i, all) => i > 0 && c < all[i - 1]!)) {
      return yield* usage("max-context-axis", "--max-context-axis must be sorted ascending (SPEC B-1)")
    }
    if (cells(plan.axes).length === 0) {
      const noFlash = (plan.axes.flashAttn ?? []).length > 0 && plan.axes.flashAttn!.every((on) => !on) && plan.axes.kvBits.every((b) => b !== null)
      return yield* noFlash
        ? usage("flash-attn-axis", "--flash-attn-axis off leaves no Stage 2 cell: every --kv-bits-axis cell quantizes the KV cache, which needs flash attention on")
        : usage(
          "ubatch-axis",
          `--ubatch-axis leaves no Stage 2 cell: every cell is larger than ${
            (plan.axes.batch ?? []).length > 0 ? "every --batch-axis cell" : `the build's batch size (${LLAMA_SERVER_DEFAULT_BATCH}; give --batch-axis)`
          } (llama.cpp clamps it to the batch)`
        )
    }
  })

/**
 * Checks what a plan's parts must agree on (SPEC B-1, G-1, F-3, H-3; the rules
 * the CLI's flags are checked against, so a plan built in code gets them too).
 * Fails with UsageError naming the flag whose value is wrong (exit 64,
 * `config_error`):
 * - no candidates, or one named twice (`candidate-models`);
 * - a count that is not a positive integer: replicates, target context, gate,
 *   reply length (`stage1-replicates`, `stage2-replicates`, `target-context`,
 *   `gate-ttft-ms`, `max-tokens`); a replicate cap below the stage replicates
 *   (`max-replicates`, N-2); a background-core limit that is not a positive
 *   number (`max-background-cores`, N-3), or a quiet wait with the guard off
 *   (`wait-quiet`);
 * - a ready timeout, request timeout, budget or quiet wait outside 1 ms … 2^31 − 1 ms (what
 *   a timer holds), or a request timeout not longer than the TTFT gate
 *   (`ready-timeout`, `request-timeout`, `max-duration`, `wait-quiet`);
 * - a tie band outside [0, 1) (`tps-tie-epsilon`);
 * - a memory limit that is not a positive number (`memory-limit`), a memory
 *   headroom outside (0, 1] (`memory-headroom`, C-3);
 * - an objective (C-1) with a concurrency outside 1 … MAX_SLOTS_OR_THREADS
 *   (`concurrency`), a TTFT p95 above the gate (`slo-ttft-p95-ms`), an ITL
 *   or decode bound that is not positive (`slo-itl-p95-ms`, `slo-decode-tps`),
 *   or a max-batch cell with fewer slots than the concurrency (`max-batch-axis`);
 * - a `--keep-runs` outside 0 … MAX_KEEP_RUNS (`keep-runs`);
 * - `--apply` for a provider this tool writes no config for (`apply`), `--verify`
 *   for one it cannot start from its config (`verify`);
 * - a threads axis for a provider without a thread-count setting, an empty
 *   axis, a duplicate or non-positive cell, a kv-bits cell other than 4, 8 or
 *   unset, a context cap below the target context or out of order
 *   (`kv-bits-axis`, `max-context-axis`, `max-batch-axis`, `threads-axis`);
 * - a flash-attention axis for a provider other than embedded and
 *   llama-server (issue 14), a ubatch or batch axis for one other than
 *   llama-server, or any of them with a duplicate or bad cell
 *   (`flash-attn-axis`, `ubatch-axis`, `batch-axis`; issue 17 part 3);
 * - a config `--apply` could not edit (`config-path`, `checkApplyTarget`:
 *   checked now, so an hours-long tune does not end in a config that cannot
 *   be written).
 * Returns the plan with the apply target resolved to an absolute path.
 */
export const validatePlan = (plan: TunePlan): Effect.Effect<TunePlan, UsageError> =>
  Effect.gen(function*() {
    yield* checkInputs(plan)
    yield* checkAxes(plan)
    // C-1: an objective that asks nothing a single user does not is none (it would measure otherwise, under the same inputs).
    const normal = plan.objective != null && isDefaultObjective(plan.objective, plan.gateTtftMs) ? { ...plan, objective: null } : plan
    return normal.apply === null
      ? normal
      : {
        ...normal,
        apply: {
          ...normal.apply,
          // Issue 17 part 3: a searched batch size is written too, so the trial edit sets it (a -b in a llama-swap macro is refused now).
          configPath: yield* checkApplyTarget(normal.apply.configPath, normal.adapter, normal.candidateIds, [
            ...((normal.axes.ubatch ?? []).length > 0 ? ["--ubatch-size", "512"] : []),
            ...((normal.axes.batch ?? []).length > 0 ? ["--batch-size", "2048"] : [])
          ])
        }
      }
  })
