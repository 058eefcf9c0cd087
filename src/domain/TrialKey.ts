/**
 * A trial's identity (SPEC R-1): the hash of everything that determines its
 * result, so a measurement is never paid for twice (`tune --resume`, R-2) and a
 * recipe can be re-checked against what it was measured on (`autotune verify`, R-3).
 */
import { Schema } from "effect"
import type { Knobs } from "./Knobs.js"
import { canonicalJson, canonicalSha256 } from "./RecipeHash.js"
import { Machine } from "./TuneDocument.js"

/**
 * What a model is, beyond its name: for a local GGUF file its size (bytes) and
 * the sha256 of its header and tensor index (every byte before the tensor
 * data: metadata, shapes, types, offsets); for a provider's model id (a hub id
 * macprovider resolves) only the id, since no revision is known here.
 */
export const ModelIdentity = Schema.Struct({
  id: Schema.String,
  bytes: Schema.NullOr(Schema.Number),
  header_sha256: Schema.NullOr(Schema.String)
})
export type ModelIdentity = typeof ModelIdentity.Type

/**
 * What the provider is: its name, the version its binary reports (F-2
 * `machine.binary_version`), the executable's path and the sha256 of its bytes
 * (null when it is no file here: the embedded provider is this tool, whose
 * version names its engine).
 */
export const ProviderIdentity = Schema.Struct({
  name: Schema.String,
  version: Schema.NullOr(Schema.String),
  executable: Schema.NullOr(Schema.String),
  executable_sha256: Schema.NullOr(Schema.String)
})
export type ProviderIdentity = typeof ProviderIdentity.Type

/**
 * The trial-independent part of every key of a run (stored with the run as
 * `identity_json`): this tool's version (its probe and decision code
 * measure), the machine (as in the recipe hash, F-2h), the provider,
 * each candidate's model identity by candidate id, and the measurement policy
 * (contexts in tokens, times in ms, replicate counts, the quiet-machine
 * guard's cores) — what a trial's verdict and figures depend on besides its knobs.
 */
export class RunIdentity extends Schema.Class<RunIdentity>("RunIdentity")({
  tool_version: Schema.String,
  machine: Machine,
  provider: ProviderIdentity,
  models: Schema.Record({ key: Schema.String, value: ModelIdentity }),
  policy: Schema.Struct({
    target_context: Schema.Int,
    max_tokens: Schema.Int,
    /** F-5: the reply budget contexts were started with (absent in runs recorded before it). */
    reply_tokens: Schema.optional(Schema.Int),
    gate_ttft_ms: Schema.Number,
    request_timeout_ms: Schema.Number,
    ready_timeout_ms: Schema.Number,
    estimate: Schema.Boolean,
    memory_limit_gib: Schema.NullOr(Schema.Number),
    stage1_replicates: Schema.Int,
    stage2_replicates: Schema.Int,
    max_replicates: Schema.Int,
    max_background_cores: Schema.NullOr(Schema.Number),
    /** SPEC C-1: the objective a replicate's streams are judged by; absent for a single user (and in runs recorded before it). */
    objective: Schema.optional(Schema.Struct({
      streams: Schema.Int,
      ttft_p95_ms: Schema.Number,
      itl_p95_ms: Schema.NullOr(Schema.Number),
      decode_tps: Schema.NullOr(Schema.Number)
    })),
    /** SPEC C-3 `--memory-headroom`, absent at its default (0.9). */
    memory_headroom: Schema.optional(Schema.Number),
    /**
     * How trials were pre-warmed (SPEC D-1, `preWarmPolicy`); absent in runs recorded before the
     * pre-warm was bounded by the gate (issue 14), whose trials a resume therefore measures again.
     */
    prewarm: Schema.optional(Schema.String),
    /**
     * The embedded provider's stream interval, ms (`--stream-interval-ms`, set under an ITL objective
     * below twice its default: E-5); absent at the default (and in runs recorded before it was set, whose
     * trials with such an objective a resume therefore measures again).
     */
    stream_interval_ms: Schema.optional(Schema.Int),
    /**
     * How a request's throughput is taken (SPEC P-2, steps/Probe.ts `THROUGHPUT_POLICY`); absent in runs
     * recorded before the provider's own decode time bounded a squeezed window (issue 14), whose trials a
     * resume therefore measures again (their intervals may hold a replicate read in a burst).
     */
    throughput: Schema.optional(Schema.String)
  })
}) {}

/** `identity_json` text of a run (RunIdentity), and back; a row that does not decode reads as unknown (null). */
export const encodeRunIdentity = Schema.encodeSync(Schema.parseJson(RunIdentity))
export const decodeRunIdentity = (text: string | null): RunIdentity | null => {
  if (text === null) return null
  const r = Schema.decodeUnknownEither(Schema.parseJson(RunIdentity))(text)
  return r._tag === "Right" ? r.right : null
}

/**
 * SPEC R-1 `trial_key` of a trial of `candidateId` with `knobs` in a run of
 * `identity`, at `stage` (1: Stage 1's call, default knobs, marginal
 * replicates; 2: a Stage 2 cell): `"sha256:"` + 64 hex digits of the SHA-256
 * of the RFC 8785 canonical JSON of `{tool, machine, provider, model,
 * policy, stage, knobs}` (only this candidate's model, so another candidate's file
 * changing leaves it alone). A cell measured again (N-2 extra replicates, the
 * drift check) has the same key: the ledger keeps its measurements in order.
 * Throws when `candidateId` has no identity in `identity` (a programming error).
 */
export const trialKey = (identity: RunIdentity, stage: 1 | 2, candidateId: string, knobs: Knobs): string => {
  const model = identity.models[candidateId]
  if (model === undefined) throw new Error(`trialKey: no identity for candidate ${candidateId}`)
  return canonicalSha256({
    v: 1,
    tool: identity.tool_version,
    machine: { ...identity.machine },
    // The build, not where it lies: a moved executable with the same bytes measures the same.
    provider: {
      name: identity.provider.name,
      version: identity.provider.version,
      build: identity.provider.executable_sha256 ?? identity.provider.executable
    },
    model,
    policy: identity.policy,
    stage,
    knobs: {
      kv_bits: knobs.kvBits,
      max_context: knobs.maxContext,
      max_batch: knobs.maxBatch,
      threads: knobs.threads,
      // Issue 17 part 3: only when set, so the keys of cells without them stay as they were.
      ...(knobs.flashAttn === null ? {} : { flash_attn: knobs.flashAttn }),
      ...(knobs.ubatch === null ? {} : { ubatch: knobs.ubatch }),
      ...(knobs.batch === null ? {} : { batch: knobs.batch })
    }
  })
}

/** What changed between two F-2 `machine` objects, field by field ("machine ram_gb: 24 → 16"). */
export const machineChanges = (m0: Machine, m1: Machine): Array<string> =>
  (["ram_gb", "chip", "os_version", "binary_version"] as const).flatMap((k) =>
    m0[k] === m1[k] ? [] : [`machine ${k}: ${JSON.stringify(m0[k])} → ${JSON.stringify(m1[k])}`]
  )

/**
 * What changed between the identity a run was measured with and today's, in
 * words an operator acts on ("model a.gguf: 1234 → 5678 bytes, header sha256
 * 0a1b2c3d… → 9f8e7d6c…"): this tool's version, the machine, the provider
 * binary, each model the two share, and the policy. Empty when nothing that keys a trial changed.
 */
export const identityChanges = (before: RunIdentity, now: RunIdentity): Array<string> => {
  const out: Array<string> = []
  const short = (h: string | null) => (h === null ? "none" : `${h.slice(0, 12)}…`)
  if (before.tool_version !== now.tool_version) out.push(`llm-autotune ${before.tool_version} → ${now.tool_version}`)
  out.push(...machineChanges(before.machine, now.machine))
  const p0 = before.provider, p1 = now.provider
  if (p0.name !== p1.name) out.push(`provider: ${p0.name} → ${p1.name}`)
  else if (p0.executable_sha256 !== p1.executable_sha256 || (p0.executable_sha256 === null && p0.executable !== p1.executable)) {
    out.push(`provider binary ${p0.executable ?? p0.name} (sha256 ${short(p0.executable_sha256)}) → ${p1.executable ?? p1.name} (sha256 ${short(p1.executable_sha256)})`)
  }
  for (const [id, a] of Object.entries(before.models)) {
    const b = now.models[id]
    if (b === undefined) continue
    if (a.bytes !== b.bytes || a.header_sha256 !== b.header_sha256) {
      out.push(`model ${id}: ${a.bytes ?? "?"} → ${b.bytes ?? "?"} bytes, header sha256 ${short(a.header_sha256)} → ${short(b.header_sha256)}`)
    }
  }
  if (canonicalJson(before.policy) !== canonicalJson(now.policy)) {
    const changed = Object.keys(now.policy).filter((k) =>
      (before.policy as Record<string, unknown>)[k] !== (now.policy as Record<string, unknown>)[k]
    )
    out.push(`measurement policy: ${changed.join(", ")}`)
  }
  return out
}
