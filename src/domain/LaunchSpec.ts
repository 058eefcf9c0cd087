/** What a provider is started with (SPEC E-5): model, port and knobs. */
import type { Knobs } from "./Knobs.js"

/** What an adapter needs to build a provider's command line. Units: tokens. */
export interface LaunchSpec {
  /** Model id or GGUF path, as the provider takes it. */
  readonly model: string
  /** Loopback port for a candidate; null for the operator's serve command (provider default port). */
  readonly port: number | null
  readonly knobs: Knobs
  readonly targetContext: number
  /**
   * The reply budget (SPEC F-5, `--reply-tokens`): room each request's context
   * leaves for its reply, so a server sized from it does not cut a production
   * reply short. Not the probe's `max_tokens`, which may be shorter.
   */
  readonly replyTokens: number
}
