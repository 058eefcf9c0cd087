import { fileURLToPath } from "node:url"
import type { LaunchSpec, ProviderAdapter } from "./ProviderAdapter.js"
import { shellQuote } from "./ProviderAdapter.js"
import { macproviderKnobArgs } from "./MacProvider.js"
import { PROMPT_TOLERANCE } from "../steps/PromptTolerance.js"

/** This project's own CLI launcher (bin/autotune.js), which runs `autotune serve`. */
export const autotuneLauncher = fileURLToPath(new URL("../../bin/autotune.js", import.meta.url))

/**
 * Context size the embedded provider is started with, in tokens: the max-context
 * knob (a cap on the prompt context), else the target context, plus room for the
 * probe's reply — as llama-server's `-c` is built (issue "llama-server", E-5),
 * because `autotune serve --max-context` is the whole per-sequence context. The
 * prompt's 5 % tolerance (SPEC P-1) is included so a prompt the tokenizer made
 * slightly longer than the target still fits.
 */
export const embeddedContextSize = (spec: LaunchSpec): number =>
  Math.ceil((spec.knobs.maxContext ?? spec.targetContext) * (1 + PROMPT_TOLERANCE)) + spec.maxTokens

const args = (spec: LaunchSpec): Array<string> => [
  "serve",
  "--model",
  spec.model,
  ...(spec.port === null ? [] : ["--port", `${spec.port}`]),
  ...macproviderKnobArgs(spec, embeddedContextSize(spec)),
  ...(spec.knobs.threads === null ? [] : ["--threads", `${spec.knobs.threads}`])
]

/**
 * The embedded provider (`autotune serve`, SPEC E-5): macprovider's flags plus `--threads`.
 * `binary` null runs this project's own launcher with the running Node; otherwise the
 * given executable gets the same arguments (`--provider-bin`, used for fake providers).
 */
export const embedded = (binary: string | null): ProviderAdapter => ({
  name: "embedded",
  hasThreads: true,
  watchesParent: true,
  healthPath: null,
  argv: (spec, candidate) => {
    const a = [...args(spec), ...(candidate ? ["--no-join"] : [])]
    return binary === null ? { command: process.execPath, args: [autotuneLauncher, ...a] } : { command: binary, args: a }
  },
  serveCommand: (spec) => [binary ?? "autotune", ...args(spec)].map(shellQuote).join(" ")
})
