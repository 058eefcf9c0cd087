import { Knobs } from "../domain/Knobs.js"

/** The providers this tool knows how to start (SPEC E-5). */
export type ProviderName = "embedded" | "macprovider" | "llama-server"

/** What an adapter needs to build a provider's command line. Units: tokens. */
export interface LaunchSpec {
  /** Model id or GGUF path, as the provider takes it. */
  readonly model: string
  /** Loopback port for a candidate; null for the operator's serve command (provider default port). */
  readonly port: number | null
  readonly knobs: Knobs
  readonly targetContext: number
  /** The probe's `max_tokens`: room a context must leave for the reply. */
  readonly maxTokens: number
}

/**
 * A provider adapter (SPEC E-5): how to build argv for (model, port, knobs)
 * and how readiness is read. `candidate: true` adds `--no-join` (SPEC E-3)
 * where the provider has a coordinator pool to join.
 */
export interface ProviderAdapter {
  readonly name: ProviderName
  /** Whether the provider has a thread-count setting (`--threads-axis` allowed, SPEC B-1). */
  readonly hasThreads: boolean
  /** Executable and its arguments. */
  readonly argv: (spec: LaunchSpec, candidate: boolean) => { readonly command: string; readonly args: ReadonlyArray<string> }
  /**
   * A readiness endpoint polled before `GET /v1/models` (SPEC E-4, E-5): 200
   * when the model is loaded (llama-server's `/health` answers 503 while
   * loading). Null when `/v1/models` alone decides.
   */
  readonly healthPath: string | null
  /**
   * Whether the provider stops itself when its tuner dies (the embedded
   * provider watches `$AUTOTUNE_PARENT_PID`). Others are started under
   * bin/provider-shim.mjs, which does it for them.
   */
  readonly watchesParent: boolean
  /** The operator-facing command line (SPEC F-1): no `--no-join`, no port. */
  readonly serveCommand: (spec: LaunchSpec) => string
}

/**
 * The executable an adapter starts and its fixed arguments, from a model-less
 * launch spec: what pre-flight matches, run locks key on and `--version` asks.
 */
export const adapterCommand = (adapter: ProviderAdapter): { readonly command: string; readonly args: ReadonlyArray<string> } =>
  adapter.argv({ model: "", port: null, knobs: Knobs.defaults, targetContext: 1, maxTokens: 1 }, false)

/** Quotes an argument for a POSIX shell when it needs it. */
export const shellQuote = (s: string): string => (/^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`)
