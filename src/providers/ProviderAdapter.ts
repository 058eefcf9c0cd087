/**
 * The provider adapter contract (SPEC E-5): how to start a provider for
 * (model, port, knobs), how big a context it gets, and how its readiness is read.
 */
import { Effect } from "effect"
import type { Either } from "effect"
import type { ConfigEdit } from "../domain/ConfigYaml.js"
import { Knobs } from "../domain/Knobs.js"
import type { LaunchSpec } from "../domain/LaunchSpec.js"
import type { Launchable } from "../services/CandidateProvider.js"
import { Exec } from "../services/Exec.js"

export type { LaunchSpec } from "../domain/LaunchSpec.js"

/** The providers this tool knows how to start (SPEC E-5). */
export type ProviderName = "embedded" | "macprovider" | "llama-server"

/**
 * The config file a provider reads, as `--apply` writes it (SPEC F-3, F-4).
 * `edit(spec, file)`: the byte-exact edit of the text of `file` that makes it
 * hold a recipe's launch, as that provider reads it (Left: why it cannot; the
 * file's name may pick the format: llama-server's `.yaml` is llama-swap's, an
 * INI a router preset); `editable(source, models, file)`: null when a recipe
 * of any of `models` (the candidates, as the provider takes them) could be
 * applied to that text (trial edits setting and removing every owned key,
 * with `extraArgs`: launch flags the run's axes may add, e.g. llama-server's
 * `--ubatch-size`), else why not — checked before a run. `createIfMissing`: `--apply` may
 * create the file (this tool owns its format). `launchFrom(configPath)`: the adapter that starts the provider
 * from that file exactly as the restart line says (its `serveCommand` is that
 * line; its `argv` adds only the candidate's port and `--no-join`), what
 * `--apply --verify` and `verify --config` probe (F-6); null when this tool
 * cannot start it so.
 */
export interface ProviderConfig {
  readonly edit: (spec: LaunchSpec, file: string) => (source: string) => Either.Either<ConfigEdit, string>
  readonly editable: (source: string, models: ReadonlyArray<string>, file: string, extraArgs?: ReadonlyArray<string>) => string | null
  readonly createIfMissing: boolean
  readonly launchFrom: ((configPath: string) => ProviderAdapter) | null
}

/**
 * A provider adapter (SPEC E-5): how to build argv for (model, port, knobs)
 * and how readiness is read. `candidate: true` adds `--no-join` (SPEC E-3)
 * where the provider has a coordinator pool to join.
 */
export interface ProviderAdapter extends Launchable {
  readonly name: ProviderName
  /** Whether the provider has a thread-count setting (`--threads-axis` allowed, SPEC B-1). */
  readonly hasThreads: boolean
  /** Whether the provider can switch flash attention (`--flash-attn-axis` allowed: llama-server, and embedded since issue 14). */
  readonly hasFlashAttn: boolean
  /**
   * Whether short requests warm this provider for a full-length one (SPEC
   * D-1, issue 14 part 4): a trial whose prompt is sized (calibrated by an
   * earlier trial, or counted by the provider's tokenizer: `countsTokens`)
   * then sends no full-length pre-warm request, and one that sends it where
   * it is a probe's equal bounds it at the gate + 5 %. True for embedded and
   * llama-server (issue 14, 2026-12-06): after the two short requests the
   * first full-length request's TTFT was within 1.2 % (embedded) and 2 %
   * (llama-server) of later ones (130M, f16 and q8_0 KV, 1 and 2 threads),
   * and three `npm run bench` pairs with and without the full-length
   * warm-up made the same model choice and the same Stage 2 fits but for
   * one marginal llama-server cell (130M kv=8 threads=1, ~4 s against a
   * 5 s gate), which fit more often without it. An earlier bench (12:36)
   * had seen cells miss without it; that was not reproduced. Measured with
   * one slot only: a trial with several slots still gets the full-length
   * warm-up (RunTrial). Not measured, and not told apart here: a GPU build
   * of llama-server, a 4-bit KV cache. macprovider: false, unmeasured (MLX
   * compiles kernels per shape). An adapter that sets it must start a
   * null `maxBatch` with one slot (RunTrial counts a null as one).
   */
  readonly shortWarmUpSuffices: boolean
  /**
   * Whether the provider serves llama-server's `POST /tokenize` (`{content}`
   * → `{tokens}`, the text alone): the pre-warm then sizes the probe prompt
   * with the provider's own tokenizer, no prefill (issue 14 part 4; steps/
   * TokenCount.ts), and a provider the short requests warm needs no
   * full-length pre-warm request at all. True for llama-server and the
   * embedded provider (measured 2026-12-07: a request's `usage.prompt_tokens`
   * minus `/tokenize`'s count of its text is the same for 16 to 1000 words,
   * 37 tokens on llama-server, 9 on embedded, 130M); macprovider: false (no
   * such route). Where the route fails anyway, the pre-warm counts tokens as
   * before (two short requests' usage and a full-length request).
   */
  readonly countsTokens: boolean
  /**
   * How often the provider is told to write a stream's tokens, ms (the
   * embedded provider's `--stream-interval-ms`, SPEC E-5, under a tight ITL
   * objective: `streamIntervalForItl`); null or absent: the provider's own
   * default (every other provider has no such setting).
   */
  readonly streamIntervalMs?: number | null
  /**
   * The context of one slot (sequence) the provider holds for `spec`, in
   * tokens: what the memory estimate sizes the KV cache of each of
   * `knobs.maxBatch` slots from. Each adapter sizes its own.
   */
  readonly contextSize: (spec: LaunchSpec) => number
  /** The operator-facing command line (SPEC F-1): no `--no-join`, no port. */
  readonly serveCommand: (spec: LaunchSpec) => string
  /**
   * Asks the binary what it accepts (llama-server: its `--help`) and returns
   * the adapter to start candidates with. A step of planning a run, never run
   * for `--dry-run` (SPEC H-5); adapters with nothing to ask return themselves.
   * Never fails.
   */
  readonly probe: Effect.Effect<ProviderAdapter, never, Exec>
  /**
   * The provider binary's version (F-2 `machine.binary_version`, part of the
   * recipe hash), null when it does not say. Never fails.
   */
  readonly version: Effect.Effect<string | null, never, Exec>
  /** The config `--apply` writes for it (F-3, F-4); null when it has none (`--apply` is refused). */
  readonly config: ProviderConfig | null
}

/**
 * The executable an adapter starts and its fixed arguments, from a model-less
 * launch spec: what pre-flight matches, run locks key on and `--version` asks.
 */
export const adapterCommand = (adapter: ProviderAdapter): { readonly command: string; readonly args: ReadonlyArray<string> } =>
  adapter.argv({ model: "", port: null, knobs: Knobs.defaults, targetContext: 1, replyTokens: 1 }, false)

/**
 * The executable that identifies the provider's build (SPEC R-1 trial keys):
 * the one `adapterCommand` runs, or null for the embedded provider run by
 * this tool's own launcher on the running Node (its version names its engine).
 */
export const adapterExecutable = (adapter: ProviderAdapter): string | null => {
  const { command } = adapterCommand(adapter)
  return adapter.name === "embedded" && command === process.execPath ? null : command
}

/** The provider's name with its executable (`adapterCommand`): what its run lock is keyed on (system/RunLock.ts). */
export const adapterBinary = (adapter: ProviderAdapter) => ({ name: adapter.name, ...adapterCommand(adapter) })

/**
 * A binary's version as `<binary> --version` prints it: the line that says
 * "version" (llama-server logs "initializing ..." first), else the first
 * line; stdout, else stderr (where llama.cpp tools print it); 15 s at most (a
 * cold binary must not turn the version, and with it the recipe hash, into
 * null); null when it does not answer. Never fails.
 */
export const versionOf = (binary: string): Effect.Effect<string | null, never, Exec> => {
  const firstLine = (s: string) => {
    const lines = s.trim().split("\n").map((l) => l.trim()).filter((l) => l !== "")
    return lines.find((l) => /version/i.test(l)) ?? lines[0] ?? null
  }
  return Effect.flatMap(Exec, (exec) => exec.run(binary, ["--version"], { timeoutMs: 15_000 })).pipe(
    Effect.map((r) => firstLine(r.stdout) ?? firstLine(r.stderr))
  )
}
