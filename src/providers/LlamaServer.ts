import type { LaunchSpec, ProviderAdapter } from "./ProviderAdapter.js"
import { shellQuote } from "./ProviderAdapter.js"
import { embeddedContextSize } from "./Embedded.js"

/** llama.cpp's KV-cache type names for the kv-bits knob (SPEC E-5: `q4_0|q8_0`). */
const cacheType = { 4: "q4_0", 8: "q8_0" } as const

/**
 * Total context llama-server is started with, in tokens (`--ctx-size`): the
 * per-request context (the max-context knob, else the target context, with
 * P-1's 5 % tolerance and room for the reply — as for the embedded provider)
 * times the parallel slots, because llama-server splits `--ctx-size` evenly
 * over `--parallel` slots (llama.cpp tools/server README).
 */
export const llamaServerContextSize = (spec: LaunchSpec): number =>
  embeddedContextSize(spec) * (spec.knobs.maxBatch ?? 1)

const knobArgs = (spec: LaunchSpec): Array<string> => [
  // No host-RAM prompt cache (default 8 GiB in this llama.cpp): it grows with every distinct
  // prompt, is in no estimate, and would let a repeated prefix skip prefill in a probe.
  "--cache-ram",
  "0",
  "--ctx-size",
  `${llamaServerContextSize(spec)}`,
  "--parallel",
  `${spec.knobs.maxBatch ?? 1}`,
  ...(spec.knobs.kvBits === null
    ? []
    // A quantized V cache needs flash attention in llama.cpp (STACK.md); turn it on explicitly.
    : ["--cache-type-k", cacheType[spec.knobs.kvBits], "--cache-type-v", cacheType[spec.knobs.kvBits], "--flash-attn", "on"]),
  ...(spec.knobs.threads === null ? [] : ["--threads", `${spec.knobs.threads}`])
]

/**
 * llama.cpp's `llama-server` (SPEC E-5): `-m M --host 127.0.0.1 --port P
 * --cache-ram 0 --ctx-size N --parallel N [--cache-type-k/-v q4_0|q8_0 --flash-attn on]
 * [--threads N]`; ready when `GET /health` is 200 (503 while loading), then
 * `GET /v1/models`. It has no coordinator pool, so a candidate gets no
 * `--no-join` (SPEC E-3's purpose, never taking pool traffic, holds by
 * construction; the flag would make it exit "invalid argument"). Candidates
 * bind 127.0.0.1 only. `binary` is resolved by the caller (`--provider-bin`,
 * `$LLAMA_SERVER`, `$LLAMA_CPP_BIN_DIR`, PATH).
 */
export const llamaServer = (binary: string): ProviderAdapter => ({
  name: "llama-server",
  hasThreads: true,
  watchesParent: false,
  healthPath: "/health",
  argv: (spec) => ({
    command: binary,
    args: [
      "-m",
      spec.model,
      ...(spec.port === null ? [] : ["--host", "127.0.0.1", "--port", `${spec.port}`]),
      ...knobArgs(spec)
    ]
  }),
  serveCommand: (spec) => [binary, "-m", spec.model, ...knobArgs(spec)].map(shellQuote).join(" ")
})
