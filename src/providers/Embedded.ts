/** The embedded provider adapter (SPEC E-5): this project's own `autotune serve`. */
import { Effect } from "effect"
import { fileURLToPath } from "node:url"
import { requestContextTokens } from "../domain/Prompt.js"
import { shellQuote } from "../domain/Shell.js"
import { macproviderKnobArgs } from "./MacProvider.js"
import { type LaunchSpec, type ProviderAdapter, versionOf } from "./ProviderAdapter.js"
import { EMBEDDED_BINARY_VERSION } from "../system/Versions.js"

/** This project's own CLI launcher (bin/autotune.js), which runs `autotune serve`. */
export const autotuneLauncher = fileURLToPath(new URL("../../bin/autotune.js", import.meta.url))

/**
 * Context the embedded provider is started with (`--max-context`, per
 * sequence), in tokens: what one request occupies (`requestContextTokens`:
 * the max-context knob, else the target context, + 5 % P-1 tolerance + the
 * reply), because `autotune serve --max-context` is the whole per-sequence
 * context, as llama-server's `-c` per slot.
 */
const contextSize = (spec: LaunchSpec): number => requestContextTokens(spec.knobs.maxContext ?? spec.targetContext, spec.maxTokens)

const args = (spec: LaunchSpec): Array<string> => [
  "serve",
  "--model",
  spec.model,
  ...(spec.port === null ? [] : ["--port", `${spec.port}`]),
  ...macproviderKnobArgs(spec, contextSize(spec)),
  ...(spec.knobs.threads === null ? [] : ["--threads", `${spec.knobs.threads}`])
]

/**
 * The embedded provider (`autotune serve`, SPEC E-5): macprovider's flags plus `--threads`.
 * `binary` null runs this project's own launcher with the running Node; otherwise the
 * given executable gets the same arguments (`--provider-bin`, used for fake providers).
 */
export const embedded = (binary: string | null): ProviderAdapter => {
  const self: ProviderAdapter = {
    name: "embedded",
    hasThreads: true,
    watchesParent: true,
    healthPath: null,
    argv: (spec, candidate) => {
      const a = [...args(spec), ...(candidate ? ["--no-join"] : [])]
      return binary === null ? { command: process.execPath, args: [autotuneLauncher, ...a] } : { command: binary, args: a }
    },
    contextSize,
    serveCommand: (spec) => [binary ?? "autotune", ...args(spec)].map(shellQuote).join(" "),
    probe: Effect.sync(() => self),
    // Without --provider-bin the provider is this tool itself: its own version, no process.
    version: binary === null ? Effect.succeed(EMBEDDED_BINARY_VERSION) : versionOf(binary)
  }
  return self
}
