/** The `--json` document (SPEC F-2) and its parts, as schemas. */
import { Schema } from "effect"
import { KvBits } from "./Knobs.js"
import { ExitReason } from "./ExitReason.js"

/** The SPEC version this implementation follows (F-2 `spec_version`). */
export const SPEC_VERSION = "1"

/** F-2 `machine`: what the recipe was measured on. `ram_gb` in GiB. */
export class Machine extends Schema.Class<Machine>("Machine")({
  ram_gb: Schema.Number,
  chip: Schema.String,
  os_version: Schema.String,
  binary_version: Schema.NullOr(Schema.String)
}) {}

/** F-2 `inputs`: the run's inputs that decide the recipe. Units: tokens, ms. */
export class Inputs extends Schema.Class<Inputs>("Inputs")({
  target_context: Schema.Int,
  candidate_models: Schema.Array(Schema.String),
  stage1_replicates: Schema.Int,
  stage2_replicates: Schema.Int,
  gate_ttft_ms: Schema.Number,
  tps_tie_epsilon: Schema.Number,
  /**
   * SPEC F-5 `--reply-tokens`, present only when not the default
   * (DEFAULT_REPLY_TOKENS), so a recipe at the default hashes as before (F-2h).
   */
  reply_tokens: Schema.optional(Schema.Int),
  /**
   * SPEC C-1, C-3: `--concurrency`, the objective (`--slo-ttft-p95-ms`,
   * `--slo-itl-p95-ms`, `--slo-decode-tps`) and `--memory-headroom`, each
   * present only when not its default (1; the gate; none; none; 0.9), so a
   * single-user recipe hashes as before (F-2h).
   */
  concurrency: Schema.optional(Schema.Int),
  slo_ttft_p95_ms: Schema.optional(Schema.Number),
  slo_itl_p95_ms: Schema.optional(Schema.Number),
  slo_decode_tps: Schema.optional(Schema.Number),
  memory_headroom: Schema.optional(Schema.Number),
  /** SPEC C-4 `--find-max-concurrency`, present (true) only when given. */
  find_max_concurrency: Schema.optional(Schema.Literal(true))
}) {}

/**
 * F-2 `recommendation.knobs`, keyed by the provider config's YAML names so they
 * paste into config.yaml. `threads` is present only for providers that have a
 * thread-count setting, so a macprovider recipe hashes as in any implementation.
 */
export const KnobsJson = Schema.Struct({
  kv_bits: KvBits,
  max_concurrency_override: Schema.NullOr(Schema.Int),
  max_context_override: Schema.NullOr(Schema.Int),
  threads: Schema.optional(Schema.NullOr(Schema.Int)),
  /** The throughput knobs (llama-server's, issue 17 part 3; flash attention the embedded provider's too, issue 14), present only when Stage 2 searched them. */
  flash_attn: Schema.optional(Schema.Literal("on", "off")),
  ubatch_size: Schema.optional(Schema.Int),
  batch_size: Schema.optional(Schema.Int)
})
export type KnobsJson = typeof KnobsJson.Type

/** A 95 % interval `[lo, hi]` of a median (SPEC N-1), null when unmeasured. */
export const Ci95 = Schema.NullOr(Schema.Tuple(Schema.Number, Schema.Number))

/**
 * F-2 `recommendation`. Units: tokens/s (`tps_median`), ms (`ttft_p95_ms`), tokens (`target_context`).
 * SPEC N-1..N-3 add: `tps_ci95` and `ttft_ci95_ms` (intervals of the median tokens/s
 * and TTFT, 95 % from 6 replicates; `ci_coverage` is their actual coverage, 0.75 at 3
 * replicates where the interval is the range), `tps_cv` (coefficient of variation),
 * `ttft_median_ms`, `marginal` (a Stage 1 call near the gate, made on the median of
 * more replicates), `disturbed` (it rests on a trial measured while other processes
 * were busy), `stage1_marginal` and `stage1_disturbed` (the same of the Stage 1 trial
 * that chose the model), `tied_within_noise` (Stage 2 cells the
 * noise could not tell from it at `--max-replicates`: the incumbent stayed) and
 * `drift_check` (the winner measured once more after Stage 2; null when not made).
 * `replicates` counts every replicate the figures are over.
 */
const recommendationFields = {
  model: Schema.String,
  target_context: Schema.Int,
  knobs: KnobsJson,
  tps_median: Schema.NullOr(Schema.Number),
  ttft_p95_ms: Schema.NullOr(Schema.Number),
  replicates: Schema.Int,
  serve_command: Schema.String
}

/**
 * `recommendation.load` (SPEC C-1, C-3): `streams` per replicate, the medians
 * of every stream's decode rate summed (`aggregate_tps_median`, tokens/s;
 * under an objective `tps_median` is the goodput) and of the worst stream's
 * ITL p95 (ms), and the provider's peak resident memory with the estimate it
 * was launched on (bytes; null when not read or not made).
 */
export const LoadJson = Schema.Struct({
  streams: Schema.Int,
  aggregate_tps_median: Schema.NullOr(Schema.Number),
  itl_p95_ms: Schema.NullOr(Schema.Number),
  peak_rss_bytes: Schema.NullOr(Schema.Number),
  estimated_bytes: Schema.NullOr(Schema.Number)
})

const spreadFields = {
  load: Schema.optional(LoadJson),
  tps_ci95: Ci95,
  ttft_ci95_ms: Ci95,
  ci_coverage: Schema.Number,
  tps_cv: Schema.NullOr(Schema.Number),
  ttft_median_ms: Schema.NullOr(Schema.Number),
  marginal: Schema.Boolean,
  disturbed: Schema.Boolean,
  stage1_marginal: Schema.Boolean,
  stage1_disturbed: Schema.Boolean,
  tied_within_noise: Schema.Array(Schema.Struct({
    knobs: KnobsJson,
    tps_median: Schema.NullOr(Schema.Number),
    tps_ci95: Ci95,
    replicates: Schema.Int
  })),
  drift_check: Schema.NullOr(Schema.Struct({
    tps_median: Schema.NullOr(Schema.Number),
    moved: Schema.Boolean,
    remeasured: Schema.Array(KnobsJson)
  }))
}

export class RecommendationJson extends Schema.Class<RecommendationJson>("RecommendationJson")({
  ...recommendationFields,
  ...spreadFields
}) {}

/**
 * A recommendation as `tune_runs.recommendation_json` stored it, from any
 * version (S-3): the N-1..N-3 fields only on runs that recorded them.
 */
export const StoredRecommendation = Schema.extend(Schema.Struct(recommendationFields), Schema.partial(Schema.Struct(spreadFields)))
export type StoredRecommendation = typeof StoredRecommendation.Type

/** F-2 `infeasible[]`: a candidate that failed, its 1-based rank in the candidate list, and why. */
export const InfeasibleJson = Schema.Struct({
  model: Schema.String,
  rank: Schema.Int,
  reason: Schema.String,
  /** SPEC N-2: found infeasible on the median of more replicates near the gate. */
  marginal: Schema.Boolean,
  /** SPEC N-3: found infeasible on a trial still disturbed after its re-runs. */
  disturbed: Schema.Boolean
})

/**
 * F-2 `capacity` (SPEC C-4), present when `--find-max-concurrency` was given
 * and a recommendation was made (null when the search did not finish):
 * `users`, the largest N that met the `objective` (bounds in ms and tokens/s;
 * null where none), `missed_at` the smallest N that did not (null when the
 * search stopped at its cap, `capped`), and every step in the order measured
 * with its verdict's reason (null when met) and figures (goodput and
 * aggregate tokens/s, TTFT p95 and worst-stream ITL p95 in ms, peak resident
 * bytes).
 */
export const CapacityJson = Schema.Struct({
  users: Schema.Int,
  missed_at: Schema.NullOr(Schema.Int),
  capped: Schema.Boolean,
  objective: Schema.Struct({
    ttft_p95_ms: Schema.Number,
    itl_p95_ms: Schema.NullOr(Schema.Number),
    decode_tps: Schema.NullOr(Schema.Number)
  }),
  steps: Schema.Array(Schema.Struct({
    users: Schema.Int,
    met: Schema.Boolean,
    reason: Schema.NullOr(Schema.String),
    goodput_tps: Schema.NullOr(Schema.Number),
    aggregate_tps: Schema.NullOr(Schema.Number),
    ttft_p95_ms: Schema.NullOr(Schema.Number),
    itl_p95_ms: Schema.NullOr(Schema.Number),
    peak_rss_bytes: Schema.NullOr(Schema.Number)
  }))
})
export type CapacityJson = typeof CapacityJson.Type

/** ISO-8601 UTC timestamp as `Date.prototype.toISOString` writes it (F-2 `started_at`/`ended_at`). */
export const IsoUtc = Schema.String.pipe(
  Schema.pattern(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/),
  Schema.annotations({ identifier: "IsoUtc" })
)

/** F-2h `recipe_hash`: `sha256:` and 64 lowercase hex digits. */
export const RecipeHashText = Schema.String.pipe(
  Schema.pattern(/^sha256:[0-9a-f]{64}$/),
  Schema.annotations({ identifier: "RecipeHash" })
)

/** The `--json` document (SPEC F-2), defined once: encodes the output and validates it in tests. */
export class TuneDocument extends Schema.Class<TuneDocument>("TuneDocument")({
  spec_version: Schema.Literal(SPEC_VERSION),
  run_id: Schema.String,
  started_at: IsoUtc,
  ended_at: Schema.NullOr(IsoUtc),
  partial: Schema.Boolean,
  exit_reason: ExitReason,
  machine: Machine,
  inputs: Inputs,
  recommendation: Schema.NullOr(RecommendationJson),
  alternates: Schema.Array(Schema.String),
  infeasible: Schema.Array(InfeasibleJson),
  recipe_hash: Schema.NullOr(RecipeHashText),
  /** SPEC N-3: trials measured while other processes used more than `--max-background-cores`. */
  disturbed_trials: Schema.Int,
  /**
   * SPEC N-2, N-3: how the run treated its noise (`--max-replicates`, `--max-background-cores`,
   * null when the guard was off). Outside `inputs`: they do not enter the recipe hash.
   */
  noise_policy: Schema.Struct({ max_replicates: Schema.Int, max_background_cores: Schema.NullOr(Schema.Number) }),
  capacity: Schema.optional(Schema.NullOr(CapacityJson)),
  /**
   * The Pareto front of the feasible Stage 2 cells (issue 17, part 6): the
   * cells no other beats on both aggregate tok/s and TTFT p95 (ms), with
   * their goodput (the tok/s Stage 2 ranked them by) and whether it is the
   * recommendation's. Absent without a recommendation or a feasible cell.
   */
  pareto: Schema.optional(Schema.Array(Schema.Struct({
    knobs: KnobsJson,
    aggregate_tps: Schema.Number,
    goodput_tps: Schema.NullOr(Schema.Number),
    ttft_p95_ms: Schema.Number,
    recommended: Schema.Boolean
  })))
}) {}

/** The document as JSON text (Schema-encoded, SPEC F-2). */
export const encodeTuneDocument = Schema.encodeSync(Schema.parseJson(TuneDocument, { space: 2 }))
